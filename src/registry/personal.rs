//! Tools one agent installed for itself (skill capabilities, `skill.<slug>.<capability>`): kept
//! in the catalog beside the shared tools, listed and callable by that agent only. Every other
//! caller sees nothing of them, as with a denied tool.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Registry;
use super::catalog::{Catalog, Entry, Personal};
use super::error::RegisterError;
use super::names::StrictNames;

/// The namespace of personal tools; shared tools may not use it (in either spelling), so the
/// two never clash.
const PERSONAL_PREFIX: &str = "skill.";
const PERSONAL_STRICT_PREFIX: &str = "skill_";

pub(super) fn is_personal_name(name: &str) -> bool {
    name.starts_with(PERSONAL_PREFIX) || name.starts_with(PERSONAL_STRICT_PREFIX)
}

impl Registry {
    /// Sets every tool `agent_id` installed to `entries` (none removes them all), in one step,
    /// telling live sessions (each session checks whether its own listing changed). Names must
    /// start with `skill.`; a duplicate name is refused and nothing changes.
    pub fn set_personal_tools(&self, agent_id: &str, entries: Vec<Arc<Entry>>) -> Result<(), RegisterError> {
        let mut tools = BTreeMap::new();
        for entry in entries {
            if !entry.name().starts_with(PERSONAL_PREFIX) {
                return Err(RegisterError::InvalidName(entry.name().to_string()));
            }
            if let Some(duplicate) = tools.insert(entry.name().clone(), entry) {
                return Err(RegisterError::Duplicate(duplicate.name().to_string()));
            }
        }
        let mut guard = self.catalog.write().unwrap_or_else(|p| p.into_inner());
        let unchanged = match guard.personal.get(agent_id) {
            Some(current) => {
                current.tools.len() == tools.len()
                    && current
                        .tools
                        .values()
                        .zip(tools.values())
                        .all(|(a, b)| Arc::ptr_eq(a, b))
            }
            None => tools.is_empty(),
        };
        if unchanged {
            return Ok(());
        }
        let mut personal = guard.personal.clone();
        if tools.is_empty() {
            personal.remove(agent_id);
        } else {
            let strict = StrictNames::build(tools.keys());
            personal.insert(Arc::from(agent_id), Arc::new(Personal { tools, strict }));
        }
        let next = Catalog {
            tools: guard.tools.clone(),
            strict: guard.strict.clone(),
            personal,
        };
        *guard = Arc::new(next);
        drop(guard);
        self.changes.send_modify(|version| *version += 1);
        Ok(())
    }

    /// The names of the tools `agent_id` installed, in name order.
    pub fn personal_tool_names(&self, agent_id: &str) -> Vec<String> {
        self.snapshot()
            .personal
            .get(agent_id)
            .map(|personal| personal.tools.keys().map(|name| name.to_string()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::registry::listing::tests::tool;
    use crate::registry::{Caller, NameStyle, ToolPolicy};

    fn entry(name: &str) -> Arc<Entry> {
        Arc::new(Entry::new(tool(name, "Installed.")).unwrap())
    }

    #[test]
    fn only_the_installing_agent_sees_and_resolves_its_tools() {
        let registry = Registry::new(Duration::from_secs(5));
        registry.register(vec![tool("agentos.shared", "Shared.")]).unwrap();
        let alice = Caller::agent("alice", ToolPolicy::allow_all(), Vec::new());
        let bob = Caller::agent("bob", ToolPolicy::allow_all(), Vec::new());
        let bob_before = registry.visible_fingerprint(&bob, NameStyle::Strict);

        registry
            .set_personal_tools("alice", vec![entry("skill.page-links.read-page")])
            .unwrap();
        let names = |caller: &Caller| -> Vec<String> {
            registry
                .mcp_tools_for(caller, NameStyle::Strict)
                .into_iter()
                .map(|t| t.name.to_string())
                .collect()
        };
        assert_eq!(names(&alice), ["agentos_shared", "skill_page-links_read-page"]);
        assert_eq!(names(&bob), ["agentos_shared"]);
        assert!(registry.resolve_for(&alice, "skill.page-links.read-page").is_some());
        assert!(registry.resolve_for(&alice, "skill_page-links_read-page").is_some());
        assert!(registry.resolve_for(&bob, "skill.page-links.read-page").is_none());
        assert_eq!(registry.visible_fingerprint(&bob, NameStyle::Strict), bob_before);

        // The agent's policy still applies to what it installed.
        let narrow = Caller::agent("alice", ToolPolicy::parse(&["agentos.*"]).unwrap(), Vec::new());
        assert!(registry.resolve_for(&narrow, "skill.page-links.read-page").is_none());

        registry.set_personal_tools("alice", Vec::new()).unwrap();
        assert_eq!(names(&alice), ["agentos_shared"]);
        assert!(registry.personal_tool_names("alice").is_empty());
    }

    #[test]
    fn shared_and_personal_names_stay_apart() {
        let registry = Registry::new(Duration::from_secs(5));
        assert!(registry.register(vec![tool("skill.x.y", "Shared?")]).is_err());
        assert!(registry.register(vec![tool("skill_x_y", "Shared?")]).is_err());
        assert!(
            registry
                .set_personal_tools("alice", vec![entry("agentos.mine")])
                .is_err()
        );
        let twice = registry.set_personal_tools("alice", vec![entry("skill.a.b"), entry("skill.a.b")]);
        assert!(twice.is_err());
        assert!(
            registry.personal_tool_names("alice").is_empty(),
            "a refusal changes nothing"
        );
    }

    #[test]
    fn a_change_bumps_the_version_once_and_a_repeat_not_at_all() {
        let registry = Registry::new(Duration::from_secs(5));
        let changes = registry.subscribe();
        let installed = entry("skill.a.b");
        registry.set_personal_tools("alice", vec![installed.clone()]).unwrap();
        assert_eq!(*changes.borrow(), 1);
        registry.set_personal_tools("alice", vec![installed]).unwrap();
        assert_eq!(*changes.borrow(), 1);
    }
}

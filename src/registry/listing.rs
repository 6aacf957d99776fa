//! Fingerprints of what a caller sees in a tool listing, so a live session is told about a
//! change (`notifications/tools/list_changed`) only when its own listing would really differ.
//!
//! A provider re-registering the same tools (an upstream that reconnected) swaps in new entries
//! with identical content: hashing entry identity would call that a change, so the fingerprint
//! hashes each visible tool's name and the hash of its listing content, computed once when the
//! tool is registered.

use std::hash::{Hash, Hasher};

use super::{Caller, NameStyle, Registry};

/// A hash of one tool's listing as a client receives it. Stable within a process, which is all
/// fingerprints are compared across.
pub(super) fn content_hash(listing: &rmcp::model::Tool) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    // Serializing a listing that came from JSON cannot fail; if it ever did, the name alone
    // still separates tools and a change would at worst go unnoticed until the next one.
    serde_json::to_vec(listing).unwrap_or_default().hash(&mut hasher);
    hasher.finish()
}

impl Registry {
    /// A cheap summary of the listing `caller` gets in `style`: equal fingerprints mean equal
    /// listings (names, strict spellings and content). Costs one hash step per visible tool.
    pub fn visible_fingerprint(&self, caller: &Caller, style: NameStyle) -> u64 {
        let catalog = self.snapshot();
        let mut hasher = std::hash::DefaultHasher::new();
        for (entry, strict) in catalog.visible(caller) {
            entry.name().hash(&mut hasher);
            entry.listing_hash.hash(&mut hasher);
            if style == NameStyle::Strict {
                // A strict spelling depends on every registered name, not only visible ones.
                strict.hash(&mut hasher);
            }
        }
        hasher.finish()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::FutureExt;
    use futures::future::BoxFuture;
    use serde_json::Value;

    use crate::registry::{Audience, CallContext, Origin, Tool, ToolPolicy, ToolResult, ToolSpec};

    use super::*;

    struct Fixed(ToolSpec);

    impl Tool for Fixed {
        fn spec(&self) -> &ToolSpec {
            &self.0
        }
        fn call<'a>(&'a self, _input: Value, _ctx: &'a CallContext) -> BoxFuture<'a, ToolResult> {
            async { Ok(rmcp::model::CallToolResult::success(vec![])) }.boxed()
        }
    }

    pub(in crate::registry) fn tool(name: &str, description: &str) -> Arc<dyn Tool> {
        let schema = serde_json::json!({"type": "object"});
        Arc::new(Fixed(ToolSpec {
            name: name.into(),
            title: None,
            description: description.to_owned(),
            input_schema: Arc::new(schema.as_object().cloned().unwrap_or_default()),
            output_schema: None,
            annotations: None,
            origin: Origin::Mcp,
            audience: Audience::ByPolicy,
        }))
    }

    #[test]
    fn same_content_same_fingerprint_whatever_the_entries() {
        let registry = Registry::new(Duration::from_secs(5));
        let owner = Caller::owner(ToolPolicy::allow_all());
        let fingerprint = |style| registry.visible_fingerprint(&owner, style);
        registry.register(vec![tool("mcp.up.echo", "Echoes.")]).unwrap();
        let (native, strict) = (fingerprint(NameStyle::Native), fingerprint(NameStyle::Strict));

        // A reconnect re-registers equal tools as new entries: nothing a client sees changed.
        registry
            .replace_prefix("mcp.up.", vec![tool("mcp.up.echo", "Echoes.")])
            .unwrap();
        assert_eq!(fingerprint(NameStyle::Native), native);
        assert_eq!(fingerprint(NameStyle::Strict), strict);

        // New content, or a new tool, is a change.
        registry
            .replace_prefix("mcp.up.", vec![tool("mcp.up.echo", "Echoes louder.")])
            .unwrap();
        assert_ne!(fingerprint(NameStyle::Native), native);
        registry
            .replace_prefix("mcp.up.", vec![tool("mcp.up.echo", "Echoes.")])
            .unwrap();
        assert_eq!(fingerprint(NameStyle::Native), native);
        registry.register(vec![tool("mcp.up.other", "Other.")]).unwrap();
        assert_ne!(fingerprint(NameStyle::Native), native);
    }

    #[test]
    fn tools_a_caller_cannot_see_do_not_count() {
        let registry = Registry::new(Duration::from_secs(5));
        let limited = Caller::owner(ToolPolicy::parse(&["mcp.up.echo".to_owned()]).unwrap());
        registry.register(vec![tool("mcp.up.echo", "Echoes.")]).unwrap();
        let before = registry.visible_fingerprint(&limited, NameStyle::Native);
        registry.register(vec![tool("mcp.up.hidden", "Hidden.")]).unwrap();
        assert_eq!(registry.visible_fingerprint(&limited, NameStyle::Native), before);
    }
}

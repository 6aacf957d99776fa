//! Tool access policy: which tool names a caller may see and call.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// One allowed-tools pattern: `*` (everything), `prefix.*` / `prefix*` (a family), or an exact name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolPattern {
    Any,
    Prefix(String),
    Exact(String),
}

impl ToolPattern {
    pub fn parse(pattern: &str) -> Result<Self, PolicyError> {
        let pattern = pattern.trim();
        if pattern.is_empty() {
            return Err(PolicyError::Empty);
        }
        if pattern == "*" {
            return Ok(Self::Any);
        }
        match pattern.strip_suffix('*') {
            Some(prefix) if prefix.contains('*') => Err(PolicyError::Wildcard(pattern.to_owned())),
            Some(prefix) => Ok(Self::Prefix(prefix.to_owned())),
            None if pattern.contains('*') => Err(PolicyError::Wildcard(pattern.to_owned())),
            None => Ok(Self::Exact(pattern.to_owned())),
        }
    }

    /// Whether every name this pattern matches is also matched by `other`'s grant; used to keep
    /// what an operator hands on within what it holds.
    pub fn within(&self, grant: &ToolPattern) -> bool {
        match (grant, self) {
            (Self::Any, _) => true,
            (Self::Prefix(outer), Self::Prefix(inner)) => inner.starts_with(outer.as_str()),
            (Self::Prefix(outer), Self::Exact(name)) => name.starts_with(outer.as_str()),
            (Self::Exact(outer), Self::Exact(name)) => outer == name,
            _ => false,
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Self::Exact(exact) => name == exact,
        }
    }

    /// The names both patterns match, as one pattern (`None` when they share none): a prefix
    /// inside another prefix is the longer one, an exact name inside a prefix is that name.
    pub fn intersect(&self, other: &ToolPattern) -> Option<ToolPattern> {
        if self.within(other) {
            Some(self.clone())
        } else if other.within(self) {
            Some(other.clone())
        } else {
            None
        }
    }

    /// How the pattern is written.
    fn text(&self) -> String {
        match self {
            Self::Any => "*".into(),
            Self::Prefix(prefix) => format!("{prefix}*"),
            Self::Exact(name) => name.clone(),
        }
    }

    /// Whether some name under `namespace` (e.g. `mcp.`) could match this pattern.
    pub fn reaches(&self, namespace: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Prefix(prefix) => prefix.starts_with(namespace) || namespace.starts_with(prefix.as_str()),
            Self::Exact(exact) => exact.starts_with(namespace),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("an allowed-tools pattern is empty")]
    Empty,
    #[error("allowed-tools pattern `{0}`: `*` may only appear once, at the end (e.g. `agentos.mem_*`)")]
    Wildcard(String),
}

/// The set of tools a caller may use. Cheap to clone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct ToolPolicy {
    patterns: Arc<[ToolPattern]>,
    source: Arc<[String]>,
}

impl ToolPolicy {
    pub fn allow_all() -> Self {
        Self {
            patterns: Arc::from(vec![ToolPattern::Any]),
            source: Arc::from(vec!["*".to_owned()]),
        }
    }

    /// A policy that allows nothing.
    pub fn none() -> Self {
        Self {
            patterns: Arc::from(Vec::new()),
            source: Arc::from(Vec::new()),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether everything `self` allows is allowed by `grant` too.
    pub fn within(&self, grant: &ToolPolicy) -> bool {
        self.patterns
            .iter()
            .all(|pattern| grant.patterns.iter().any(|outer| pattern.within(outer)))
    }

    /// The patterns of `self` that `grant` does not cover, for error messages.
    pub fn beyond<'a>(&'a self, grant: &ToolPolicy) -> Vec<&'a str> {
        self.patterns
            .iter()
            .zip(self.source.iter())
            .filter(|(pattern, _)| !grant.patterns.iter().any(|outer| pattern.within(outer)))
            .map(|(_, source)| source.as_str())
            .collect()
    }

    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, PolicyError> {
        let parsed = patterns
            .iter()
            .map(|p| ToolPattern::parse(p.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            patterns: Arc::from(parsed),
            source: patterns.iter().map(|p| p.as_ref().trim().to_owned()).collect(),
        })
    }

    /// The tools both policies allow, and only those: a call allowed by the result is allowed by
    /// each (a skill's declared tools against its caller's, say). Exact, because the
    /// intersection of two patterns is again a pattern.
    pub fn intersect(&self, other: &ToolPolicy) -> ToolPolicy {
        let mut patterns: Vec<ToolPattern> = Vec::new();
        for mine in self.patterns.iter() {
            for theirs in other.patterns.iter() {
                if let Some(both) = mine.intersect(theirs)
                    && !patterns.iter().any(|kept| both.within(kept))
                {
                    patterns.retain(|kept| !kept.within(&both));
                    patterns.push(both);
                }
            }
        }
        Self {
            source: patterns.iter().map(ToolPattern::text).collect(),
            patterns: Arc::from(patterns),
        }
    }

    pub fn allows(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(name))
    }

    pub fn patterns(&self) -> &[String] {
        &self.source
    }

    /// Each parsed pattern beside the text it was written as.
    pub fn entries(&self) -> impl Iterator<Item = (&ToolPattern, &str)> {
        self.patterns.iter().zip(self.source.iter().map(String::as_str))
    }
}

impl TryFrom<Vec<String>> for ToolPolicy {
    type Error = PolicyError;
    fn try_from(value: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ToolPolicy> for Vec<String> {
    fn from(value: ToolPolicy) -> Self {
        value.source.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_family_and_everything() {
        let policy = ToolPolicy::parse(&["agentos.mem_*", "agentos.time_now"]).unwrap();
        assert!(policy.allows("agentos.mem_set"));
        assert!(policy.allows("agentos.time_now"));
        assert!(!policy.allows("agentos.time_nowish"));
        assert!(!policy.allows("agentos.net_http_get"));
        assert!(ToolPolicy::allow_all().allows("mcp.github.create_issue"));
        let family = ToolPolicy::parse(&["mcp.github.*"]).unwrap();
        assert!(family.allows("mcp.github.x"));
        assert!(!family.allows("mcp.githubx.y"));
    }

    #[test]
    fn a_policy_is_within_a_grant_only_if_every_pattern_is_covered() {
        let grant = ToolPolicy::parse(&["agentos.*"]).unwrap();
        assert!(
            ToolPolicy::parse(&["agentos.mem_*", "agentos.time_now"])
                .unwrap()
                .within(&grant)
        );
        let wider = ToolPolicy::parse(&["agentos.mem_*", "mcp.github.*"]).unwrap();
        assert!(!wider.within(&grant));
        assert_eq!(wider.beyond(&grant), vec!["mcp.github.*"]);
        assert!(!ToolPolicy::allow_all().within(&grant));
        assert!(ToolPolicy::allow_all().within(&ToolPolicy::allow_all()));
        assert!(!ToolPolicy::parse(&["agentos*"]).unwrap().within(&grant));
        assert!(ToolPolicy::none().within(&grant));
    }

    #[test]
    fn an_intersection_allows_exactly_what_both_allow() {
        let agent = ToolPolicy::parse(&["agentos.*", "mcp.github.create_issue"]).unwrap();
        let skill = ToolPolicy::parse(&["agentos.net_*", "agentos.mem_get", "mcp.*", "mcp.slack.post"]).unwrap();
        let both = agent.intersect(&skill);
        assert_eq!(
            both.patterns(),
            ["agentos.net_*", "agentos.mem_get", "mcp.github.create_issue"]
        );
        for name in [
            "agentos.net_http_get",
            "agentos.mem_get",
            "agentos.mem_set",
            "mcp.github.create_issue",
            "mcp.github.delete_repo",
            "mcp.slack.post",
            "skill.x.y",
        ] {
            assert_eq!(both.allows(name), agent.allows(name) && skill.allows(name), "{name}");
        }
        assert_eq!(
            ToolPolicy::allow_all().intersect(&skill),
            skill.intersect(&ToolPolicy::allow_all())
        );
        assert!(agent.intersect(&ToolPolicy::none()).is_empty());
        let disjoint = ToolPolicy::parse(&["mcp.*"]).unwrap();
        assert!(
            ToolPolicy::parse(&["agentos.*"])
                .unwrap()
                .intersect(&disjoint)
                .is_empty()
        );
        // Overlapping grants collapse to the wider shared pattern, without duplicates.
        let wide = ToolPolicy::parse(&["agentos.*", "agentos.mem_*"]).unwrap();
        assert_eq!(wide.intersect(&ToolPolicy::allow_all()).patterns(), ["agentos.*"]);
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        assert_eq!(ToolPolicy::parse(&[""]), Err(PolicyError::Empty));
        assert!(matches!(ToolPolicy::parse(&["a*b"]), Err(PolicyError::Wildcard(_))));
        assert!(matches!(ToolPolicy::parse(&["a**"]), Err(PolicyError::Wildcard(_))));
    }
}

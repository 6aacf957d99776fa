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

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Self::Exact(exact) => name == exact,
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

    pub fn allows(&self, name: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(name))
    }

    pub fn patterns(&self) -> &[String] {
        &self.source
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
    fn bad_patterns_are_refused_with_a_reason() {
        assert_eq!(ToolPolicy::parse(&[""]), Err(PolicyError::Empty));
        assert!(matches!(ToolPolicy::parse(&["a*b"]), Err(PolicyError::Wildcard(_))));
        assert!(matches!(ToolPolicy::parse(&["a**"]), Err(PolicyError::Wildcard(_))));
    }
}

//! Strict tool names: a deterministic, collision-free, reversible mapping of registry names onto
//! `^[a-zA-Z0-9_-]{1,64}$`, the form many LLM APIs insist on.
//!
//! The mapping is a pure function of the set of registered names:
//! 1. a name that is already strict keeps itself (canonical names are unique, so these never clash);
//! 2. every other name, in byte order, becomes its sanitised form (each character outside
//!    `[a-zA-Z0-9_-]` turned into `_`, cut to 64 characters) if no earlier name took it;
//! 3. otherwise it gets its sanitised form cut to 55 characters plus `_` and 8 hex digits of a
//!    stable hash of the original name (and a counter in the astronomically rare case that clashes).
//!
//! The reverse direction is a table lookup, so every strict name maps back to exactly one tool.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

pub const MAX_STRICT_LEN: usize = 64;
const HASHED_PREFIX_LEN: usize = 55;

/// How a client wants tool names spelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NameStyle {
    /// Registry names as they are, e.g. `agentos.mem_set`.
    #[default]
    Native,
    /// Names matching `^[a-zA-Z0-9_-]{1,64}$`, e.g. `agentos_mem_set`.
    Strict,
}

impl std::str::FromStr for NameStyle {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "native" => Ok(Self::Native),
            "strict" => Ok(Self::Strict),
            other => Err(format!("unknown name style `{other}`: use `native` or `strict`")),
        }
    }
}

pub fn is_strict(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_STRICT_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn sanitise(name: &str, max_len: usize) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(max_len)
        .collect()
}

/// FNV-1a: stable across runs, platforms and versions, unlike std's hasher.
fn stable_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Both directions of the mapping for one set of names.
#[derive(Debug, Default, Clone)]
pub struct StrictNames {
    to_strict: HashMap<Arc<str>, Arc<str>>,
    from_strict: HashMap<Arc<str>, Arc<str>>,
}

impl StrictNames {
    pub fn build<'a>(names: impl IntoIterator<Item = &'a Arc<str>>) -> Self {
        let sorted: BTreeSet<&Arc<str>> = names.into_iter().collect();
        let mut map = Self::default();
        for name in sorted.iter().filter(|n| is_strict(n)) {
            map.insert(name, (*name).clone());
        }
        for name in sorted.iter().filter(|n| !is_strict(n)) {
            let plain = sanitise(name, MAX_STRICT_LEN);
            let strict = if !plain.is_empty() && !map.from_strict.contains_key(plain.as_str()) {
                plain
            } else {
                let prefix = sanitise(name, HASHED_PREFIX_LEN);
                let hash = stable_hash(name);
                let mut candidate = format!("{prefix}_{:08x}", hash as u32);
                let mut bump = 1u32;
                while map.from_strict.contains_key(candidate.as_str()) {
                    candidate = format!("{prefix}_{:08x}", (hash as u32).wrapping_add(bump));
                    bump += 1;
                }
                candidate
            };
            map.insert(name, Arc::from(strict));
        }
        map
    }

    fn insert(&mut self, name: &Arc<str>, strict: Arc<str>) {
        self.from_strict.insert(strict.clone(), name.clone());
        self.to_strict.insert(name.clone(), strict);
    }

    pub fn strict_of(&self, name: &str) -> Option<&Arc<str>> {
        self.to_strict.get(name)
    }

    pub fn native_of(&self, strict: &str) -> Option<&Arc<str>> {
        self.from_strict.get(strict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(names: &[&str]) -> (StrictNames, Vec<Arc<str>>) {
        let names: Vec<Arc<str>> = names.iter().map(|n| Arc::from(*n)).collect();
        (StrictNames::build(&names), names)
    }

    #[test]
    fn dotted_names_become_underscored_and_map_back() {
        let (map, _) = build(&["agentos.mem_set", "agentos.time_now"]);
        assert_eq!(&**map.strict_of("agentos.mem_set").unwrap(), "agentos_mem_set");
        assert_eq!(&**map.native_of("agentos_mem_set").unwrap(), "agentos.mem_set");
    }

    #[test]
    fn names_colliding_after_sanitising_stay_distinct_and_reversible() {
        let (map, names) = build(&["a.b", "a_b", "a/b", "a b"]);
        assert_eq!(
            &**map.strict_of("a_b").unwrap(),
            "a_b",
            "already-strict names keep themselves"
        );
        let stricts: BTreeSet<&str> = names.iter().map(|n| &**map.strict_of(n).unwrap()).collect();
        assert_eq!(stricts.len(), names.len(), "collision-free");
        for name in &names {
            let strict = map.strict_of(name).unwrap();
            assert!(is_strict(strict), "{strict} is strict");
            assert_eq!(map.native_of(strict).unwrap(), name, "reversible");
        }
    }

    #[test]
    fn long_names_are_cut_and_still_distinct() {
        let long_a = format!("mcp.server.{}", "x".repeat(80));
        let long_b = format!("mcp.server.{}y", "x".repeat(80));
        let (map, names) = build(&[&long_a, &long_b]);
        let a = map.strict_of(&names[0]).unwrap();
        let b = map.strict_of(&names[1]).unwrap();
        assert!(is_strict(a) && is_strict(b));
        assert_ne!(a, b);
        assert_eq!(map.native_of(a).unwrap(), &names[0]);
        assert_eq!(map.native_of(b).unwrap(), &names[1]);
        let strict_64 = "s".repeat(64);
        let (map, _) = build(&[&strict_64]);
        assert_eq!(
            &**map.strict_of(&strict_64).unwrap(),
            strict_64,
            "64 characters is still strict"
        );
    }

    #[test]
    fn mapping_is_deterministic_whatever_the_insertion_order() {
        let (first, _) = build(&["x.y", "x_y", "x-y.z", "x-y_z"]);
        let (second, _) = build(&["x-y_z", "x-y.z", "x_y", "x.y"]);
        for name in ["x.y", "x_y", "x-y.z", "x-y_z"] {
            assert_eq!(first.strict_of(name), second.strict_of(name));
        }
    }
}

/// The registry name a legacy client means by `tool` with a `server` hint: `echo` on server
/// `everything` is `mcp.everything.echo`. A tool already carrying the prefix is left alone.
pub fn with_server_hint<'a>(tool: &'a str, server: Option<&str>) -> std::borrow::Cow<'a, str> {
    match server.map(str::trim).filter(|s| !s.is_empty()) {
        Some(server) if !tool.starts_with(&format!("mcp.{server}.")) => format!("mcp.{server}.{tool}").into(),
        _ => tool.into(),
    }
}

#[cfg(test)]
mod hint_tests {
    use super::with_server_hint;

    #[test]
    fn server_hints_qualify_bare_tool_names_once() {
        assert_eq!(with_server_hint("echo", Some("everything")), "mcp.everything.echo");
        assert_eq!(
            with_server_hint("mcp.everything.echo", Some("everything")),
            "mcp.everything.echo"
        );
        assert_eq!(with_server_hint("agentos.time_now", None), "agentos.time_now");
        assert_eq!(with_server_hint("agentos.time_now", Some(" ")), "agentos.time_now");
    }
}

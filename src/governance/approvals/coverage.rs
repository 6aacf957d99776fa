//! Checks that every `approvals.require` pattern can hold something, so a typo never leaves the
//! call it was meant to hold running unheld.

use crate::registry::{RESOURCE_SCHEME, ToolPolicy};

/// Namespaces whose tools appear after start (upstreams connect, skills get installed), and the
/// resource reads and prompt gets of upstreams: a pattern there that matches nothing yet is worth
/// a warning, not a refusal.
const LATER_NAMESPACES: [&str; 4] = ["mcp.", "skill.", "resource:", "prompt:"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CoverageError {
    #[error(
        "[approvals] require: `{pattern}` matches no built-in tool, so the calls it was meant to hold \
         would run unheld{hint}. `GET /tools` on a running agentos lists the tool names."
    )]
    NoBuiltin { pattern: String, hint: String },
    #[error(
        "[approvals] require: `{0}` can match no tool: tool names start with `agentos.`, \
         `mcp.<server>.` or `skill.<slug>.` (resource reads with `resource:`, prompt gets with `prompt:`)"
    )]
    NoNamespace(String),
}

/// Checks `require` against the built-in tool names. Refuses a pattern that can only match
/// built-in tools and matches none of them, or that no tool name could ever match; answers one
/// warning per pattern for upstream or skill tools, naming `known_servers` to catch a server typo.
pub fn check_coverage(
    require: &ToolPolicy,
    builtins: &[String],
    known_servers: &[&str],
) -> Result<Vec<String>, CoverageError> {
    let mut warnings = Vec::new();
    for (pattern, source) in require.entries() {
        if builtins.iter().any(|name| pattern.matches(name)) {
            continue;
        }
        if LATER_NAMESPACES.iter().any(|namespace| pattern.reaches(namespace)) {
            warnings.extend(later_warning(source, known_servers));
            continue;
        }
        if pattern.reaches("agentos.") {
            return Err(CoverageError::NoBuiltin {
                pattern: source.to_owned(),
                hint: nearest(source, builtins)
                    .map(|name| format!(" (did you mean `{name}`?)"))
                    .unwrap_or_default(),
            });
        }
        return Err(CoverageError::NoNamespace(source.to_owned()));
    }
    Ok(warnings)
}

/// The warning for a pattern in a namespace whose tools arrive later; `None` when it names a
/// configured server and so will match once that server connects.
fn later_warning(source: &str, known_servers: &[&str]) -> Option<String> {
    let resource_server = source
        .strip_prefix("resource:")
        .and_then(|uri| uri.strip_prefix(RESOURCE_SCHEME))
        .and_then(|rest| rest.split(['/', '*']).next());
    let server = source
        .strip_prefix("mcp.")
        .and_then(|rest| rest.split(['.', '*']).next())
        .or(resource_server);
    match server {
        Some(server) if known_servers.contains(&server) => None,
        Some(server) if !server.is_empty() => Some(format!(
            "[approvals] require: `{source}` matches no tool yet, and no configured MCP server is named \
             `{server}` (configured: {}); it holds nothing until such a server connects",
            if known_servers.is_empty() {
                "none".to_owned()
            } else {
                known_servers.join(", ")
            }
        )),
        _ => Some(format!(
            "[approvals] require: `{source}` matches no tool yet; it holds nothing until a tool it names appears"
        )),
    }
}

/// The built-in name closest to a mistyped one, if any is close (at most a third of it differs).
fn nearest<'a>(typed: &str, builtins: &'a [String]) -> Option<&'a str> {
    let typed = typed.trim_end_matches('*');
    builtins
        .iter()
        .map(|name| (edit_distance(typed, name), name.as_str()))
        .filter(|(distance, _)| *distance <= typed.len().max(3) / 3)
        .min()
        .map(|(_, name)| name)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILTINS: [&str; 3] = ["agentos.mem_set", "agentos.mem_get", "agentos.net_http_get"];

    fn check(patterns: &[&str], servers: &[&str]) -> Result<Vec<String>, CoverageError> {
        let builtins: Vec<String> = BUILTINS.iter().map(|name| (*name).to_owned()).collect();
        check_coverage(&ToolPolicy::parse(patterns).unwrap(), &builtins, servers)
    }

    #[test]
    fn patterns_that_hold_a_built_in_pass_silently() {
        assert_eq!(
            check(&["agentos.mem_set", "agentos.net_*", "*", "agentos*"], &[]),
            Ok(vec![])
        );
    }

    #[test]
    fn a_built_in_pattern_matching_nothing_is_refused_with_the_nearest_name() {
        let error = check(&["agentos.mem_sett"], &[]).unwrap_err();
        assert!(error.to_string().contains("did you mean `agentos.mem_set`"), "{error}");
        let error = check(&["agentos.net_http_post"], &[]).unwrap_err();
        assert!(matches!(error, CoverageError::NoBuiltin { .. }), "{error}");
        assert!(check(&["agentos.voice_*"], &[]).is_err());
    }

    #[test]
    fn a_pattern_outside_every_namespace_is_refused() {
        assert_eq!(
            check(&["mem_set"], &[]),
            Err(CoverageError::NoNamespace("mem_set".into()))
        );
        assert!(check(&["github.*"], &[]).is_err());
    }

    #[test]
    fn upstream_and_skill_patterns_warn_unless_they_name_a_configured_server() {
        assert_eq!(
            check(&["mcp.github.*", "mcp.github.create_issue"], &["github"]),
            Ok(vec![])
        );
        let warnings = check(&["mcp.gihtub.*"], &["github"]).unwrap();
        assert!(
            warnings[0].contains("no configured MCP server is named `gihtub`"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("configured: github"), "{warnings:?}");
        assert_eq!(check(&["skill.pdf.*", "mcp.*"], &[]).unwrap().len(), 2);
        assert_eq!(
            check(&["resource:agentos+mcp://everything/*", "prompt:greet"], &[])
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            check(&["resource:agentos+mcp://everything/*"], &["everything"]),
            Ok(vec![])
        );
        assert_eq!(
            check(&["resource:agentos+mcp://everything/*", "prompt:greet"], &[])
                .unwrap()
                .len(),
            2
        );
    }
}

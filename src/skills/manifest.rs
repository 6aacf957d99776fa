//! `skill.toml`: what a skill is (slug, version, author, ...), what each capability does, what it
//! may reach (tools and network domains) and the limits it runs under. Parsed strictly: an
//! unknown key, a bad slug or version, or a limit out of range is a publish error that names the
//! field and says what is allowed.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::registry::ToolPattern;

/// The most a manifest may ask for; operators may lower them for their server.
pub const MAX_FUEL: u64 = 100_000_000_000;
pub const MAX_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;
pub const MAX_WALL_MS: u64 = 300_000;
pub const MAX_HOST_CALLS: u32 = 10_000;
pub const MAX_OUTPUT_BYTES: u64 = 64 * 1024 * 1024;

/// A skill's manifest, `skill.toml` beside its component.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "agentos skill manifest (skill.toml)")]
pub struct Manifest {
    /// The skill's stable id, used in tool names (`skill.<slug>.<capability>`): 2-40 lowercase
    /// letters, digits and `-`, starting with a letter, e.g. `page-links`.
    #[schemars(length(min = 2, max = 40), regex(pattern = r"^[a-z][a-z0-9-]*[a-z0-9]$"))]
    pub slug: String,
    /// A human name, e.g. `Page links`.
    #[schemars(length(min = 1, max = 80))]
    pub name: String,
    /// This release's semantic version, e.g. `1.2.0`. A slug's versions only go up.
    pub version: String,
    /// Who publishes it: a person or an organisation.
    #[schemars(length(min = 1, max = 80))]
    pub author: String,
    /// One word or two that group it in the marketplace, e.g. `web`, `text`, `data`.
    #[schemars(length(min = 1, max = 40))]
    pub category: String,
    /// What the skill is for, for people browsing the marketplace and for models choosing a tool.
    #[schemars(length(min = 1, max = 2000))]
    pub description: String,
    /// Words to find it by (at most 20, each 1-40 characters).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The component file, relative to the manifest.
    #[serde(default = "default_component")]
    pub component: String,
    /// One entry per capability, keyed by the exported function's name as written in WIT
    /// (kebab-case, e.g. `read-page`); every exported function must have one.
    pub capabilities: BTreeMap<String, CapabilityManifest>,
    /// What the skill may reach through the host's `call-tool`; nothing by default.
    #[serde(default)]
    pub permissions: SkillPermissions,
    /// What one call may use; defaults suit a small skill.
    #[serde(default)]
    pub limits: SkillLimits,
}

fn default_component() -> String {
    "skill.wasm".into()
}

/// One capability's description: the tool description a model reads.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct CapabilityManifest {
    /// What it does, when to use it and what it returns.
    #[schemars(length(min = 1, max = 2000))]
    pub description: String,
    /// True when it changes nothing (it may still read through host calls); clients may call
    /// read-only tools without asking.
    #[serde(default)]
    pub read_only: bool,
}

/// What a skill may reach. A host call also needs the calling agent's permission: the skill
/// gets the intersection.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillPermissions {
    /// Tool patterns it may call, as in an agent's `allowedTools`: `agentos.net_http_get`,
    /// `agentos.mem_*`, `mcp.github.*`.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Hosts its network calls may reach, as in an agent's `allowedDomains`: `example.com`
    /// (and its subdomains), `*.example.com` (subdomains only) or `*` (any host the agent may
    /// reach). Empty: none.
    #[serde(default)]
    pub domains: Vec<String>,
}

/// What one call of a capability may use. Past any of them the call ends with an error naming
/// the limit; other calls are unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SkillLimits {
    /// WebAssembly instructions' worth of fuel (default 2,000,000,000, roughly a second of work).
    #[schemars(range(min = 1, max = 100_000_000_000u64))]
    pub fuel: u64,
    /// Largest linear memory, in bytes (default 64 MiB).
    #[schemars(range(min = 65536, max = 1073741824u64))]
    pub memory_bytes: u64,
    /// Longest a call may take, host calls included, in milliseconds (default 10,000).
    #[schemars(range(min = 1, max = 300_000))]
    pub wall_ms: u64,
    /// Most host calls (`call-tool`) in one call (default 100).
    #[schemars(range(min = 0, max = 10_000))]
    pub host_calls: u32,
    /// Largest result, in bytes of JSON (default 1 MiB).
    #[schemars(range(min = 1, max = 67108864u64))]
    pub output_bytes: u64,
}

impl Default for SkillLimits {
    fn default() -> Self {
        Self {
            fuel: 2_000_000_000,
            memory_bytes: 64 * 1024 * 1024,
            wall_ms: 10_000,
            host_calls: 100,
            output_bytes: 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("skill.toml is not valid: {0}")]
    Syntax(String),
    #[error("skill.toml: `{field}` {problem}")]
    Field { field: String, problem: String },
}

fn field(name: impl Into<String>, problem: impl Into<String>) -> ManifestError {
    ManifestError::Field {
        field: name.into(),
        problem: problem.into(),
    }
}

/// A slug, or a capability name in WIT's kebab-case: lowercase words of letters and digits
/// joined by single `-`, starting with a letter.
pub fn is_kebab_name(name: &str) -> bool {
    let starts_with_letter = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase());
    starts_with_letter
        && name
            .split('-')
            .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

fn check_text(name: &str, value: &str, max: usize) -> Result<(), ManifestError> {
    let length = value.chars().count();
    if value.trim().is_empty() || length > max {
        return Err(field(name, format!("must be 1-{max} characters (it has {length})")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n') {
        return Err(field(name, "must not contain control characters"));
    }
    Ok(())
}

fn check_range(name: &str, value: u64, min: u64, max: u64) -> Result<(), ManifestError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(field(name, format!("is {value}; it must be between {min} and {max}")))
    }
}

impl Manifest {
    /// Parses and checks `skill.toml` text.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let manifest: Manifest = toml::from_str(text).map_err(|error| ManifestError::Syntax(error.to_string()))?;
        manifest.check()?;
        Ok(manifest)
    }

    /// The parsed version (checked by [`Manifest::parse`]).
    pub fn semver(&self) -> Result<semver::Version, ManifestError> {
        semver::Version::parse(&self.version)
            .map_err(|error| field("version", format!("is not a semantic version like 1.2.0 ({error})")))
    }

    fn check(&self) -> Result<(), ManifestError> {
        if !(2..=40).contains(&self.slug.len()) || !is_kebab_name(&self.slug) {
            return Err(field(
                "slug",
                "must be 2-40 lowercase letters, digits and single `-`, starting with a letter (e.g. `page-links`)",
            ));
        }
        check_text("name", &self.name, 80)?;
        self.semver()?;
        check_text("author", &self.author, 80)?;
        check_text("category", &self.category, 40)?;
        check_text("description", &self.description, 2000)?;
        if self.tags.len() > 20 {
            return Err(field("tags", format!("has {} tags; at most 20", self.tags.len())));
        }
        for tag in &self.tags {
            check_text("tags", tag, 40)?;
        }
        let component = std::path::Path::new(&self.component);
        let plain_relative = component
            .components()
            .all(|part| matches!(part, std::path::Component::Normal(_)));
        if self.component.is_empty() || !plain_relative || !self.component.ends_with(".wasm") {
            return Err(field(
                "component",
                "must be a `.wasm` file inside the skill's directory, e.g. `skill.wasm`",
            ));
        }
        if self.capabilities.is_empty() {
            return Err(field(
                "capabilities",
                "must describe at least one exported function, e.g. [capabilities.read-page]",
            ));
        }
        for (name, capability) in &self.capabilities {
            if name.len() > 64 || !is_kebab_name(name) {
                return Err(field(
                    format!("capabilities.{name}"),
                    "must be named as the WIT export is: kebab-case, e.g. `read-page`",
                ));
            }
            check_text(
                &format!("capabilities.{name}.description"),
                &capability.description,
                2000,
            )?;
        }
        for pattern in &self.permissions.tools {
            ToolPattern::parse(pattern).map_err(|error| field("permissions.tools", error.to_string()))?;
        }
        for domain in &self.permissions.domains {
            let host = domain.strip_prefix("*.").unwrap_or(domain);
            let valid = domain == "*"
                || (!host.is_empty()
                    && host.len() <= 253
                    && host.split('.').all(|label| {
                        !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    }));
            if !valid {
                return Err(field(
                    "permissions.domains",
                    format!("`{domain}` is not a host name like `example.com`, `*.example.com` or `*`"),
                ));
            }
        }
        let limits = &self.limits;
        check_range("limits.fuel", limits.fuel, 1, MAX_FUEL)?;
        check_range("limits.memory_bytes", limits.memory_bytes, 65_536, MAX_MEMORY_BYTES)?;
        check_range("limits.wall_ms", limits.wall_ms, 1, MAX_WALL_MS)?;
        check_range("limits.host_calls", limits.host_calls.into(), 0, MAX_HOST_CALLS.into())?;
        check_range("limits.output_bytes", limits.output_bytes, 1, MAX_OUTPUT_BYTES)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
slug = "page-links"
name = "Page links"
version = "1.2.0"
author = "agentos"
category = "web"
description = "Reads a web page and returns its title and links."
tags = ["web", "html"]

[capabilities.read-page]
description = "Fetches a page and returns its title and the links on it."
read_only = true

[permissions]
tools = ["agentos.net_http_get"]
domains = ["example.com"]

[limits]
wall_ms = 5000
"#;

    #[test]
    fn a_good_manifest_parses_with_defaults_filled_in() {
        let manifest = Manifest::parse(GOOD).unwrap();
        assert_eq!(manifest.slug, "page-links");
        assert_eq!(manifest.component, "skill.wasm");
        assert_eq!(manifest.semver().unwrap(), semver::Version::new(1, 2, 0));
        assert!(manifest.capabilities["read-page"].read_only);
        assert_eq!(manifest.limits.wall_ms, 5000);
        assert_eq!(manifest.limits.host_calls, SkillLimits::default().host_calls);
    }

    #[test]
    fn each_mistake_is_named() {
        let cases = [
            (r#"slug = "Page_Links""#, "slug"),
            (r#"version = "1.2""#, "version"),
            (r#"component = "../other.wasm""#, "component"),
            (r#"component = "/etc/passwd""#, "component"),
            ("fuel = 0", "limits.fuel"),
            ("memory_bytes = 1", "limits.memory_bytes"),
            (r#"tools = ["agentos.net_http_get", "**bad"]"#, "permissions.tools"),
            (r#"domains = ["exa mple.com"]"#, "permissions.domains"),
        ];
        for (line, field_name) in cases {
            let key = line.split(' ').next().unwrap();
            let text = GOOD
                .lines()
                .map(|l| if l.starts_with(&format!("{key} =")) { line } else { l })
                .collect::<Vec<_>>()
                .join("\n");
            let text = if text.contains(line) {
                text
            } else {
                // Keys the example does not set go into their table.
                let table = if key == "tools" || key == "domains" {
                    "[permissions]"
                } else {
                    "[limits]"
                };
                text.replace(table, &format!("{table}\n{line}"))
            };
            let error = Manifest::parse(&text).unwrap_err().to_string();
            assert!(error.contains(&format!("`{field_name}`")), "{line}: {error}");
        }
        let unknown = Manifest::parse(&format!("{GOOD}\n[extra]\nx = 1\n")).unwrap_err();
        assert!(unknown.to_string().contains("unknown field"), "{unknown}");
        let bad_capability = GOOD.replace("[capabilities.read-page]", "[capabilities.Read_Page]");
        let error = Manifest::parse(&bad_capability).unwrap_err().to_string();
        assert!(error.contains("capabilities.Read_Page"), "{error}");
    }

    #[test]
    fn kebab_names() {
        for good in ["a1", "read-page", "x-2-y"] {
            assert!(is_kebab_name(good), "{good}");
        }
        for bad in ["", "-a", "a-", "a--b", "A", "1a", "a_b"] {
            assert!(!is_kebab_name(bad), "{bad}");
        }
    }
}

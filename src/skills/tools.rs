//! The marketplace as registry tools: `agentos.skills_search`, `agentos.skill_publish`
//! (operators), `agentos.skill_install`, `agentos.skill_uninstall`, `agentos.skills_installed`
//! and `agentos.skill_use`. The REST routes `/api/skills*` and the CLI call these.

use std::sync::{Arc, Weak};
use std::time::Instant;

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Skills;
use crate::registry::{Audience, CallError, Hints, Registry, Tool, ToolBuilder, ToolFailure, output_of, result_text};
use crate::store::{SkillQuery, SkillSort, SkillSummary};

/// Largest `skill.toml` accepted, in bytes.
const MAX_MANIFEST_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Sort {
    /// Most installed first.
    #[default]
    Popular,
    /// Most recently published first.
    Newest,
    /// By name, A to Z.
    Name,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SearchArgs {
    /// Words that must all appear in a skill's slug, name, description, author or tags.
    #[schemars(length(max = 200))]
    search: Option<String>,
    /// Only this category (e.g. `web`, `text`), any case.
    #[schemars(length(min = 1, max = 40))]
    category: Option<String>,
    /// Only this author, any case.
    #[schemars(length(min = 1, max = 80))]
    author: Option<String>,
    /// Order of the results (default `popular`).
    #[serde(default)]
    sort: Sort,
    /// Page number, from 1 (default 1).
    #[schemars(range(min = 1, max = 1000000))]
    page: Option<u64>,
    /// Skills per page, 1-100 (default 50).
    #[schemars(range(min = 1, max = 100))]
    limit: Option<u64>,
}

/// A skill as the marketplace shows it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkillOut {
    /// The skill's id: give it (or the slug) to install.
    id: String,
    slug: String,
    name: String,
    author: String,
    category: String,
    description: String,
    tags: Vec<String>,
    /// The newest published version; installs take it unless they pin another.
    latest_version: String,
    /// Agents that have it installed.
    installs: u64,
    created_at: String,
    updated_at: String,
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl From<SkillSummary> for SkillOut {
    fn from(skill: SkillSummary) -> Self {
        Self {
            tags: serde_json::from_str(&skill.tags).unwrap_or_default(),
            id: skill.id,
            slug: skill.slug,
            name: skill.name,
            author: skill.author,
            category: skill.category,
            description: skill.description,
            latest_version: skill.latest_version,
            installs: skill.installs,
            created_at: time(skill.created_at_ms),
            updated_at: time(skill.updated_at_ms),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
struct Pagination {
    page: u64,
    limit: u64,
    /// Skills matching in all.
    total: u64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct SearchResult {
    skills: Vec<SkillOut>,
    pagination: Pagination,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PublishArgs {
    /// The text of the skill's `skill.toml`.
    #[schemars(length(min = 1, max = 65536))]
    manifest: String,
    /// The component (`.wasm`), base64-encoded.
    #[schemars(length(min = 1))]
    component: String,
    /// A publisher's ed25519 signature (base64) made with `agentos skills sign`; checked
    /// against `skills.trusted_keys`. Required when the server sets `skills.require_signatures`.
    #[schemars(length(min = 1, max = 200))]
    signature: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct CapabilityOut {
    /// The tool an agent that installs the skill gets.
    tool: String,
    description: String,
    read_only: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct PublishResult {
    skill: SkillOut,
    /// The version just published.
    version: String,
    /// SHA-256 of the component: checked every time it is loaded.
    sha256: String,
    bytes: u64,
    capabilities: Vec<CapabilityOut>,
    /// The trusted key that signed it; absent when unsigned.
    #[serde(skip_serializing_if = "Option::is_none")]
    signed_by: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InstallArgs {
    /// The skill's id or slug, as `agentos.skills_search` lists it.
    #[schemars(length(min = 1, max = 64))]
    skill_id: String,
    /// A published version to pin (default: the latest). Installing again with another
    /// version moves the pin: that is how to upgrade or go back.
    #[schemars(length(min = 1, max = 64))]
    version: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct InstalledOut {
    /// This install's id.
    id: String,
    installed_at: String,
    /// The version pinned.
    version: String,
    skill: SkillOut,
    /// The tools it gives you, `skill.<slug>.<capability>`.
    tools: Vec<String>,
}

impl From<super::Installed> for InstalledOut {
    fn from(installed: super::Installed) -> Self {
        Self {
            id: installed.install.id,
            installed_at: time(installed.install.installed_at_ms),
            version: installed.install.version,
            skill: installed.skill.into(),
            tools: installed.tools,
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct InstallResult {
    installed: InstalledOut,
    /// False when the skill was installed already and only its pinned version changed.
    new_install: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UninstallArgs {
    /// The skill's id or slug.
    #[schemars(length(min = 1, max = 64))]
    skill_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct UninstallResult {
    /// The skill removed; its tools are gone from your listing.
    uninstalled: SkillOut,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct InstalledResult {
    installed_skills: Vec<InstalledOut>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct UseArgs {
    /// The installed skill's slug.
    #[schemars(length(min = 2, max = 40))]
    skill_slug: String,
    /// The capability (its WIT name, e.g. `read-page`).
    #[schemars(length(min = 1, max = 64))]
    capability: String,
    /// The capability's input (default `{}`), as its tool's inputSchema describes.
    #[serde(default)]
    params: serde_json::Map<String, Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct UseResult {
    success: bool,
    /// What the capability returned (its tool's structuredContent).
    result: Value,
    execution_time_ms: f64,
}

fn registry_of(registry: &Weak<Registry>) -> Result<Arc<Registry>, ToolFailure> {
    registry
        .upgrade()
        .ok_or_else(|| ToolFailure::busy("agentos is shutting down"))
}

pub fn tools(skills: &Arc<Skills>, registry: &Arc<Registry>) -> Vec<Arc<dyn Tool>> {
    let registry = Arc::downgrade(registry);
    let (search, publish, install, uninstall, installed) = (
        skills.clone(),
        skills.clone(),
        skills.clone(),
        skills.clone(),
        skills.clone(),
    );
    vec![
        ToolBuilder::new("agentos.skills_search")
            .title("Browse the skills marketplace")
            .description(
                "Lists the skills published on this agentos, a page at a time: each with its id, \
                 slug, description, author, category, tags, latest version and install count. Filter \
                 with search words, category or author; sort by popular, newest or name. Install one \
                 with agentos.skill_install to get its capabilities as tools.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: SearchArgs, _ctx| {
                let skills = search.clone();
                async move {
                    let query = SkillQuery {
                        search: args
                            .search
                            .as_deref()
                            .unwrap_or_default()
                            .split_whitespace()
                            .map(str::to_owned)
                            .collect(),
                        category: args.category,
                        author: args.author,
                        sort: match args.sort {
                            Sort::Popular => SkillSort::Popular,
                            Sort::Newest => SkillSort::Newest,
                            Sort::Name => SkillSort::Name,
                        },
                        page: args.page.unwrap_or(1),
                        limit: args.limit.unwrap_or(50),
                    };
                    let (page, total) = skills.search(&query).await?;
                    Ok(SearchResult {
                        skills: page.into_iter().map(SkillOut::from).collect(),
                        pagination: Pagination {
                            page: query.page,
                            limit: query.limit,
                            total,
                        },
                    })
                }
            }),
        ToolBuilder::new("agentos.skill_publish")
            .title("Publish a skill")
            .description(
                "Publishes a skill, or a new version of one, to this agentos's marketplace: the text \
                 of its skill.toml and its WebAssembly component (base64). The component is checked \
                 before anything is stored: it must compile, import only agentos's host interface \
                 and WASI, and export every capability the manifest describes. Versions of a slug \
                 only go up. Operators only. Large components are easier to publish with \
                 `agentos skills publish <dir>` or POST /api/skills/publish.",
            )
            .hints(Hints::WRITE)
            .audience(Audience::Operators)
            .handler(move |args: PublishArgs, ctx| {
                let skills = publish.clone();
                async move {
                    if args.manifest.len() > MAX_MANIFEST_BYTES {
                        return Err(ToolFailure::invalid_input("`manifest` is larger than 64 KiB"));
                    }
                    let encoded_max = skills.config.max_component_bytes.div_ceil(3) * 4;
                    if args.component.len() as u64 > encoded_max {
                        return Err(super::SkillsError::TooLarge {
                            bytes: args.component.len() as u64 / 4 * 3,
                            max: skills.config.max_component_bytes,
                        }
                        .into());
                    }
                    let wasm = base64::engine::general_purpose::STANDARD
                        .decode(args.component.trim())
                        .map_err(|error| super::SkillsError::Encoding(error.to_string()))?;
                    let published = skills
                        .publish(&ctx.caller.agent_id, &args.manifest, wasm, args.signature.as_deref())
                        .await?;
                    let slug = published.skill.slug.clone();
                    Ok(PublishResult {
                        skill: published.skill.into(),
                        version: published.version,
                        signed_by: published.signed_by,
                        sha256: published.sha256,
                        bytes: published.bytes,
                        capabilities: published
                            .capabilities
                            .iter()
                            .map(|c| CapabilityOut {
                                tool: c.tool_name(&slug),
                                description: c.description.clone(),
                                read_only: c.read_only,
                            })
                            .collect(),
                    })
                }
            }),
        ToolBuilder::new("agentos.skill_install")
            .title("Install a skill")
            .description(
                "Installs a marketplace skill for you: its capabilities become your tools \
                 `skill.<slug>.<capability>` (your tool list changes at once; other agents do not \
                 see them). Pins the latest version unless you name one; installing again with \
                 another version upgrades or downgrades the pin.",
            )
            .hints(Hints::WRITE)
            .handler(move |args: InstallArgs, ctx| {
                let skills = install.clone();
                async move {
                    let (installed, new_install) = skills
                        .install(&ctx.caller.agent_id, &args.skill_id, args.version.as_deref())
                        .await?;
                    Ok(InstallResult {
                        installed: installed.into(),
                        new_install,
                    })
                }
            }),
        ToolBuilder::new("agentos.skill_uninstall")
            .title("Uninstall a skill")
            .description("Removes one of your installed skills; its `skill.<slug>.*` tools leave your tool list.")
            .hints(Hints::DESTRUCTIVE)
            .handler(move |args: UninstallArgs, ctx| {
                let skills = uninstall.clone();
                async move {
                    let skill = skills.uninstall(&ctx.caller.agent_id, &args.skill_id).await?;
                    Ok(UninstallResult {
                        uninstalled: skill.into(),
                    })
                }
            }),
        ToolBuilder::new("agentos.skills_installed")
            .title("List your installed skills")
            .description("Lists the skills you installed: the version pinned, the skill and the tools it gives you.")
            .hints(Hints::READ_ONLY)
            .handler(move |_args: crate::registry::Empty, ctx| {
                let skills = installed.clone();
                async move {
                    let installed = skills.installed(&ctx.caller.agent_id).await?;
                    Ok(InstalledResult {
                        installed_skills: installed.into_iter().map(InstalledOut::from).collect(),
                    })
                }
            }),
        ToolBuilder::new("agentos.skill_use")
            .title("Run an installed skill's capability")
            .description(
                "Runs a capability of a skill you installed, by slug and capability name, with its \
                 params: the same as calling the tool `skill.<slug>.<capability>` directly. Answers \
                 with the result and how long it ran.",
            )
            .handler(move |args: UseArgs, ctx| {
                let registry = registry.clone();
                async move {
                    let registry = registry_of(&registry)?;
                    let name = format!("skill.{}.{}", args.skill_slug, args.capability);
                    let started = Instant::now();
                    let outcome = registry.call(&ctx, &name, Value::Object(args.params)).await;
                    let execution_time_ms = started.elapsed().as_secs_f64() * 1000.0;
                    match outcome {
                        Ok(result) if result.is_error == Some(true) => Err(ToolFailure::new(result_text(&result))
                            .with_kind(crate::registry::failure_kind(&result).unwrap_or_default())),
                        Ok(result) => Ok(UseResult {
                            success: true,
                            result: output_of(&result),
                            execution_time_ms,
                        }),
                        Err(CallError::UnknownTool(_)) => Err(ToolFailure::not_found(format!(
                            "you have no skill `{}` with a capability `{}`: install it with \
                             agentos.skill_install (agentos.skills_installed lists yours)",
                            args.skill_slug, args.capability
                        ))),
                        Err(CallError::InvalidArguments { message, .. }) => Err(ToolFailure::invalid_input(message)),
                        Err(error) => Err(ToolFailure::new(error.to_string())),
                    }
                }
            }),
    ]
}

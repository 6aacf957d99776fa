//! `agentos.quota_status`: what an agent keeps in each stored family against its quota, so it
//! can see a refusal coming and know what to delete.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::config::Config;
use crate::registry::{Hints, Tool, ToolBuilder};
use crate::store::{Family, Quota, Quotas};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StatusArgs {
    /// Ops-admins only: report this agent's usage (default: yours).
    #[schemars(length(min = 1, max = 64))]
    agent_id: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct FamilyStatus {
    /// `memory`, `events`, `queue`, `knowledge`, `secrets` or `files`.
    family: &'static str,
    /// Items kept: keys, events, queued items (acknowledged ones are gone), documents, secrets
    /// or files.
    items: u64,
    /// Most items allowed; absent where only bytes are limited.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_items: Option<u64>,
    /// Bytes kept: the UTF-8 bytes of keys, names, topics and values.
    bytes: u64,
    max_bytes: u64,
    /// Share of the tighter of the two limits in use, 0-100.
    percent_used: f64,
    /// Config settings that set these limits.
    settings: Vec<&'static str>,
    /// How to make room.
    to_free: &'static str,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct StatusResult {
    agent_id: String,
    families: Vec<FamilyStatus>,
}

/// The limits and the settings behind them, as configured for `family`.
fn limits(config: &Config, limits: &Quotas, family: Family) -> (Quota, Vec<&'static str>) {
    match family {
        Family::Memory => (limits.memory, vec!["quotas.memory_items", "quotas.memory_bytes"]),
        Family::Events => (limits.events, vec!["quotas.events_items", "quotas.events_bytes"]),
        Family::Queue => (limits.queue, vec!["quotas.queue_items", "quotas.queue_bytes"]),
        Family::Knowledge => (
            limits.knowledge,
            vec!["knowledge.max_documents_per_agent", "quotas.knowledge_bytes"],
        ),
        Family::Secrets => (
            limits.secrets,
            vec!["secrets.max_secrets_per_agent", "quotas.secrets_bytes"],
        ),
        Family::Files => (
            Quota {
                max_items: u64::MAX,
                max_bytes: config.files.quota_bytes,
            },
            vec!["files.quota_bytes"],
        ),
    }
}

fn percent(used: u64, max: u64) -> f64 {
    if max == u64::MAX || max == 0 {
        return 0.0;
    }
    (used as f64 / max as f64 * 1000.0).round() / 10.0
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let services = services.clone();
    vec![
        ToolBuilder::new("agentos.quota_status")
            .title("Show storage quotas")
            .description(
                "Shows how much you keep in each stored family (memory, events, queue, knowledge, \
                 secrets, files) against your quota: items and bytes used, the limits, and how to \
                 make room. A write that would pass a quota is refused, so check here before \
                 storing a lot. Ops-admins may name another agent with agentId.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: StatusArgs, ctx| {
                let services = services.clone();
                async move {
                    let owner = super::subject(&ctx, args.agent_id.as_deref())?;
                    let usage = services.store.quota_usage(owner).await?;
                    let quotas = services.config.store_limits().quotas;
                    let families = usage
                        .into_iter()
                        .map(|(family, used)| {
                            let (quota, settings) = limits(&services.config, &quotas, family);
                            let max_items = (quota.max_items != u64::MAX).then_some(quota.max_items);
                            FamilyStatus {
                                family: family.as_str(),
                                items: used.items,
                                max_items,
                                bytes: used.bytes,
                                max_bytes: quota.max_bytes,
                                percent_used: percent(used.items, quota.max_items)
                                    .max(percent(used.bytes, quota.max_bytes)),
                                settings,
                                to_free: family.how_to_free(),
                            }
                        })
                        .collect();
                    Ok(StatusResult {
                        agent_id: owner.to_owned(),
                        families,
                    })
                }
            }),
    ]
}

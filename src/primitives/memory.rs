//! Memory: a persistent key-value store per agent, for facts and state that must outlive a
//! conversation.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Services;
use crate::registry::{Hints, Tool, ToolBuilder, ToolFailure};
use crate::store::now_ms;

const MAX_KEY_CHARS: usize = 512;
/// Ten years: long enough for "forever", short enough to keep timestamps in range.
const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;
const DEFAULT_PAGE: usize = 100;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SetArgs {
    /// The key, 1-512 characters. Use `/` to group keys, e.g. `project/alpha/status`.
    #[schemars(length(min = 1, max = 512))]
    key: String,
    /// Any JSON value: string, number, boolean, null, array or object.
    value: Value,
    /// Forget the value after this many seconds. Omit to keep it until deleted.
    #[schemars(range(min = 1, max = 315_360_000))]
    ttl_seconds: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SetResult {
    key: String,
    /// True if the key did not exist before (or had expired); false if a value was replaced.
    created: bool,
    /// Size of the stored value as JSON, in bytes.
    bytes: usize,
    /// When the value will be forgotten, in Unix milliseconds; absent if never.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeyArgs {
    /// The key, exactly as it was stored.
    #[schemars(length(min = 1, max = 512))]
    key: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct GetResult {
    key: String,
    /// Whether a value is stored under the key.
    found: bool,
    /// The stored value; null when not found.
    value: Value,
    /// When the value was last written, in Unix milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    updated_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct DeleteResult {
    key: String,
    /// True if a value was removed; false if there was none.
    deleted: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListArgs {
    /// Only keys starting with this text. Omit for all keys.
    #[serde(default)]
    prefix: String,
    /// Most entries to return (default 100).
    #[schemars(range(min = 1))]
    limit: Option<usize>,
    /// `nextCursor` from the previous page, to continue listing.
    cursor: Option<String>,
    /// Also return each value (default false: keys only).
    #[serde(default)]
    include_values: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ListedEntry {
    key: String,
    updated_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at_ms: Option<i64>,
    /// The value, when `includeValues` was true.
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ListResult {
    entries: Vec<ListedEntry>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    /// Words to look for in keys and values, e.g. `deadline alpha`. Any word may match; words
    /// also match as prefixes (`dead` finds `deadline`).
    #[schemars(length(min = 1, max = 500))]
    query: String,
    /// Most results to return (default 10, at most 100).
    #[schemars(range(min = 1, max = 100))]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SearchHit {
    key: String,
    value: Value,
    /// Relevance, higher is better: BM25 computed over your own entries only (k1 = 1.2, b = 0.75,
    /// lengths in characters), so it changes only when your memory does, never with what other
    /// agents store.
    score: f64,
    updated_at_ms: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct SearchResult {
    /// Best matches first.
    results: Vec<SearchHit>,
}

/// The words of a search query: letters and digits, lowercased, at most 32.
pub(super) fn query_words(query: &str) -> Vec<String> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(32)
        .map(str::to_lowercase)
        .collect()
}

/// How often expired values are deleted for good (they are invisible from the moment they expire).
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Deletes expired values in the background, so memory with TTLs does not grow without bound.
pub fn start(services: &Services, shutdown: tokio_util::sync::CancellationToken) {
    let store = services.store.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => match store.mem_purge_expired().await {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "expired memory values deleted"),
                    Err(error) => tracing::warn!(%error, "could not delete expired memory values"),
                },
            }
        }
    });
}

fn check_key(key: &str) -> Result<(), ToolFailure> {
    if key.is_empty() || key.chars().count() > MAX_KEY_CHARS {
        return Err(ToolFailure::new("`key` must be 1-512 characters"));
    }
    if key.chars().any(char::is_control) {
        return Err(ToolFailure::new("`key` must not contain control characters"));
    }
    Ok(())
}

fn parse_stored(text: &str) -> Result<Value, ToolFailure> {
    serde_json::from_str(text).map_err(|e| ToolFailure::new(format!("a stored value is unreadable: {e}")))
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let (set, get, delete, list, search) = (
        services.clone(),
        services.clone(),
        services.clone(),
        services.clone(),
        services.clone(),
    );
    vec![
        ToolBuilder::new("agentos.mem_set")
            .title("Remember a value")
            .description(
                "Stores any JSON value under a key in your persistent memory, replacing what was \
                 there. Use it to keep facts, preferences or progress across conversations. \
                 Optionally expires after ttlSeconds. Returns whether the key was new.",
            )
            .hints(Hints::WRITE)
            .handler(move |args: SetArgs, ctx| {
                let services = set.clone();
                async move {
                    check_key(&args.key)?;
                    let text = args.value.to_string();
                    if text.len() > services.config.limits.max_value_bytes {
                        return Err(ToolFailure::new(format!(
                            "`value` is {} bytes of JSON; the limit is {} bytes. Store less, or split it over several keys",
                            text.len(),
                            services.config.limits.max_value_bytes
                        )));
                    }
                    let expires_at_ms = match args.ttl_seconds {
                        Some(ttl) if ttl == 0 || ttl > MAX_TTL_SECONDS => {
                            return Err(ToolFailure::new("`ttlSeconds` must be between 1 and 315360000 (ten years)"));
                        }
                        Some(ttl) => Some(now_ms() + (ttl as i64) * 1000),
                        None => None,
                    };
                    let bytes = text.len();
                    let created = services
                        .store
                        .mem_set(&ctx.caller.agent_id, &args.key, text, expires_at_ms)
                        .await?;
                    Ok(SetResult {
                        key: args.key,
                        created,
                        bytes,
                        expires_at_ms,
                    })
                }
            }),
        ToolBuilder::new("agentos.mem_get")
            .title("Recall a value")
            .description(
                "Reads the value stored under a key in your persistent memory. Returns found=false \
                 and value=null if nothing is stored there; use agentos.mem_list to see which keys exist.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: KeyArgs, ctx| {
                let services = get.clone();
                async move {
                    check_key(&args.key)?;
                    let entry = services.store.mem_get(&ctx.caller.agent_id, &args.key).await?;
                    Ok(match entry {
                        Some(entry) => GetResult {
                            key: args.key,
                            found: true,
                            value: parse_stored(&entry.value)?,
                            updated_at_ms: Some(entry.updated_at_ms),
                            expires_at_ms: entry.expires_at_ms,
                        },
                        None => GetResult {
                            key: args.key,
                            found: false,
                            value: Value::Null,
                            updated_at_ms: None,
                            expires_at_ms: None,
                        },
                    })
                }
            }),
        ToolBuilder::new("agentos.mem_delete")
            .title("Forget a value")
            .description(
                "Deletes the value stored under a key in your persistent memory. Returns \
                 deleted=false if there was nothing to delete.",
            )
            .hints(Hints::DESTRUCTIVE)
            .handler(move |args: KeyArgs, ctx| {
                let services = delete.clone();
                async move {
                    check_key(&args.key)?;
                    let deleted = services.store.mem_delete(&ctx.caller.agent_id, &args.key).await?;
                    Ok(DeleteResult { key: args.key, deleted })
                }
            }),
        ToolBuilder::new("agentos.mem_list")
            .title("List remembered keys")
            .description(
                "Lists the keys in your persistent memory in key order, optionally only those \
                 starting with a prefix, a page at a time (default 100). Set includeValues to get \
                 the values too. If nextCursor is returned, call again with it as cursor for more.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: ListArgs, ctx| {
                let services = list.clone();
                async move {
                    let max = services.config.limits.max_page_size;
                    let limit = args.limit.unwrap_or(DEFAULT_PAGE.min(max));
                    if limit == 0 || limit > max {
                        return Err(ToolFailure::new(format!("`limit` must be between 1 and {max}")));
                    }
                    let page = services
                        .store
                        .mem_list(&ctx.caller.agent_id, &args.prefix, args.cursor.as_deref(), limit)
                        .await?;
                    let entries = page
                        .entries
                        .into_iter()
                        .map(|entry| {
                            let value = if args.include_values {
                                Some(parse_stored(&entry.value)?)
                            } else {
                                None
                            };
                            Ok(ListedEntry {
                                key: entry.key,
                                updated_at_ms: entry.updated_at_ms,
                                expires_at_ms: entry.expires_at_ms,
                                value,
                            })
                        })
                        .collect::<Result<Vec<_>, ToolFailure>>()?;
                    Ok(ListResult {
                        entries,
                        next_cursor: page.next_after,
                    })
                }
            }),
        ToolBuilder::new("agentos.mem_search")
            .title("Search memory")
            .description(
                "Full-text search over the keys and values in your persistent memory, best \
                 matches first. Use it when you do not know the exact key, e.g. `alpha deadline` \
                 (each word also matches as a prefix). Returns each match's key, value and score: \
                 BM25 over your own entries only, so it depends on nothing other agents store.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: SearchArgs, ctx| {
                let services = search.clone();
                async move {
                    let words = query_words(&args.query);
                    if words.is_empty() {
                        return Err(ToolFailure::new("`query` has no words to search for: use letters or digits"));
                    }
                    let limit = args.limit.unwrap_or(10);
                    if !(1..=100).contains(&limit) {
                        return Err(ToolFailure::new("`limit` must be between 1 and 100"));
                    }
                    let hits = services.store.mem_search(&ctx.caller.agent_id, &words, limit).await?;
                    let results = hits
                        .into_iter()
                        .map(|hit| {
                            Ok(SearchHit {
                                value: parse_stored(&hit.entry.value)?,
                                key: hit.entry.key,
                                score: hit.score,
                                updated_at_ms: hit.entry.updated_at_ms,
                            })
                        })
                        .collect::<Result<Vec<_>, ToolFailure>>()?;
                    Ok(SearchResult { results })
                }
            }),
    ]
}

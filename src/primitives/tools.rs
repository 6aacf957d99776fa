//! Registry tools: let an agent facing hundreds of tools find the one it needs
//! (`agentos.tools_search`), page through them by name (`agentos.tools_list`) and learn how to
//! call one (`agentos.tools_describe`).

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Services;
use crate::registry::{Entry, Hints, Tool, ToolBuilder, ToolFailure, ToolPattern};

const DEFAULT_RESULTS: usize = 10;
const MAX_RESULTS: usize = 50;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    /// Only tools this pattern names: an exact name, a family such as `agentos.mem_*` or
    /// `mcp.github.*`, or `*`.
    #[schemars(length(min = 1, max = 200))]
    pattern: Option<String>,
    /// Only tools whose name or title contains these letters, any case (a filter box).
    #[schemars(length(min = 1, max = 200))]
    contains: Option<String>,
    /// Start after this tool: the `nextCursor` of the previous page.
    #[schemars(length(min = 1, max = 300))]
    cursor: Option<String>,
    /// Most tools per page (default 50, at most 200).
    #[schemars(range(min = 1, max = 200))]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Listed {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    description: String,
    /// Where the tool comes from: `primitive`, `skill` or `mcp`.
    origin: &'static str,
    /// The tool says it changes nothing (its `readOnlyHint`).
    read_only: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ListResult {
    /// In name order.
    tools: Vec<Listed>,
    /// Tools matching the filters in all, on every page.
    total: usize,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// One page of the tools a caller may see, in name order, filtered by pattern and letters.
fn list_page(mut entries: Vec<Arc<Entry>>, args: ListArgs) -> Result<ListResult, ToolFailure> {
    let limit = args.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ToolFailure::invalid_input("`limit` must be between 1 and 200"));
    }
    let pattern = args
        .pattern
        .as_deref()
        .map(ToolPattern::parse)
        .transpose()
        .map_err(|e| ToolFailure::invalid_input(format!("`pattern`: {e}")))?;
    let letters = args.contains.as_deref().map(str::to_lowercase);
    entries.retain(|entry| {
        let spec = entry.tool.spec();
        pattern.as_ref().is_none_or(|p| p.matches(&spec.name))
            && letters.as_deref().is_none_or(|letters| {
                spec.name.to_lowercase().contains(letters)
                    || spec
                        .title
                        .as_deref()
                        .is_some_and(|t| t.to_lowercase().contains(letters))
            })
    });
    entries.sort_by(|a, b| a.tool.spec().name.cmp(&b.tool.spec().name));
    let total = entries.len();
    let start = match args.cursor.as_deref() {
        Some(after) => entries.partition_point(|entry| &*entry.tool.spec().name <= after),
        None => 0,
    };
    let tools: Vec<Listed> = entries
        .iter()
        .skip(start)
        .take(limit)
        .map(|entry| {
            let spec = entry.tool.spec();
            Listed {
                name: spec.name.to_string(),
                title: spec.title.clone(),
                description: spec.description.clone(),
                origin: spec.origin.as_str(),
                read_only: spec.annotations.is_some_and(|hints| hints.read_only),
            }
        })
        .collect();
    let next_cursor = (start + tools.len() < total)
        .then(|| tools.last().map(|tool| tool.name.clone()))
        .flatten();
    Ok(ListResult {
        tools,
        total,
        next_cursor,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    /// Words describing what you want to do, e.g. `remember a value` or `github issue`.
    #[schemars(length(min = 1, max = 500))]
    query: String,
    /// Most tools to return (default 10, at most 50).
    #[schemars(range(min = 1, max = 50))]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Match {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    description: String,
    /// Higher is a better match.
    score: u32,
}

#[derive(Debug, Serialize, JsonSchema)]
struct SearchResult {
    /// Best matches first. Call one by its `name`.
    tools: Vec<Match>,
}

/// Scores how well a tool matches the query words: a word in the name counts most, then the
/// title, then the description; a tool must match at least one word.
fn score(words: &[String], name: &str, title: &str, description: &str) -> u32 {
    let (name, title, description) = (name.to_lowercase(), title.to_lowercase(), description.to_lowercase());
    words
        .iter()
        .map(|word| {
            let mut points = 0;
            if name.contains(word.as_str()) {
                points += 6;
            }
            if title.contains(word.as_str()) {
                points += 3;
            }
            if description.contains(word.as_str()) {
                points += 1;
            }
            points
        })
        .sum()
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DescribeArgs {
    /// The tool's name, e.g. `agentos.mem_set`.
    #[schemars(length(min = 1, max = 200))]
    name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Description {
    name: String,
    /// The same tool's name in the strict `^[a-zA-Z0-9_-]{1,64}$` form.
    strict_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    description: String,
    /// Where the tool comes from: `primitive`, `skill` or `mcp`.
    origin: String,
    input_schema: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<Value>,
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let describe = services.clone();
    let registry = services.registry.clone();
    let listing = services.clone();
    vec![
        ToolBuilder::new("agentos.tools_list")
            .title("List tools")
            .description(
                "Lists the tools you can call in name order, a page at a time, optionally only those a \
                 pattern such as `agentos.mem_*` names or whose name or title contains some letters. \
                 Each comes with its title, description, origin and whether it only reads. Use \
                 agentos.tools_search to find a tool by what it does.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: ListArgs, ctx| {
                let services = listing.clone();
                async move { list_page(services.registry()?.list_for(&ctx.caller), args) }
            }),
        ToolBuilder::new("agentos.tools_search")
            .title("Find a tool")
            .description(
                "Searches the tools you can call by words in their names, titles and \
                 descriptions and returns the best matches first. Use it when you are not sure \
                 which tool does what you need.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: SearchArgs, ctx| {
                let registry = registry.clone();
                async move {
                    let registry = registry
                        .upgrade()
                        .ok_or_else(|| ToolFailure::new("agentos is shutting down"))?;
                    let limit = args.limit.unwrap_or(DEFAULT_RESULTS);
                    if !(1..=MAX_RESULTS).contains(&limit) {
                        return Err(ToolFailure::new("`limit` must be between 1 and 50"));
                    }
                    let words: Vec<String> = args
                        .query
                        .split(|c: char| !c.is_alphanumeric() && c != '_')
                        .filter(|w| w.len() > 1)
                        .map(str::to_lowercase)
                        .collect();
                    if words.is_empty() {
                        return Err(ToolFailure::new(
                            "`query` needs at least one word of two or more letters",
                        ));
                    }
                    let mut matches: Vec<Match> = registry
                        .list_for(&ctx.caller)
                        .iter()
                        .filter_map(|entry| {
                            let spec = entry.tool.spec();
                            let title = spec.title.as_deref().unwrap_or("");
                            let score = score(&words, &spec.name, title, &spec.description);
                            (score > 0).then(|| Match {
                                name: spec.name.to_string(),
                                title: spec.title.clone(),
                                description: spec.description.clone(),
                                score,
                            })
                        })
                        .collect();
                    matches.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.name.cmp(&b.name)));
                    matches.truncate(limit);
                    Ok(SearchResult { tools: matches })
                }
            }),
        ToolBuilder::new("agentos.tools_describe")
            .title("Describe a tool")
            .description(
                "Returns one tool's full description: input and output JSON Schemas, annotations, \
                 origin and strict name. Use it after agentos.tools_search to learn how to call a tool.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: DescribeArgs, ctx| {
                let services = describe.clone();
                async move {
                    let registry = services.registry()?;
                    let entry = registry.resolve_for(&ctx.caller, &args.name).ok_or_else(|| {
                        ToolFailure::new(format!(
                            "unknown tool `{}`; call agentos.tools_search to find available tools",
                            args.name
                        ))
                    })?;
                    let spec = entry.tool.spec();
                    Ok(Description {
                        name: spec.name.to_string(),
                        strict_name: registry
                            .strict_name(&spec.name)
                            .map_or_else(|| spec.name.to_string(), |s| s.to_string()),
                        title: spec.title.clone(),
                        description: spec.description.clone(),
                        origin: spec.origin.as_str().to_owned(),
                        input_schema: Value::Object((*spec.input_schema).clone()),
                        output_schema: spec.output_schema.as_ref().map(|s| Value::Object((**s).clone())),
                        annotations: entry
                            .listing
                            .annotations
                            .as_ref()
                            .and_then(|a| serde_json::to_value(a).ok()),
                    })
                }
            }),
    ]
}

#[cfg(test)]
mod tests {
    use super::score;

    #[test]
    fn name_matches_outrank_description_matches() {
        let words = vec!["mem".to_owned()];
        assert!(score(&words, "agentos.mem_set", "", "") > score(&words, "x", "", "memory"));
        assert_eq!(score(&words, "agentos.time_now", "Current time", "time"), 0);
    }
}

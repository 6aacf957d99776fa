//! `agentos.traces_query`: lists traces or opens one as a span tree. Who may read whose traces
//! follows the audit rules (`primitives::audit`): yourself; an operator also its account's
//! agents; an ops-admin everyone.

use std::collections::HashMap;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::super::Governance;
use super::super::access::{may_name, visibility};
use super::super::filters::{time_arg, tool_filter};
use crate::registry::trace::is_trace_id;
use crate::registry::{Caller, Hints, Tool, ToolBuilder, ToolFailure};
use crate::store::{SpanRow, TraceFilter, TraceRow};

fn default_limit() -> u32 {
    50
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum StatusArg {
    Ok,
    Error,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct QueryArgs {
    /// Open this trace (32 lowercase hex digits): its spans as a tree. The other filters are
    /// then ignored.
    trace_id: Option<String>,
    /// Only this agent's traces. Omit for every agent you may see.
    agent_id: Option<String>,
    /// Only calls of this tool: an exact name, or a prefix ending in `*` such as `mcp.github.*`.
    tool: Option<String>,
    /// Only traces that ended this way.
    status: Option<StatusArg>,
    /// Only traces that started at or after this time (RFC 3339, e.g. `2025-01-31T00:00:00Z`).
    since: Option<String>,
    /// Only traces that started at or before this time (RFC 3339).
    until: Option<String>,
    /// Most traces to return (1-500).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 500))]
    limit: u32,
    /// `nextCursor` of the previous page, to get older traces.
    cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Summary {
    trace_id: String,
    /// When the call started (RFC 3339, UTC).
    started: String,
    started_ms: i64,
    duration_us: i64,
    /// The front door: `mcp.http`, `mcp.stdio`, `http.plain`, `rest <method> <route>`,
    /// `schedule`, `workflow` or `approval`.
    root: String,
    agent_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<String>,
    tool: String,
    /// `ok` or `error`.
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    request_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SpanOut {
    span_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<String>,
    name: String,
    /// `adapter`, `registry`, `tool` or `upstream`.
    layer: String,
    /// `server`, `internal` or `client` (as OpenTelemetry names span kinds).
    kind: String,
    /// Start, in microseconds since the Unix epoch.
    start_us: i64,
    duration_us: i64,
    /// `ok` or `error`.
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    attributes: Map<String, Value>,
    /// Spans started within this one, in start order.
    children: Vec<SpanOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct TraceOut {
    #[serde(flatten)]
    summary: Summary,
    /// The root span(s) with their children nested.
    spans: Vec<SpanOut>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct QueryResult {
    /// The trace asked for by `traceId`.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace: Option<TraceOut>,
    /// Without `traceId`: matching traces, newest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    traces: Option<Vec<Summary>>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

fn summary(row: &mut TraceRow) -> Summary {
    Summary {
        trace_id: std::mem::take(&mut row.trace_id),
        started: chrono::DateTime::from_timestamp_millis(row.started_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default(),
        started_ms: row.started_ms,
        duration_us: row.duration_us,
        root: std::mem::take(&mut row.root),
        agent_id: std::mem::take(&mut row.agent_id),
        account_id: row.account_id.take(),
        tool: std::mem::take(&mut row.tool),
        status: std::mem::take(&mut row.status),
        error: row.error.take(),
        request_id: std::mem::take(&mut row.request_id),
    }
}

/// Nests spans under their parents; a span whose parent is missing (it never ended) is a root.
fn tree(spans: Vec<SpanRow>) -> Vec<SpanOut> {
    let ids: std::collections::HashSet<String> = spans.iter().map(|s| s.span_id.clone()).collect();
    let mut children: HashMap<Option<String>, Vec<SpanRow>> = HashMap::new();
    for span in spans {
        let parent = span.parent_id.clone().filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(span);
    }
    fn build(parent: Option<String>, children: &mut HashMap<Option<String>, Vec<SpanRow>>) -> Vec<SpanOut> {
        let mut level = children.remove(&parent).unwrap_or_default();
        level.sort_by_key(|s| s.start_ns);
        level
            .into_iter()
            .map(|span| SpanOut {
                children: build(Some(span.span_id.clone()), children),
                attributes: serde_json::from_str(&span.attributes).unwrap_or_default(),
                status: if span.error.is_some() { "error" } else { "ok" }.to_owned(),
                span_id: span.span_id,
                parent_span_id: span.parent_id,
                name: span.name,
                layer: span.layer,
                kind: span.kind,
                start_us: span.start_ns / 1000,
                duration_us: span.duration_ns / 1000,
                error: span.error,
            })
            .collect()
    }
    build(None, &mut children)
}

async fn query(gov: &Governance, args: QueryArgs, caller: &Caller) -> Result<QueryResult, ToolFailure> {
    if let Some(id) = &args.trace_id {
        if !is_trace_id(id) {
            return Err(ToolFailure::invalid_input(format!(
                "`traceId` must be 32 lowercase hex digits, not `{id}`"
            )));
        }
        // Another agent's trace looks like no trace at all.
        let Some(mut row) = gov.store.trace_get(id, &visibility(caller)).await? else {
            return Err(ToolFailure::not_found(format!("no trace `{id}` that you may see")));
        };
        let spans = tree(std::mem::take(&mut row.spans));
        let trace = TraceOut {
            summary: summary(&mut row),
            spans,
        };
        return Ok(QueryResult {
            trace: Some(trace),
            traces: None,
            next_cursor: None,
        });
    }
    if let Some(agent) = &args.agent_id {
        let registry = gov.registry();
        if !may_name(caller, registry.as_deref(), agent).await {
            return Err(ToolFailure::forbidden(format!(
                "you may only read your own traces (and, as an operator, those of your account's \
                 agents); `{agent}` is not one of them. Omit agentId to see yours."
            )));
        }
    }
    let before_seq = args
        .cursor
        .as_deref()
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| ToolFailure::invalid_input("`cursor` must be a `nextCursor` from an earlier traces_query"))?;
    let (tool, tool_prefix) = tool_filter(args.tool.as_deref());
    let limit = usize::try_from(args.limit.clamp(1, 500)).unwrap_or(500);
    let filter = TraceFilter {
        visibility: visibility(caller),
        agent_id: args.agent_id,
        tool,
        tool_prefix,
        status: args.status.map(|s| match s {
            StatusArg::Ok => "ok".to_owned(),
            StatusArg::Error => "error".to_owned(),
        }),
        since_ms: time_arg("since", args.since.as_deref())?,
        until_ms: time_arg("until", args.until.as_deref())?,
        before_seq,
        limit,
    };
    let mut rows = gov.store.traces_query(&filter).await?;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|row| row.seq.to_string()))
        .flatten();
    Ok(QueryResult {
        trace: None,
        traces: Some(rows.iter_mut().map(summary).collect()),
        next_cursor,
    })
}

pub(in crate::governance) fn tools(gov: &Governance) -> Vec<Arc<dyn Tool>> {
    let gov = gov.clone();
    vec![
        ToolBuilder::new("agentos.traces_query")
            .title("Read call traces")
            .description(
                "Reads traces of tool calls. Each call is one trace: a tree of spans from the front \
                 door (adapter) through the registry pipeline to the tool's run and, for mcp.* \
                 tools, the upstream server's call, each with its duration and error. Without \
                 traceId: summaries newest first, filtered by agentId, tool (exact or `prefix*`), \
                 status (ok|error) and a since/until window; page back with `cursor` = the \
                 previous `nextCursor`. With traceId: that trace's span tree. You see your own \
                 calls; an operator also its account's agents, an ops-admin everyone. Traces \
                 appear within about a second of the call.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: QueryArgs, ctx| {
                let gov = gov.clone();
                async move { query(&gov, args, &ctx.caller).await }
            }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: Option<&str>, start_ns: i64) -> SpanRow {
        SpanRow {
            span_id: id.into(),
            parent_id: parent.map(str::to_owned),
            name: id.into(),
            layer: "tool".into(),
            kind: "internal".into(),
            start_ns,
            duration_ns: 2000,
            error: None,
            attributes: r#"{"tool":"x"}"#.into(),
        }
    }

    #[test]
    fn spans_assemble_into_a_tree_in_start_order() {
        let spans = vec![
            span("up", Some("tool"), 40),
            span("step2", Some("tool"), 50),
            span("root", None, 10),
            span("tool", Some("reg"), 30),
            span("reg", Some("root"), 20),
            span("orphan", Some("gone"), 60),
        ];
        let roots = tree(spans);
        assert_eq!(roots.len(), 2, "a span whose parent never ended is shown as a root");
        assert_eq!(roots[0].name, "root");
        assert_eq!(roots[1].name, "orphan");
        let registry = &roots[0].children[0];
        assert_eq!(registry.name, "reg");
        let tool = &registry.children[0];
        let names: Vec<&str> = tool.children.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["up", "step2"]);
        assert_eq!(tool.attributes["tool"], "x");
        assert_eq!(tool.duration_us, 2);
    }
}

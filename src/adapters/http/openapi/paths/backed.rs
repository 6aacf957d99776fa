//! The REST routes that are adapters over tools (`/api/audit`, `/api/approvals*`,
//! `/api/ops/crew*`, `/api/ops/metrics`, `/api/traces*`, `/api/mcp/servers*`): their bodies and answers are the tools' own input and
//! output schemas, read from the committed `schemas/tools/*.json`.

use serde_json::{Map, Value, json};

use super::super::tool_schema;
use super::Access::{Protected, Public};
use super::Op;

/// The committed schema file of a built-in tool.
macro_rules! tool_file {
    ($name:literal) => {
        include_str!(concat!("../../../../../schemas/tools/agentos.", $name, ".json"))
    };
}

pub(super) fn governance(schemas: &mut Map<String, Value>) -> Vec<Op> {
    let text = json!({"type": "string"});
    let outcomes = json!({"type": "string", "enum": [
        "ok", "error", "unknown_tool", "invalid_arguments", "cancelled", "timeout", "approval_pending", "approval_denied",
    ]});
    let statuses =
        json!({"type": "string", "enum": ["pending", "approved", "denied", "completed", "failed", "expired"]});
    vec![
        Op::new(
            "get",
            "/api/audit",
            Protected,
            "governance",
            "audit",
            "Read the audit trail",
        )
        .describe("Backed by `agentos.audit_query`.")
        .param("query", "agentId", false, text.clone(), "Only this agent's calls.")
        .param(
            "query",
            "tool",
            false,
            text.clone(),
            "An exact tool name or a prefix ending in `*`.",
        )
        .param("query", "outcome", false, outcomes, "Only calls that ended this way.")
        .param("query", "since", false, text.clone(), "RFC 3339.")
        .param("query", "until", false, text.clone(), "RFC 3339.")
        .param(
            "query",
            "limit",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": 500}),
            "1-500.",
        )
        .param(
            "query",
            "cursor",
            false,
            text.clone(),
            "`nextCursor` of the previous page.",
        )
        .reply(
            200,
            "Records, newest first.",
            tool_schema(tool_file!("audit_query"), "outputSchema", schemas),
        )
        .tool_backed(),
        Op::new(
            "get",
            "/api/approvals",
            Protected,
            "governance",
            "approvals",
            "List approvals",
        )
        .describe("Backed by `agentos.approvals_list`.")
        .param("query", "status", false, statuses, "Only approvals in this state.")
        .param("query", "agentId", false, text, "Only this agent's requests.")
        .param(
            "query",
            "limit",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": 200}),
            "1-200.",
        )
        .reply(
            200,
            "Approvals, newest first.",
            tool_schema(tool_file!("approvals_list"), "outputSchema", schemas),
        )
        .tool_backed(),
        Op::new(
            "post",
            "/api/approvals/{id}",
            Protected,
            "governance",
            "decide",
            "Approve or deny",
        )
        .describe("Backed by `agentos.approval_decide`.")
        .param(
            "path",
            "id",
            true,
            json!({"type": "string", "pattern": "^apr_[0-9a-f]{32}$"}),
            "The approval.",
        )
        .json_body(json!({
            "type": "object", "required": ["decision"], "additionalProperties": false,
            "properties": {
                "decision": {"type": "string", "enum": ["approve", "deny"]},
                "note": {"type": ["string", "null"], "maxLength": 1000},
            },
        }))
        .reply(
            200,
            "Decided.",
            tool_schema(tool_file!("approval_decide"), "outputSchema", schemas),
        )
        .tool_backed(),
    ]
}

pub(super) fn ops_routes(schemas: &mut Map<String, Value>) -> Vec<Op> {
    let add_input = tool_schema(tool_file!("mcp_server_add"), "inputSchema", schemas);
    vec![
        Op::new("get", "/api/ops/crew", Public, "ops", "crew", "Crew coverage")
            .describe("Backed by `agentos.crew_status`; ops-admins only (others get 404).")
            .names()
            .reply(
                200,
                "Coverage.",
                tool_schema(tool_file!("crew_status"), "outputSchema", schemas),
            )
            .tool_backed(),
        Op::new(
            "post",
            "/api/ops/crew/failover",
            Protected,
            "ops",
            "crewFailover",
            "Force a failover",
        )
        .names()
        .json_body(tool_schema(tool_file!("crew_failover"), "inputSchema", schemas))
        .reply(
            200,
            "Failed over.",
            tool_schema(tool_file!("crew_failover"), "outputSchema", schemas),
        )
        .tool_backed(),
        Op::new(
            "post",
            "/api/ops/crew/bootstrap",
            Protected,
            "ops",
            "crewBootstrap",
            "Restore coverage",
        )
        .names()
        .reply(
            200,
            "What was done.",
            tool_schema(tool_file!("crew_bootstrap"), "outputSchema", schemas),
        )
        .tool_backed(),
        Op::new(
            "post",
            "/api/ops/crew/cron",
            Protected,
            "ops",
            "crewCron",
            "Run one health cycle",
        )
        .names()
        .reply(
            200,
            "What was done.",
            tool_schema(tool_file!("crew_cron"), "outputSchema", schemas),
        )
        .tool_backed(),
        Op::new(
            "get",
            "/api/mcp/servers",
            Protected,
            "ops",
            "mcpServers",
            "List proxied MCP servers",
        )
        .names()
        .reply(
            200,
            "The servers.",
            tool_schema(tool_file!("mcp_servers_list"), "outputSchema", schemas),
        )
        .tool_backed(),
        Op::new(
            "post",
            "/api/mcp/servers",
            Protected,
            "ops",
            "addMcpServer",
            "Add an MCP server",
        )
        .describe("Starts a program or connects an endpoint: ops-admins only.")
        .names()
        .json_body(add_input)
        .reply(
            200,
            "Added.",
            tool_schema(tool_file!("mcp_server_add"), "outputSchema", schemas),
        )
        .tool_backed(),
        Op::new(
            "delete",
            "/api/mcp/servers/{name}",
            Protected,
            "ops",
            "removeMcpServer",
            "Remove an MCP server",
        )
        .names()
        .param(
            "path",
            "name",
            true,
            json!({"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"}),
            "The server.",
        )
        .reply(
            200,
            "Removed.",
            tool_schema(tool_file!("mcp_server_remove"), "outputSchema", schemas),
        )
        .tool_backed(),
    ]
}

/// `/api/ops/metrics` and `/api/traces*`, over `agentos.ops_metrics` and `agentos.traces_query`.
pub(super) fn observability(schemas: &mut Map<String, Value>) -> Vec<Op> {
    let text = json!({"type": "string"});
    let traces = tool_schema(tool_file!("traces_query"), "outputSchema", schemas);
    vec![
        Op::new(
            "get",
            "/api/ops/metrics",
            Public,
            "observability",
            "opsMetrics",
            "Metrics summary",
        )
        .describe("Backed by `agentos.ops_metrics`: aggregates for anyone, `metrics` (details) for ops-admins.")
        .reply(
            200,
            "The summary.",
            tool_schema(tool_file!("ops_metrics"), "outputSchema", schemas),
        )
        .tool_backed(),
        Op::new(
            "get",
            "/api/traces",
            Protected,
            "observability",
            "traces",
            "Recent traces",
        )
        .describe("Backed by `agentos.traces_query`.")
        .param("query", "agentId", false, text.clone(), "Only this agent's calls.")
        .param(
            "query",
            "tool",
            false,
            text.clone(),
            "An exact tool name or a prefix ending in `*`.",
        )
        .param(
            "query",
            "status",
            false,
            json!({"type": "string", "enum": ["ok", "error"]}),
            "Only traces that ended this way.",
        )
        .param("query", "since", false, text.clone(), "RFC 3339.")
        .param("query", "until", false, text.clone(), "RFC 3339.")
        .param(
            "query",
            "limit",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": 500}),
            "1-500.",
        )
        .param("query", "cursor", false, text, "`nextCursor` of the previous page.")
        .reply(200, "Trace summaries, newest first.", traces.clone())
        .tool_backed(),
        Op::new(
            "get",
            "/api/traces/{id}",
            Protected,
            "observability",
            "trace",
            "One trace with its span tree",
        )
        .describe("Backed by `agentos.traces_query` with `traceId`.")
        .param(
            "path",
            "id",
            true,
            json!({"type": "string", "pattern": "^[0-9a-f]{32}$"}),
            "The trace id (32 lowercase hex digits).",
        )
        .reply(200, "The trace.", traces)
        .tool_backed(),
    ]
}

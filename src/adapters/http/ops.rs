//! `/api/ops/metrics`, `/api/ops/crew*` and `/api/mcp/servers*`: REST adapters over
//! `agentos.ops_metrics` and the `agentos.crew_*` and `agentos.mcp_server*` tools. Each route
//! calls its tool as the request's caller (`ToolCall`) and answers with the tool's result.

use axum::extract::Path;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::json::JsonBody;
use super::openapi::{Op, tool_schema};
use super::tool_call::ToolCall;

/// `GET /api/ops/metrics`
pub(super) async fn metrics(call: ToolCall) -> Response {
    call.run("agentos.ops_metrics", json!({})).await
}

/// `GET /api/ops/crew`
pub(super) async fn crew(call: ToolCall) -> Response {
    call.run("agentos.crew_status", json!({})).await
}

/// `POST /api/ops/crew/failover` with `{"featureSlug": "...", "reason"?: "..."}`
pub(super) async fn failover(call: ToolCall, JsonBody(body): JsonBody<Value>) -> Response {
    call.with_body(
        "agentos.crew_failover",
        body,
        "{\"featureSlug\": \"...\", \"reason\"?: \"...\"}",
    )
    .await
}

/// `POST /api/ops/crew/bootstrap`
pub(super) async fn bootstrap(call: ToolCall) -> Response {
    call.run("agentos.crew_bootstrap", json!({})).await
}

/// `POST /api/ops/crew/cron`
pub(super) async fn cron(call: ToolCall) -> Response {
    call.run("agentos.crew_cron", json!({})).await
}

/// `GET /api/mcp/servers`
pub(super) async fn servers(call: ToolCall) -> Response {
    call.run("agentos.mcp_servers_list", json!({})).await
}

/// `POST /api/mcp/servers` with a server description (as in `[[mcp_servers]]`)
pub(super) async fn add_server(call: ToolCall, JsonBody(body): JsonBody<Value>) -> Response {
    call.with_body(
        "agentos.mcp_server_add",
        body,
        "a server description, e.g. {\"name\": \"memory\", \"command\": \"npx\", \"args\": [...]}",
    )
    .await
}

/// `DELETE /api/mcp/servers/{name}`: the tool checks the name.
pub(super) async fn remove_server(call: ToolCall, Path(name): Path<String>) -> Response {
    call.run("agentos.mcp_server_remove", json!({ "name": name })).await
}

/// `/api/ops/*` and `/api/mcp/servers*` are ops-admin tools; others are told they do not exist.
fn ops_only(op: Op) -> Op {
    op.names().tool_backed()
}

pub(super) fn metrics_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("opsMetrics", "Metrics summary")
        .describe("Backed by `agentos.ops_metrics`: aggregates for anyone, `metrics` (details) for ops-admins.")
        .reply(
            200,
            "The summary.",
            tool_schema!(schemas, "ops_metrics", "outputSchema"),
        )
        .tool_backed()
}

pub(super) fn crew_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    ops_only(
        op.named("crew", "Crew coverage")
            .describe("Backed by `agentos.crew_status`; ops-admins only (others get 404).")
            .reply(200, "Coverage.", tool_schema!(schemas, "crew_status", "outputSchema")),
    )
}

pub(super) fn failover_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    ops_only(
        op.named("crewFailover", "Force a failover")
            .json_body(tool_schema!(schemas, "crew_failover", "inputSchema"))
            .reply(
                200,
                "Failed over.",
                tool_schema!(schemas, "crew_failover", "outputSchema"),
            ),
    )
}

pub(super) fn bootstrap_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    ops_only(op.named("crewBootstrap", "Restore coverage").reply(
        200,
        "What was done.",
        tool_schema!(schemas, "crew_bootstrap", "outputSchema"),
    ))
}

pub(super) fn cron_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    ops_only(op.named("crewCron", "Run one health cycle").reply(
        200,
        "What was done.",
        tool_schema!(schemas, "crew_cron", "outputSchema"),
    ))
}

pub(super) fn servers_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    ops_only(op.named("mcpServers", "List proxied MCP servers").reply(
        200,
        "The servers.",
        tool_schema!(schemas, "mcp_servers_list", "outputSchema"),
    ))
}

pub(super) fn add_server_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    ops_only(
        op.named("addMcpServer", "Add an MCP server")
            .describe("Starts a program or connects an endpoint: ops-admins only.")
            .json_body(tool_schema!(schemas, "mcp_server_add", "inputSchema"))
            .reply(200, "Added.", tool_schema!(schemas, "mcp_server_add", "outputSchema")),
    )
}

pub(super) fn remove_server_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    ops_only(
        op.named("removeMcpServer", "Remove an MCP server")
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
                tool_schema!(schemas, "mcp_server_remove", "outputSchema"),
            ),
    )
}

//! `/api/traces` and `/api/traces/{id}`: REST adapters over `agentos.traces_query`. Who may read
//! which traces is the tool's business; these routes only turn the query string and path into
//! tool input (and refuse a malformed trace id before any lookup).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::error_response;
use super::governance::{Params, filtered, input_from, paged};
use super::openapi::{Op, tool_schema};
use super::tool_call::ToolCall;
use crate::registry::trace::is_trace_id;

/// `GET /api/traces?agentId=&tool=&status=&since=&until=&limit=&cursor=`
pub(super) async fn list(call: ToolCall, params: Params) -> Response {
    let names = ["agentId", "tool", "status", "since", "until", "cursor"];
    match input_from(params, &names, 500) {
        Ok(input) => call.run("agentos.traces_query", input).await,
        Err(response) => *response,
    }
}

/// `GET /api/traces/{id}`: `{"trace": {...summary, "spans": [tree]}}`.
pub(super) async fn one(call: ToolCall, Path(id): Path<String>) -> Response {
    if !is_trace_id(&id) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "a trace id is 32 lowercase hex digits",
        );
    }
    call.run("agentos.traces_query", json!({ "traceId": id })).await
}

pub(super) fn list_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    let op = filtered(
        op.named("traces", "Recent traces")
            .describe("Backed by `agentos.traces_query`."),
    )
    .param(
        "query",
        "status",
        false,
        json!({"type": "string", "enum": ["ok", "error"]}),
        "Only traces that ended this way.",
    );
    paged(op, 500)
        .reply(
            200,
            "Trace summaries, newest first.",
            tool_schema!(schemas, "traces_query", "outputSchema"),
        )
        .tool_backed()
}

pub(super) fn one_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("trace", "One trace with its span tree")
        .describe("Backed by `agentos.traces_query` with `traceId`.")
        .param(
            "path",
            "id",
            true,
            json!({"type": "string", "pattern": "^[0-9a-f]{32}$"}),
            "The trace id (32 lowercase hex digits).",
        )
        .reply(200, "The trace.", tool_schema!(schemas, "traces_query", "outputSchema"))
        .tool_backed()
}

//! `/api/traces` and `/api/traces/{id}`: REST adapters over `agentos.traces_query`. Who may read
//! which traces is the tool's business; these routes only turn the query string and path into
//! tool input (and refuse a malformed trace id before any lookup).

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::error_response;
use super::governance::{Params, input_from};
use super::ops::ToolCall;
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

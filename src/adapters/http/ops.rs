//! `/api/ops/crew*`: REST adapters over the `agentos.crew_*` tools. Each route calls the
//! registry with the request's identity, as the plain form of `/mcp` does, and translates the
//! result: the tool's structured content as the body, its failures as HTTP statuses.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::{Value, json};

use super::{HttpState, NamesQuery, error_response, identity_for};
use crate::registry::{CallContext, CallError};

/// `GET /api/ops/crew`
pub(super) async fn crew(
    State(state): State<HttpState>,
    Query(query): Query<NamesQuery>,
    headers: HeaderMap,
) -> Response {
    call(&state, &query, &headers, "agentos.crew_status", json!({})).await
}

/// `POST /api/ops/crew/failover` with `{"featureSlug": "...", "reason"?: "..."}`
pub(super) async fn failover(
    State(state): State<HttpState>,
    Query(query): Query<NamesQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(input @ Value::Object(_)) => call(&state, &query, &headers, "agentos.crew_failover", input).await,
        _ => error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected {\"featureSlug\": \"...\", \"reason\"?: \"...\"}",
        ),
    }
}

/// `POST /api/ops/crew/bootstrap`
pub(super) async fn bootstrap(
    State(state): State<HttpState>,
    Query(query): Query<NamesQuery>,
    headers: HeaderMap,
) -> Response {
    call(&state, &query, &headers, "agentos.crew_bootstrap", json!({})).await
}

/// `POST /api/ops/crew/cron`
pub(super) async fn cron(
    State(state): State<HttpState>,
    Query(query): Query<NamesQuery>,
    headers: HeaderMap,
) -> Response {
    call(&state, &query, &headers, "agentos.crew_cron", json!({})).await
}

async fn call(state: &HttpState, query: &NamesQuery, headers: &HeaderMap, tool: &str, input: Value) -> Response {
    let identity = match identity_for(state, query, headers) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let ctx = CallContext::new(identity.caller, request_id(headers), state.registry.default_timeout());
    match state.registry.call(&ctx, tool, input).await {
        Ok(result) if result.is_error == Some(true) => {
            let message = error_text(&result);
            let (status, code) = if message.starts_with("no MCP server named") {
                (StatusCode::NOT_FOUND, "unknown_server")
            } else if message.starts_with("invalid arguments") {
                (StatusCode::BAD_REQUEST, "invalid_arguments")
            } else if message.starts_with("only the owner") {
                (StatusCode::FORBIDDEN, "forbidden")
            } else {
                (StatusCode::UNPROCESSABLE_ENTITY, "tool_failed")
            };
            error_response(status, code, &message)
        }
        Ok(result) => axum::Json(result.structured_content.unwrap_or(Value::Null)).into_response(),
        Err(error) => {
            let status = match &error {
                CallError::UnknownTool(_) => StatusCode::NOT_FOUND,
                CallError::InvalidArguments { .. } => StatusCode::BAD_REQUEST,
                CallError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
                CallError::Cancelled(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            error_response(status, error.code(), &error.to_string())
        }
    }
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

fn error_text(result: &CallToolResult) -> String {
    let texts: Vec<&str> = result
        .content
        .iter()
        .filter_map(|block| match block {
            ContentBlock::Text(text) => Some(text.text.as_str()),
            _ => None,
        })
        .collect();
    texts.join("\n")
}

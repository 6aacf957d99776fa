//! `/api/ops/crew*` and `/api/mcp/servers*`: REST adapters over the `agentos.crew_*` and
//! `agentos.mcp_server*` tools. Each route calls the
//! registry with the request's identity, as the plain form of `/mcp` does, and translates the
//! result: the tool's structured content as the body, its failures as HTTP statuses.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{HttpState, NamesQuery, call_error_status, error_response, error_text, identity_for, request_id};
use crate::registry::{CallContext, FailureKind, failure_kind};

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

/// `GET /api/mcp/servers`
pub(super) async fn servers(
    State(state): State<HttpState>,
    Query(query): Query<NamesQuery>,
    headers: HeaderMap,
) -> Response {
    call(&state, &query, &headers, "agentos.mcp_servers_list", json!({})).await
}

/// `POST /api/mcp/servers` with a server description (as in `[[mcp_servers]]`)
pub(super) async fn add_server(
    State(state): State<HttpState>,
    Query(query): Query<NamesQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(input @ Value::Object(_)) => call(&state, &query, &headers, "agentos.mcp_server_add", input).await,
        _ => error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected a server description, e.g. {\"name\": \"memory\", \"command\": \"npx\", \"args\": [...]}",
        ),
    }
}

/// `DELETE /api/mcp/servers/{name}`
pub(super) async fn remove_server(
    State(state): State<HttpState>,
    Query(query): Query<NamesQuery>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    call(
        &state,
        &query,
        &headers,
        "agentos.mcp_server_remove",
        json!({ "name": name }),
    )
    .await
}

async fn call(state: &HttpState, query: &NamesQuery, headers: &HeaderMap, tool: &str, input: Value) -> Response {
    let identity = match identity_for(state, query, headers) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let ctx = CallContext::new(identity.caller, request_id(headers), state.registry.default_timeout());
    match state.registry.call(&ctx, tool, input).await {
        Ok(result) if result.is_error == Some(true) => {
            let (status, code) = match failure_kind(&result).unwrap_or_default() {
                FailureKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
                FailureKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_arguments"),
                FailureKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
                FailureKind::Failed => (StatusCode::UNPROCESSABLE_ENTITY, "tool_failed"),
            };
            error_response(status, code, &error_text(&result))
        }
        Ok(result) => axum::Json(result.structured_content.unwrap_or(Value::Null)).into_response(),
        Err(error) => error_response(call_error_status(&error), error.code(), &error.to_string()),
    }
}

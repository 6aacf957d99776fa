//! `/api/ops/crew*` and `/api/mcp/servers*`: REST adapters over the `agentos.crew_*` and
//! `agentos.mcp_server*` tools. Each route calls the registry with the request's identity, as the
//! plain form of `/mcp` does, and translates the result: the tool's structured content as the
//! body, its failures as HTTP statuses.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{HttpState, NamesQuery, call_error_status, error_response, error_text, identity_for, request_id};
use crate::registry::{CallContext, FailureKind, failure_kind};

/// Who is calling a REST route, ready to call a tool as them.
pub(super) struct ToolCall {
    state: HttpState,
    ctx: CallContext,
}

impl FromRequestParts<HttpState> for ToolCall {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, Response> {
        let Query(query) = Query::<NamesQuery>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let identity = identity_for(state, &query, &parts.headers).map_err(|response| *response)?;
        let ctx = CallContext::new(
            identity.caller,
            request_id(&parts.headers),
            state.registry.default_timeout(),
        );
        Ok(Self {
            state: state.clone(),
            ctx,
        })
    }
}

impl ToolCall {
    /// Calls `tool` with a JSON object body as its input; anything else is a 400 showing `expected`.
    async fn with_body(self, tool: &str, body: &[u8], expected: &str) -> Response {
        match serde_json::from_slice::<Value>(body) {
            Ok(input @ Value::Object(_)) => self.run(tool, input).await,
            _ => error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("expected {expected}"),
            ),
        }
    }

    async fn run(self, tool: &str, input: Value) -> Response {
        match self.state.registry.call(&self.ctx, tool, input).await {
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
}

/// `GET /api/ops/crew`
pub(super) async fn crew(call: ToolCall) -> Response {
    call.run("agentos.crew_status", json!({})).await
}

/// `POST /api/ops/crew/failover` with `{"featureSlug": "...", "reason"?: "..."}`
pub(super) async fn failover(call: ToolCall, body: Bytes) -> Response {
    call.with_body(
        "agentos.crew_failover",
        &body,
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
pub(super) async fn add_server(call: ToolCall, body: Bytes) -> Response {
    call.with_body(
        "agentos.mcp_server_add",
        &body,
        "a server description, e.g. {\"name\": \"memory\", \"command\": \"npx\", \"args\": [...]}",
    )
    .await
}

/// `DELETE /api/mcp/servers/{name}`
pub(super) async fn remove_server(call: ToolCall, Path(name): Path<String>) -> Response {
    call.run("agentos.mcp_server_remove", json!({ "name": name })).await
}

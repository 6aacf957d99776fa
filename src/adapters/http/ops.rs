//! `/api/ops/metrics`, `/api/ops/crew*` and `/api/mcp/servers*`: REST adapters over
//! `agentos.ops_metrics` and the `agentos.crew_*` and `agentos.mcp_server*` tools. Each route calls the registry with the request's identity, as the
//! plain form of `/mcp` does, and translates the result: the tool's structured content as the
//! body, its failures as HTTP statuses.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::json::JsonBody;
use super::{
    HttpState, NamesQuery, call_error_status, error_response, error_text, failure_status, identity_for, request,
};
use crate::registry::{CallContext, FailureKind, approval_id_of, failure_kind};

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
        let identity = identity_for(state, &query, &parts.headers, &parts.extensions).map_err(|response| *response)?;
        // The route as declared (`/api/traces/{id}`), so traces group by route, not by id.
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| parts.uri.path(), |matched| matched.as_str());
        let ctx = CallContext::new(
            identity.caller,
            request::of(&parts.headers, &parts.extensions),
            state.registry.default_timeout(),
        )
        .with_front_door(format!("rest {} {route}", parts.method));
        Ok(Self {
            state: state.clone(),
            ctx,
        })
    }
}

impl ToolCall {
    /// Calls `tool` with a JSON object body as its input; anything else is a 400 showing `expected`.
    pub(super) async fn with_body(self, tool: &str, body: Value, expected: &str) -> Response {
        match body {
            input @ Value::Object(_) => self.run(tool, input).await,
            _ => error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("expected {expected}"),
            ),
        }
    }

    pub(super) async fn run(self, tool: &str, input: Value) -> Response {
        match self.state.registry.call(&self.ctx, tool, input).await {
            Ok(result) if failure_kind(&result) == Some(FailureKind::Pending) => {
                // Accepted, not done: the body says which approval to ask about later.
                let body = json!({
                    "error": "approval_pending",
                    "message": error_text(&result),
                    "approvalId": approval_id_of(&result),
                });
                (StatusCode::ACCEPTED, axum::Json(body)).into_response()
            }
            Ok(result) if result.is_error == Some(true) => {
                let (status, code) = failure_status(failure_kind(&result).unwrap_or_default());
                error_response(status, code, &error_text(&result))
            }
            Ok(result) => axum::Json(result.structured_content.unwrap_or(Value::Null)).into_response(),
            Err(error) => error_response(call_error_status(&error), error.code(), &error.to_string()),
        }
    }
}

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

/// `DELETE /api/mcp/servers/{name}`
pub(super) async fn remove_server(call: ToolCall, Path(name): Path<String>) -> Response {
    let well_formed = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !well_formed {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_server_name",
            "server names are 1-64 characters of a-z, 0-9, `_` and `-`",
        );
    }
    call.run("agentos.mcp_server_remove", json!({ "name": name })).await
}

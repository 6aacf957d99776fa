//! `/mcp`: MCP streamable HTTP, served by rmcp, and its plain JSON form (a POST whose body has
//! no `jsonrpc`), served by `plain`. Each MCP session is bound to the agent that opened it.

use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use super::openapi::{Op, schema_of};
use super::plain::PlainCall;
use super::{HttpState, NamesQuery, error_response, identity_for, plain, request};
use crate::adapters::mcp::RequestIdentity;

/// `/mcp`: a POST whose JSON body has no `jsonrpc` member is the plain form; everything else is
/// MCP streamable HTTP, handled by rmcp.
pub(super) async fn entry(
    State(state): State<HttpState>,
    Query(query): Query<NamesQuery>,
    request: Request,
) -> Response {
    let identity = match identity_for(&state, &query, request.headers(), request.extensions()) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(identity.clone());
    if parts.method != Method::POST {
        return forward_to_mcp(&state, &identity, Request::from_parts(parts, body)).await;
    }
    let bytes = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("request bodies are limited to {} bytes", state.max_body_bytes),
            );
        }
    };
    if plain::is_plain_form(&bytes) {
        let id = request::of(&parts.headers, &parts.extensions);
        let client = super::auth::client_of(&parts.extensions);
        return plain::handle(&state.registry, identity, id, client, &bytes).await;
    }
    if let Some(answer) = state.fast.answer(&state.sessions, &identity, &parts, &bytes).await {
        return answer;
    }
    forward_to_mcp(&state, &identity, Request::from_parts(parts, Body::from(bytes))).await
}

const SESSION_HEADER: &str = "mcp-session-id";

async fn forward_to_mcp(state: &HttpState, identity: &RequestIdentity, request: Request) -> Response {
    let ending_session = request.method() == Method::DELETE;
    let agent = &identity.caller.agent_id;
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session
        && state.sessions.owner(id).is_none_or(|owner| owner != *agent)
    {
        tracing::info!(agent = %agent, "an MCP session id that is not this agent's was presented");
        return error_response(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "no such MCP session; start a new one with initialize",
        );
    }
    // The handler of a session this request creates is handed over under the request's id.
    let handed_over = request
        .extensions()
        .get::<super::HttpRequestId>()
        .filter(|_| session.is_none())
        .map(|id| HandedOver {
            handoff: &state.fast.handoff,
            request_id: id.0.clone(),
        });
    let mut response = match state.mcp.clone().oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    let handler = handed_over.as_ref().and_then(HandedOver::take);
    match (
        &session,
        response.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()),
    ) {
        (None, Some(created)) => state.sessions.bind(created, agent.clone(), handler),
        (Some(id), _) if ending_session && response.status().is_success() => state.sessions.unbind(id),
        _ => {}
    }
    // rmcp refuses (400, 404, 406, ...) with a text body but no Content-Type; say what it is.
    if !response.headers().contains_key(axum::http::header::CONTENT_TYPE) && response.status().is_client_error() {
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    // rmcp answers a session's DELETE with 202; clients (the Python SDK among them) expect the
    // usual 200/204 for a completed deletion.
    if ending_session && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// A session handler handed over during one request: taken when rmcp has answered, and
/// dropped with the request however it ends.
struct HandedOver<'a> {
    handoff: &'a crate::adapters::mcp::Handoff,
    request_id: std::sync::Arc<str>,
}

impl HandedOver<'_> {
    fn take(&self) -> Option<crate::adapters::mcp::McpHandler> {
        self.handoff.take(&self.request_id)
    }
}

impl Drop for HandedOver<'_> {
    fn drop(&mut self) {
        self.handoff.take(&self.request_id);
    }
}

fn string() -> Value {
    json!({"type": "string"})
}

fn jsonrpc() -> Value {
    json!({
        "type": "object",
        "required": ["jsonrpc"],
        "properties": {"jsonrpc": {"const": "2.0"}, "id": {"type": ["string", "integer"]}, "method": string()},
        "description": "A JSON-RPC 2.0 message of the MCP protocol (see the MCP specification).",
    })
}

/// The headers of a request inside a session.
fn in_session(op: Op) -> Op {
    op.names()
        .param(
            "header",
            "Mcp-Session-Id",
            false,
            string(),
            "The session, from the answer to `initialize`.",
        )
        .param(
            "header",
            "Mcp-Protocol-Version",
            false,
            string(),
            "The negotiated protocol version.",
        )
}

/// `POST /mcp`
pub(super) fn post_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    let plain_success = json!({
        "type": "object", "required": ["success", "result"],
        "properties": {"success": {"const": true}, "result": {}},
    });
    let plain_failure = json!({
        "type": "object", "required": ["error"],
        "properties": {
            "success": {"const": false}, "error": string(), "code": string(), "message": string(),
            "approvalId": string(),
        },
        "description": "The plain form's failure `{success: false, error, code}`, or a layer's `{error, message}`.",
    });
    in_session(op.named("mcp", "Call a tool (plain form) or speak MCP"))
        .describe(
            "MCP streamable HTTP: a JSON-RPC message in, its response out (JSON or an SSE stream). A body \
             without `jsonrpc` is the plain form `{tool, input|arguments, server?}` → `{success: true, result}`. \
             Calls are charged to the caller's `mcp` rate limit (429 with `Retry-After` in the plain form, an \
             `isError` result of kind `rate_limited` in JSON-RPC).",
        )
        .json_body(json!({"oneOf": [schema_of::<PlainCall>(), jsonrpc()]}))
        .reply(
            200,
            "The call's result (plain form) or the JSON-RPC response.",
            json!({"anyOf": [plain_success, jsonrpc()]}),
        )
        .reply(
            202,
            "A JSON-RPC notification or response was accepted, or the call is held for approval.",
            json!({}),
        )
        .reply(
            400,
            "A bad body (plain form: `invalid_request`, `invalid_arguments`).",
            plain_failure.clone(),
        )
        .reply(403, "Forbidden, or the approval was denied.", plain_failure.clone())
        .reply(404, "Unknown tool, or an unknown MCP session.", plain_failure.clone())
        .reply(409, "What the call would create exists already.", plain_failure.clone())
        .reply(422, "The tool ran and failed.", plain_failure.clone())
        .reply(
            429,
            "Rate limited; `Retry-After` says when to come back.",
            plain_failure.clone(),
        )
        .reply(
            503,
            "Cancelled, busy (`Retry-After`), or a service did not answer.",
            plain_failure.clone(),
        )
        .reply(504, "The call's deadline passed.", plain_failure)
        .text_reply(202, "A notification or response was accepted (no body).")
        .text_reply(400, "A protocol error (MCP transport), as text.")
        .text_reply(404, "An unknown MCP session (MCP transport), as text.")
        .text_reply(406, "The Accept header does not allow JSON and an event stream.")
        .text_reply(415, "Not JSON.")
}

/// `GET /mcp`
pub(super) fn stream_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    in_session(op.named("mcpStream", "The session's server-to-client stream"))
        .reply_as(200, "Server-sent events.", "text/event-stream", string())
        .errors(&[400, 404])
        .text_reply(400, "A protocol error (MCP transport), as text.")
        .text_reply(404, "An unknown MCP session (MCP transport), as text.")
        .text_reply(405, "No stream without sessions.")
        .text_reply(406, "The Accept header does not allow an event stream.")
        .text_reply(409, "The session already has a stream.")
}

/// `DELETE /mcp`
pub(super) fn end_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    in_session(op.named("mcpEnd", "End an MCP session"))
        .empty_reply(204, "Ended.")
        .errors(&[400, 404])
        .text_reply(400, "A protocol error (MCP transport), as text.")
        .text_reply(404, "An unknown MCP session (MCP transport), as text.")
        .text_reply(405, "Sessions are not used.")
}

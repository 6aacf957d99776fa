//! The plain JSON form of `POST /mcp`: `{"tool", "input" | "arguments", "server"?}` in,
//! `{"success": true, "result": ...}` or `{"success": false, "error": ...}` out.

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rmcp::model::CallToolResult;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::super::mcp::RequestIdentity;
use super::errors::{annotate_call_error, call_error_status};
use super::{annotate_failure, annotate_verdict, error_text, failure_status};
use crate::registry::names::with_server_hint;
use crate::registry::{CallContext, CallError, Registry, approval_id_of, failure_kind};

/// True when the body is a JSON object without a `jsonrpc` member. Anything else (JSON-RPC,
/// batches, malformed JSON) goes to the MCP transport, which answers in JSON-RPC terms.
pub fn is_plain_form(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Probe {
        jsonrpc: Option<IgnoredAny>,
    }
    let starts_with_brace = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    starts_with_brace && matches!(serde_json::from_slice::<Probe>(body), Ok(Probe { jsonrpc: None }))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PlainCall {
    tool: String,
    input: Option<Value>,
    arguments: Option<Value>,
    server: Option<String>,
}

fn failure(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(json!({ "success": false, "error": message.into(), "code": code })),
    )
        .into_response()
}

/// Runs the call as `identity`; `request_id` is the HTTP request's, so the audit record matches
/// the request's log lines.
pub async fn handle(
    registry: &Arc<Registry>,
    identity: RequestIdentity,
    request_id: String,
    client: Option<IpAddr>,
    body: &[u8],
) -> Response {
    let call: PlainCall = match serde_json::from_slice(body) {
        Ok(call) => call,
        Err(error) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("expected {{\"tool\": \"...\", \"input\": {{...}}, \"server\"?: \"...\"}}: {error}"),
            );
        }
    };
    let input = match (call.input, call.arguments) {
        (Some(_), Some(_)) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "give the tool's arguments as `input` or as `arguments`, not both",
            );
        }
        (input, arguments) => input.or(arguments).unwrap_or(Value::Null),
    };
    let name = with_server_hint(&call.tool, call.server.as_deref());
    let mut ctx = CallContext::new(identity.caller, request_id, registry.default_timeout())
        .with_front_door("http.plain")
        .with_client(client);
    let verdict = ctx.reporting_rate();
    let mut response = answer(registry.call(&ctx, &name, input).await);
    if let Some(verdict) = verdict.get() {
        annotate_verdict(response.headers_mut(), verdict);
    }
    response
}

/// The plain form's answer to a call's outcome.
fn answer(outcome: Result<CallToolResult, CallError>) -> Response {
    match outcome {
        Ok(result) if result.is_error == Some(true) => {
            let message = error_text(&result);
            let message = if message.is_empty() {
                "the tool failed without a message".to_owned()
            } else {
                message
            };
            let kind = failure_kind(&result).unwrap_or_default();
            let (status, code) = failure_status(kind);
            let mut body = json!({ "success": false, "error": message, "code": code });
            if let Some(id) = approval_id_of(&result) {
                body["approvalId"] = Value::String(id.to_owned());
            }
            let mut response = (status, axum::Json(body)).into_response();
            annotate_failure(response.headers_mut(), kind);
            response
        }
        Ok(result) => axum::Json(json!({ "success": true, "result": plain_result(result) })).into_response(),
        Err(error) => {
            let mut response = failure(call_error_status(&error), error.code(), error.to_string());
            annotate_call_error(response.headers_mut(), &error);
            response
        }
    }
}

/// The tool's structured result when it has one; otherwise its MCP content blocks.
fn plain_result(result: CallToolResult) -> Value {
    match result.structured_content {
        Some(structured) => structured,
        None => json!({ "content": result.content }),
    }
}

#[cfg(test)]
mod tests {
    use super::is_plain_form;

    #[test]
    fn plain_form_is_an_object_without_jsonrpc() {
        assert!(is_plain_form(br#" {"tool": "agentos.time_now"}"#));
        assert!(is_plain_form(br#"{"tool": "x", "input": {"jsonrpc": "2.0"}}"#));
        assert!(!is_plain_form(br#"{"jsonrpc": "2.0", "id": 1, "method": "ping"}"#));
        assert!(!is_plain_form(br#"[{"jsonrpc": "2.0"}]"#));
        assert!(!is_plain_form(b"{not json"));
    }
}

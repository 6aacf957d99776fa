//! Hand-written schemas for answers built as JSON in the handlers (accounts, liveness, the tool
//! list), the operations of `/mcp`, and the metrics and trace routes.

use serde_json::{Value, json};

use super::Access::{Protected, Unchecked};
use super::Op;

fn string() -> Value {
    json!({"type": "string"})
}

fn nullable_string() -> Value {
    json!({"type": ["string", "null"]})
}

pub(super) fn liveness() -> Value {
    json!({
        "type": "object",
        "required": ["status", "version", "timestamp", "tools", "inFlight"],
        "properties": {
            "status": {"const": "ok"},
            "version": string(),
            "timestamp": {"type": "string", "description": "RFC 3339."},
            "tools": {"type": "integer", "minimum": 0},
            "inFlight": {"type": "integer", "minimum": 0},
        },
    })
}

pub(super) fn tool_list() -> Value {
    json!({
        "type": "object",
        "required": ["tools"],
        "properties": {"tools": {"type": "array", "items": {
            "type": "object",
            "required": ["name", "inputSchema"],
            "properties": {
                "name": string(),
                "title": string(),
                "description": string(),
                "inputSchema": {"type": "object"},
                "outputSchema": {"type": "object"},
                "annotations": {"type": "object"},
            },
        }}},
    })
}

fn credentials() -> Value {
    json!({
        "type": "object",
        "required": ["agentId", "bearerToken", "apiKey", "expiresIn"],
        "properties": {
            "agentId": string(),
            "bearerToken": string(),
            "apiKey": {"type": "string", "description": "The same token (a legacy alias)."},
            "expiresIn": {"type": "string", "examples": ["90 days"]},
            "agentName": string(),
        },
    })
}

pub(super) fn signed_in() -> Value {
    json!({
        "type": "object",
        "required": ["success", "credentials", "csrfToken"],
        "properties": {
            "success": {"const": true},
            "credentials": credentials(),
            "csrfToken": {"type": "string", "description": "Send it as X-CSRF-Token with the session cookie."},
        },
    })
}

pub(super) fn credentials_reply() -> Value {
    json!({
        "type": "object",
        "required": ["success", "credentials"],
        "properties": {"success": {"const": true}, "credentials": credentials()},
    })
}

pub(super) fn session() -> Value {
    json!({
        "type": "object",
        "required": ["authenticated", "session"],
        "properties": {
            "authenticated": {"const": true},
            "session": {
                "type": "object",
                "required": ["agentId", "agentName", "role", "via", "expiresAt"],
                "properties": {
                    "agentId": string(),
                    "agentName": string(),
                    "role": {"type": "string", "enum": ["agent", "operator", "ops-admin"]},
                    "via": {"type": "string", "enum": ["bearer", "session"]},
                    "expiresAt": string(),
                    "csrfToken": string(),
                },
            },
        },
    })
}

pub(super) fn registered() -> Value {
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "type": "object",
        "required": ["agentId", "name", "token", "expiresIn", "expiresAt", "allowedDomains", "allowedTools",
                     "mcpEndpoint", "toolsEndpoint"],
        "properties": {
            "agentId": string(), "name": string(), "token": string(), "expiresIn": string(),
            "expiresAt": string(), "allowedDomains": strings, "allowedTools": strings,
            "mcpEndpoint": string(), "toolsEndpoint": string(),
        },
    })
}

pub(super) fn agent_me() -> Value {
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "type": "object",
        "required": ["agentId", "name", "role", "status", "allowedDomains", "allowedTools", "createdAt",
                     "totalCalls", "mcpEndpoint", "toolsEndpoint"],
        "properties": {
            "agentId": string(), "name": string(),
            "description": nullable_string(), "ownerEmail": nullable_string(), "accountId": nullable_string(),
            "role": {"type": "string", "enum": ["agent", "operator", "ops-admin"]},
            "status": {"type": "string", "enum": ["active", "disabled"]},
            "allowedDomains": strings, "allowedTools": strings, "createdAt": string(),
            "totalCalls": {"type": "integer", "minimum": 0},
            "lastActiveAt": nullable_string(),
            "mcpEndpoint": string(), "toolsEndpoint": string(),
        },
    })
}

/// `/mcp`: MCP streamable HTTP (JSON-RPC) and, for a POST whose body has no `jsonrpc`, the plain form.
pub(super) fn mcp_operations(plain_call: Value) -> Vec<Op> {
    let jsonrpc = json!({
        "type": "object",
        "required": ["jsonrpc"],
        "properties": {"jsonrpc": {"const": "2.0"}, "id": {"type": ["string", "integer"]}, "method": string()},
        "description": "A JSON-RPC 2.0 message of the MCP protocol (see the MCP specification).",
    });
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
    // rmcp answers protocol-level refusals with a plain-text reason.
    let session = |op: Op| {
        op.param(
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
    };
    let post = Op::new(
        "post",
        "/mcp",
        Protected,
        "tools",
        "mcp",
        "Call a tool (plain form) or speak MCP",
    )
    .describe(
        "MCP streamable HTTP: a JSON-RPC message in, its response out (JSON or an SSE stream). A body \
             without `jsonrpc` is the plain form `{tool, input|arguments, server?}` → `{success: true, result}`.",
    )
    .names()
    .json_body(json!({"oneOf": [plain_call, jsonrpc]}))
    .reply(
        200,
        "The call's result (plain form) or the JSON-RPC response.",
        json!({"anyOf": [plain_success, jsonrpc]}),
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
    .reply(422, "The tool ran and failed.", plain_failure.clone())
    .reply(503, "Cancelled, or a service did not answer.", plain_failure.clone())
    .reply(504, "The call's deadline passed.", plain_failure)
    .text_reply(202, "A notification or response was accepted (no body).")
    .text_reply(400, "A protocol error (MCP transport), as text.")
    .text_reply(404, "An unknown MCP session (MCP transport), as text.")
    .text_reply(406, "The Accept header does not allow JSON and an event stream.")
    .text_reply(415, "Not JSON.");
    let get = Op::new(
        "get",
        "/mcp",
        Protected,
        "tools",
        "mcpStream",
        "The session's server-to-client stream",
    )
    .names()
    .reply_as(200, "Server-sent events.", "text/event-stream", string())
    .errors(&[400, 404])
    .text_reply(400, "A protocol error (MCP transport), as text.")
    .text_reply(404, "An unknown MCP session (MCP transport), as text.")
    .text_reply(405, "No stream without sessions.")
    .text_reply(406, "The Accept header does not allow an event stream.")
    .text_reply(409, "The session already has a stream.");
    let delete = Op::new("delete", "/mcp", Protected, "tools", "mcpEnd", "End an MCP session")
        .names()
        .empty_reply(204, "Ended.")
        .errors(&[400, 404])
        .text_reply(400, "A protocol error (MCP transport), as text.")
        .text_reply(404, "An unknown MCP session (MCP transport), as text.")
        .text_reply(405, "Sessions are not used.");
    vec![session(post), session(get), session(delete)]
}

/// `GET /metrics`: rendered straight from the collector, not a tool (a scrape is not a call).
pub(super) fn observability() -> Vec<Op> {
    vec![
        Op::new(
            "get",
            "/metrics",
            Unchecked,
            "observability",
            "prometheus",
            "Prometheus metrics",
        )
        .reply_as(200, "The text exposition format.", "text/plain", string())
        .errors(&[404]),
    ]
}

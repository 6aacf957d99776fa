//! `/api/audit` and `/api/approvals*`: REST adapters over `agentos.audit_query`,
//! `agentos.approvals_list` and `agentos.approval_decide`. Who may read or decide what is the
//! tools' business; these routes only turn query strings and paths into tool input.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::error_response;
use super::json::JsonBody;
use super::openapi::{Op, tool_schema};
use super::tool_call::ToolCall;
use crate::registry::is_approval_id;

pub(super) type Params = Result<Query<HashMap<String, String>>, QueryRejection>;

/// Copies the named query parameters into tool input as strings (empty ones are left out) and
/// `limit` as a number; a malformed query or limit is a 400.
pub(super) fn input_from(params: Params, names: &[&str], max_limit: u32) -> Result<Value, Box<Response>> {
    let Query(params) = params
        .map_err(|rejection| error_response(StatusCode::BAD_REQUEST, "invalid_request", &rejection.body_text()))?;
    let mut input = Map::new();
    for name in names {
        if let Some(value) = params.get(*name).filter(|value| !value.is_empty()) {
            input.insert((*name).to_owned(), Value::String(value.clone()));
        }
    }
    if let Some(limit) = params.get("limit").filter(|value| !value.is_empty()) {
        match limit.parse::<u32>() {
            Ok(limit) if (1..=max_limit).contains(&limit) => {
                input.insert("limit".into(), Value::from(limit));
            }
            _ => {
                return Err(Box::new(error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("`limit` must be a whole number from 1 to {max_limit}, not `{limit}`"),
                )));
            }
        }
    }
    Ok(Value::Object(input))
}

/// `GET /api/audit?agentId=&tool=&outcome=&since=&until=&limit=&cursor=`
pub(super) async fn audit(call: ToolCall, params: Params) -> Response {
    let names = ["agentId", "tool", "outcome", "since", "until", "cursor"];
    match input_from(params, &names, 500) {
        Ok(input) => call.run("agentos.audit_query", input).await,
        Err(response) => *response,
    }
}

/// `GET /api/approvals?status=&agentId=&limit=`
pub(super) async fn approvals(call: ToolCall, params: Params) -> Response {
    match input_from(params, &["status", "agentId"], 200) {
        Ok(input) => call.run("agentos.approvals_list", input).await,
        Err(response) => *response,
    }
}

/// `POST /api/approvals/{id}` with `{"decision": "approve"|"deny", "note"?: "..."}`
pub(super) async fn decide(call: ToolCall, Path(id): Path<String>, JsonBody(body): JsonBody<Value>) -> Response {
    if !is_approval_id(&id) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "an approval id is `apr_` followed by 32 lowercase hex digits",
        );
    }
    let expected = "{\"decision\": \"approve\"|\"deny\", \"note\"?: \"...\"}";
    let mut input = match body {
        Value::Object(input) => input,
        _ => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("expected {expected}"),
            );
        }
    };
    // The path names the approval; a different id in the body is a contradiction, not a choice.
    if input
        .get("id")
        .is_some_and(|body_id| body_id.as_str() != Some(id.as_str()))
    {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body's `id` differs from the path's; leave it out",
        );
    }
    input.insert("id".into(), Value::String(id));
    call.run("agentos.approval_decide", Value::Object(input)).await
}

fn text() -> Value {
    json!({"type": "string"})
}

/// `limit` and `cursor`, as the audit and trace listings page.
pub(super) fn paged(op: Op, max: u32) -> Op {
    op.param(
        "query",
        "limit",
        false,
        json!({"type": "integer", "minimum": 1, "maximum": max}),
        &format!("1-{max}."),
    )
    .param("query", "cursor", false, text(), "`nextCursor` of the previous page.")
}

/// `agentId`, `tool`, `since` and `until`, as the audit and trace listings filter.
pub(super) fn filtered(op: Op) -> Op {
    op.param("query", "agentId", false, text(), "Only this agent's calls.")
        .param(
            "query",
            "tool",
            false,
            text(),
            "An exact tool name (`resource:<uri>` for resource reads) or a prefix ending in `*`.",
        )
        .param("query", "since", false, text(), "RFC 3339.")
        .param("query", "until", false, text(), "RFC 3339.")
}

pub(super) fn audit_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    let outcomes: Vec<&str> = crate::registry::AuditOutcome::ALL.iter().map(|o| o.as_str()).collect();
    let op = filtered(
        op.named("audit", "Read the audit trail")
            .describe("Backed by `agentos.audit_query`."),
    )
    .param(
        "query",
        "outcome",
        false,
        json!({"type": "string", "enum": outcomes}),
        "Only calls that ended this way.",
    );
    paged(op, 500)
        .reply(
            200,
            "Records, newest first.",
            tool_schema!(schemas, "audit_query", "outputSchema"),
        )
        .tool_backed()
}

pub(super) fn approvals_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    let statuses =
        json!({"type": "string", "enum": ["pending", "approved", "denied", "completed", "failed", "expired"]});
    op.named("approvals", "List approvals")
        .describe("Backed by `agentos.approvals_list`.")
        .param("query", "status", false, statuses, "Only approvals in this state.")
        .param("query", "agentId", false, text(), "Only this agent's requests.")
        .param(
            "query",
            "limit",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": 200}),
            "1-200.",
        )
        .reply(
            200,
            "Approvals, newest first.",
            tool_schema!(schemas, "approvals_list", "outputSchema"),
        )
        .tool_backed()
}

pub(super) fn decide_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("decide", "Approve or deny")
        .describe("Backed by `agentos.approval_decide`.")
        .param(
            "path",
            "id",
            true,
            json!({"type": "string", "pattern": "^apr_[0-9a-f]{32}$"}),
            "The approval.",
        )
        .json_body(json!({
            "type": "object", "required": ["decision"], "additionalProperties": false,
            "properties": {
                "decision": {"type": "string", "enum": ["approve", "deny"]},
                "note": {"type": ["string", "null"], "maxLength": 1000},
            },
        }))
        .reply(
            200,
            "Decided.",
            tool_schema!(schemas, "approval_decide", "outputSchema"),
        )
        .tool_backed()
}

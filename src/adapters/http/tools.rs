//! `GET /tools`: the tools the caller may call, as MCP lists them. Without credentials, the
//! public catalog (the built-in primitives).

use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use super::openapi::{Op, schema_of};
use super::{HttpState, NamesQuery, identity_for};

/// The tools a caller may call.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct ToolList {
    /// In name order, each as MCP's `tools/list` gives it.
    tools: Vec<rmcp::model::Tool>,
}

/// `GET /tools`
pub(super) async fn list(
    State(state): State<HttpState>,
    Query(query): Query<NamesQuery>,
    request: Request,
) -> Response {
    let identity = match identity_for(&state, &query, request.headers(), request.extensions()) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    // Like MCP's first `tools/list`: the configured upstream servers' tools are there at first sight.
    state.registry.until_started().await;
    let tools = state.registry.mcp_tools_for(&identity.caller, identity.name_style);
    axum::Json(ToolList { tools }).into_response()
}

pub(super) fn list_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("listTools", "List the tools the caller may call")
        .describe("Without credentials: the public catalog (the built-in primitives).")
        .names()
        .reply(200, "The tools.", schema_of::<ToolList>())
}

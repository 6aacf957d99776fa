//! What the MCP handler answers without rmcp's service loop around it: tool calls and tool
//! listings as plain methods (rmcp's `call_tool` and `list_tools` are thin wrappers of them),
//! the shaping rmcp gives their results per protocol revision, and the hand-off of an HTTP
//! session's handler to the HTTP fast path when the session's `initialize` reaches it.

use std::sync::Arc;
use std::time::Instant;

use dashmap::DashMap;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ErrorCode, ErrorData, ListToolsResult,
    PaginatedRequestParams, ServerResult,
};
use rmcp::service::RequestContext;
use rmcp::{Peer, RoleServer};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::{McpHandler, RequestIdentity, call_error_to_mcp};
use crate::registry::{CallContext, Resume, Round};

/// Handlers of HTTP sessions whose `initialize` is being answered, by the id of that HTTP
/// request; the HTTP adapter takes each one when rmcp has created the session.
#[derive(Default)]
pub struct Handoff(DashMap<Arc<str>, McpHandler>);

impl Handoff {
    /// The handler `initialize` reached during HTTP request `request_id`, if any; taken once.
    pub fn take(&self, request_id: &str) -> Option<McpHandler> {
        self.0.remove(request_id).map(|(_, handler)| handler)
    }
}

impl McpHandler {
    /// A clone for the fast path: shares the session's state (client, log level, what it was
    /// shown) but not the guard whose drop ends the session's watchers.
    fn detached(&self) -> Self {
        Self {
            _session_guard: None,
            ..self.clone()
        }
    }

    /// A new handler like this one, sharing none of its session state.
    pub fn fresh(&self) -> Self {
        Self::new(self.registry.clone(), self.default_identity.clone())
    }

    /// Offers a detached clone to the HTTP fast path, which answers in the session once its
    /// client has said it is initialized (see [`Self::ready_for_fast_path`]).
    pub(super) fn hand_off(&self, context: &RequestContext<RoleServer>) {
        let request_id = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<crate::adapters::http::HttpRequestId>());
        if let (Some(handoff), Some(request_id)) = (&self.handoff, request_id) {
            handoff.0.insert(request_id.0.clone(), self.detached());
        }
    }

    /// Whether the session's handshake is over (`notifications/initialized` handled), so its
    /// requests may be answered outside rmcp's service loop.
    pub fn ready_for_fast_path(&self) -> bool {
        self.peer.get().is_some()
    }

    /// The context of a call made through the HTTP fast path in this handler's session (or,
    /// for a stateless request, with no session client to ask).
    pub fn fast_path_context(
        &self,
        identity: &RequestIdentity,
        request_id: String,
        cancel: CancellationToken,
    ) -> CallContext {
        self.context_for(
            identity.caller.clone(),
            request_id,
            "mcp.http",
            cancel,
            self.peer.get(),
            None,
        )
    }

    /// Whether the tool `name` (as the transport looks it up, for the owner) has an argument
    /// that travels in an `Mcp-Param-*` header too, which only the transport checks.
    pub fn tool_takes_header_params(&self, name: &str) -> bool {
        self.registry
            .resolve_for(&self.default_identity.caller, name)
            .is_some_and(|entry| schema_has_header_params(&entry.listing.input_schema))
    }

    /// `tools/call`: a stateless client (`stateless` holds what it declared) is asked through
    /// `input_required` rounds; a session's client through its channel.
    pub async fn answer_call(
        &self,
        request: CallToolRequestParams,
        ctx: CallContext,
        peer: Option<&Peer<RoleServer>>,
        stateless: Option<ClientCapabilities>,
    ) -> Result<CallToolResponse, ErrorData> {
        let input = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        let started = Instant::now();
        let called = match stateless {
            Some(capabilities) => {
                let resume = request.request_state.map(|request_state| Resume {
                    request_state,
                    responses: request.input_responses.unwrap_or_default(),
                });
                let round = self
                    .registry
                    .call_in_rounds(ctx.clone(), &request.name, input, capabilities, resume)
                    .await
                    .map_err(|unknown| ErrorData::invalid_params(unknown.to_string(), None))?;
                match round {
                    Round::InputRequired(questions) => return Ok(CallToolResponse::InputRequired(questions)),
                    Round::Done(called) => called,
                }
            }
            None => self.registry.call(&ctx, &request.name, input).await,
        };
        if let Some(peer) = peer.or_else(|| self.peer.get()) {
            self.log
                .call_ended(peer, &request.name, &ctx.request_id, started.elapsed(), &called)
                .await;
        }
        called.or_else(call_error_to_mcp).map(Into::into)
    }

    /// `tools/list` for `identity`, one page.
    pub async fn answer_tool_list(
        &self,
        identity: &RequestIdentity,
        request: Option<PaginatedRequestParams>,
    ) -> Result<ListToolsResult, ErrorData> {
        // Clients that list once (Claude Desktop, ...) would never see the configured upstream
        // servers' tools if the first listing did not wait for them; later ones return at once.
        self.registry.until_started().await;
        self.charge_listing(&identity.caller)?;
        let tools = self.shown.list(&self.registry, identity);
        let (tools, next) = self.page(tools, request, |tool| &tool.name)?;
        let mut answer = ListToolsResult::with_all_items(tools);
        answer.next_cursor = next;
        Ok(answer)
    }
}

/// The schema annotation that makes a tool argument travel in an `Mcp-Param-*` header too.
const HEADER_ANNOTATION: &str = "x-mcp-header";

/// Whether a tool input schema asks for some argument to travel in an `Mcp-Param-*` header.
fn schema_has_header_params(schema: &Map<String, Value>) -> bool {
    schema.iter().any(|(key, value)| {
        key == HEADER_ANNOTATION
            || match value {
                Value::Object(object) => schema_has_header_params(object),
                Value::Array(items) => items
                    .iter()
                    .any(|item| item.as_object().is_some_and(schema_has_header_params)),
                _ => false,
            }
    })
}

/// A handler's answer as rmcp shapes it for the request's protocol revision: 2026-07-28 results
/// carry cache hints and report unknown resources as invalid params; older revisions get the
/// shape they define (no `resultType`, object-only structured output).
pub fn finish_result(answer: Result<ServerResult, ErrorData>, revision_2026: bool) -> Result<ServerResult, ErrorData> {
    match answer {
        Ok(mut result) => {
            if revision_2026 {
                result.fill_missing_cache_hints();
            } else {
                result.strip_result_type_for_legacy_peer();
                result.strip_non_object_output_for_legacy_peer();
            }
            Ok(result)
        }
        Err(mut error) => {
            if revision_2026 && error.code == ErrorCode::RESOURCE_NOT_FOUND {
                error.code = ErrorCode::INVALID_PARAMS;
            }
            Err(error)
        }
    }
}

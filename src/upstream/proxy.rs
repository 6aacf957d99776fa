//! A proxied tool: the upstream's spec under our name, and a call forwarded over the server's
//! current shared connection, with its progress routed back to the caller.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotification, CancelledNotificationParam, ClientRequest,
    JsonObject, ProgressNotificationParam, ProgressToken, RequestId, ResultType, ServerResult,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, ServiceError};
use rmcp::{ClientHandler, Peer, RoleClient};
use serde_json::Value;

use super::supervisor::Link;
use crate::registry::{CallContext, Hints, Origin, Tool, ToolFailure, ToolResult, ToolSpec};

/// Our side of an upstream session: routes progress to callers and asks for a re-list when the
/// upstream's tools change.
#[derive(Clone)]
pub struct UpstreamClient {
    link: Weak<Link>,
}

impl UpstreamClient {
    pub(crate) fn new(link: &Arc<Link>) -> Self {
        Self {
            link: Arc::downgrade(link),
        }
    }
}

impl ClientHandler for UpstreamClient {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(link) = self.link.upgrade() {
            link.relist.notify_one();
        }
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        let Some(link) = self.link.upgrade() else { return };
        // The route is inserted right after the request is queued; an event racing ahead of it
        // waits briefly rather than being lost.
        let mut route = None;
        for _ in 0..20 {
            route = link.routes().get(&params.progress_token).cloned();
            if route.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(Some(sink)) = route {
            sink.progress(params.progress, params.total, params.message).await;
        }
    }
}

pub(crate) struct ProxyTool {
    spec: ToolSpec,
    upstream_name: String,
    link: Arc<Link>,
}

impl ProxyTool {
    pub(crate) fn new(link: Arc<Link>, tool: rmcp::model::Tool) -> Self {
        let annotations = tool.annotations.as_ref().map(|a| Hints {
            read_only: a.read_only_hint.unwrap_or(false),
            destructive: a.destructive_hint.unwrap_or(true),
            idempotent: a.idempotent_hint.unwrap_or(false),
            open_world: a.open_world_hint.unwrap_or(true),
        });
        let spec = ToolSpec {
            name: Arc::from(format!("{}{}", link.prefix, tool.name)),
            title: tool
                .title
                .clone()
                .or_else(|| tool.annotations.as_ref().and_then(|a| a.title.clone())),
            description: tool.description.as_deref().unwrap_or_default().to_owned(),
            input_schema: tool.input_schema.clone(),
            output_schema: tool.output_schema.clone(),
            annotations,
            origin: Origin::Mcp,
        };
        Self {
            spec,
            upstream_name: tool.name.to_string(),
            link,
        }
    }

    fn unavailable(&self) -> ToolFailure {
        ToolFailure::new(format!(
            "MCP server `{}` is unavailable, restarting; try again shortly",
            self.link.name()
        ))
    }
}

/// Removes a call's progress route and, unless disarmed, tells the upstream the call was
/// abandoned (the caller cancelled, its deadline passed, or our timeout fired).
struct CallGuard {
    link: Arc<Link>,
    peer: Peer<RoleClient>,
    token: ProgressToken,
    pending: Option<RequestId>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.link.routes().remove(&self.token);
        if let Some(id) = self.pending.take() {
            let peer = self.peer.clone();
            let notification = CancelledNotification::new(CancelledNotificationParam::new(
                Some(id),
                Some("request cancelled".into()),
            ));
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = peer.send_notification(notification.into()).await;
                });
            }
        }
    }
}

impl Tool for ProxyTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, input: Value, ctx: &'a CallContext) -> BoxFuture<'a, ToolResult> {
        async move {
            let peer = self.link.state().peer.clone().ok_or_else(|| self.unavailable())?;
            let mut params = CallToolRequestParams::new(self.upstream_name.clone());
            if let Value::Object(arguments) = input {
                params = params.with_arguments(JsonObject::from_iter(arguments));
            }
            let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
            let handle = peer
                .send_request_with_option(request, PeerRequestOptions::no_options())
                .await
                .map_err(|_| self.unavailable())?;
            self.link
                .routes()
                .insert(handle.progress_token.clone(), ctx.progress.clone());
            let mut guard = CallGuard {
                link: self.link.clone(),
                peer,
                token: handle.progress_token.clone(),
                pending: Some(handle.id.clone()),
            };
            // The registry pipeline enforces the caller's deadline and cancellation by dropping
            // this future (the guard then cancels upstream); this bounds the server's own time.
            let timeout = self.link.spec.timeout();
            let outcome = tokio::time::timeout(timeout, handle.await_response()).await;
            let response = match outcome {
                Err(_) => {
                    return Err(ToolFailure::new(format!(
                        "MCP server `{}` did not answer within {}s (its timeout_secs); the call was cancelled",
                        self.link.name(),
                        timeout.as_secs()
                    )));
                }
                Ok(response) => {
                    guard.pending = None;
                    response
                }
            };
            match response {
                Ok(ServerResult::CallToolResult(mut result)) => {
                    // A result from a pre-2026 upstream has no type; 2026-07-28 clients need one.
                    result.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(result)
                }
                Ok(_) => Err(ToolFailure::new(format!(
                    "MCP server `{}` sent an unexpected answer to tools/call",
                    self.link.name()
                ))),
                Err(ServiceError::TransportClosed) => Err(ToolFailure::new(format!(
                    "MCP server `{}` closed the connection during the call; it is restarting, try again shortly",
                    self.link.name()
                ))),
                Err(ServiceError::McpError(error)) => Err(ToolFailure::new(format!(
                    "MCP server `{}` refused the call: {}",
                    self.link.name(),
                    error.message
                ))),
                Err(_) => {
                    // Transport trouble: have the supervisor check the connection now.
                    self.link.check.notify_one();
                    Err(ToolFailure::new(format!(
                        "MCP server `{}` could not be reached; it is being checked and reconnected, try again shortly",
                        self.link.name()
                    )))
                }
            }
        }
        .boxed()
    }
}

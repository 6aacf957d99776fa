//! The MCP server both front doors share (stdio and streamable HTTP): a thin translation of MCP
//! requests into registry calls, plus list-change notifications for live sessions.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ErrorData, GetPromptRequestParams, GetPromptResponse,
    Implementation, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, SubscriptionFilter, Tool,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{Peer, RoleServer, ServerHandler};
use serde_json::Value;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::registry::{
    CallContext, CallError, Caller, FailureKind, LimitClass, NameStyle, ProgressSink, Registry, refusal_result,
};

/// How often a session's list-change watcher checks that its client is still there.
const LIVENESS_CHECK: Duration = Duration::from_secs(15);

const INSTRUCTIONS: &str = "agentos gives you persistent memory, time and other system tools \
(agentos.*), plus the tools of connected MCP servers (mcp.<server>.<tool>); their prompts are \
mcp.<server>.<prompt> and their resources agentos+mcp://<server>/<original uri>. If you are unsure \
which tool fits, call agentos.tools_search with a few words describing the task.";

/// Who is calling and how they want names spelled, attached to each HTTP request by the HTTP
/// adapter; stdio sessions use the handler's defaults.
#[derive(Clone, Debug)]
pub struct RequestIdentity {
    pub caller: Arc<Caller>,
    pub name_style: NameStyle,
}

/// One MCP session's handler. Cheap to clone; the watcher tasks it starts end when the last clone
/// is dropped (the session closed) or the client goes away.
#[derive(Clone)]
pub struct McpHandler {
    registry: Arc<Registry>,
    default_identity: RequestIdentity,
    session_end: CancellationToken,
    _session_guard: Arc<DropGuard>,
}

impl McpHandler {
    pub fn new(registry: Arc<Registry>, default_identity: RequestIdentity) -> Self {
        let session_end = CancellationToken::new();
        Self {
            registry,
            default_identity,
            _session_guard: Arc::new(session_end.clone().drop_guard()),
            session_end,
        }
    }

    /// The context of a call, read or get in this session: its caller, its request id (over
    /// HTTP the HTTP request's, so logs, audit and traces agree on it; over stdio the JSON-RPC
    /// id), cancellation and progress.
    fn call_context(&self, context: &RequestContext<RoleServer>) -> CallContext {
        let identity = self.identity(&context.extensions);
        let parts = context.extensions.get::<http::request::Parts>();
        let front_door = if parts.is_some() { "mcp.http" } else { "mcp.stdio" };
        let request_id = parts
            .and_then(|parts| parts.extensions.get::<super::http::HttpRequestId>())
            .map(|id| id.0.to_string())
            .unwrap_or_else(|| request_id_text(&context.id));
        let mut ctx = CallContext::new(identity.caller, request_id, self.registry.default_timeout())
            .with_cancel(context.ct.clone())
            .with_front_door(front_door);
        if let Some(token) = context.meta.get_progress_token() {
            ctx = ctx.with_progress(Arc::new(PeerProgress {
                peer: context.peer.clone(),
                token,
            }));
        }
        ctx
    }

    /// Charges a listing to the caller's MCP budget, like a call; refused, it is an error.
    fn charge_listing(&self, caller: &Caller) -> Result<(), ErrorData> {
        self.registry
            .charge(caller, None, LimitClass::Mcp)
            .map(drop)
            .map_err(|refusal| call_error_to_protocol(CallError::RateLimited(refusal)))
    }

    fn identity(&self, extensions: &rmcp::model::Extensions) -> RequestIdentity {
        extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<RequestIdentity>())
            .or_else(|| extensions.get::<RequestIdentity>())
            .cloned()
            .unwrap_or_else(|| self.default_identity.clone())
    }
}

/// A cheap summary of what a caller sees, so a session is only told about changes to tools it can
/// actually use.
fn visible_fingerprint(registry: &Registry, caller: &Caller) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for entry in registry.list_for(caller) {
        entry.name().hash(&mut hasher);
        (Arc::as_ptr(&entry) as *const () as usize).hash(&mut hasher);
    }
    hasher.finish()
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_prompts()
                .build(),
        )
        .with_server_info(Implementation::new("agentos", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let identity = self.identity(&context.extensions);
        self.charge_listing(&identity.caller)?;
        let tools = self.registry.mcp_tools_for(&identity.caller, identity.name_style);
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        // Used by the HTTP transport to check Mcp-Param headers; identity is not known here, and
        // the call itself is authorized by the registry.
        self.registry
            .resolve_for(&self.default_identity.caller, name)
            .map(|entry| entry.listing.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let ctx = self.call_context(&context);
        let input = request.arguments.map(Value::Object).unwrap_or(Value::Null);
        match self.registry.call(&ctx, &request.name, input).await {
            Ok(result) => Ok(result.into()),
            Err(error) => call_error_to_mcp(error).map(Into::into),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let identity = self.identity(&context.extensions);
        self.charge_listing(&identity.caller)?;
        let resources = self.registry.list_resources_for(&identity.caller).await;
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let identity = self.identity(&context.extensions);
        self.charge_listing(&identity.caller)?;
        let templates = self.registry.list_resource_templates_for(&identity.caller).await;
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let ctx = self.call_context(&context);
        self.registry
            .read_resource(&ctx, &request.uri)
            .await
            .map(Into::into)
            .map_err(call_error_to_protocol)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let identity = self.identity(&context.extensions);
        self.charge_listing(&identity.caller)?;
        let prompts = self.registry.list_prompts_for(&identity.caller).await;
        Ok(ListPromptsResult::with_all_items(prompts))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        let ctx = self.call_context(&context);
        self.registry
            .get_prompt(&ctx, &request.name, request.arguments)
            .await
            .map(Into::into)
            .map_err(call_error_to_protocol)
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        let caller = self.identity(&context.extensions).caller;
        let peer = context.peer.clone();
        let (registry, session_end) = (self.registry.clone(), self.session_end.clone());
        tokio::spawn(forward_list_changes(registry, caller, peer, session_end));
    }

    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        let _ = requested;
        Some(SubscriptionFilter::builder().tools_list_changed().build())
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let caller = self.identity(&context.request_context().extensions).caller;
        let mut changes = self.registry.subscribe();
        let mut seen = visible_fingerprint(&self.registry, &caller);
        loop {
            tokio::select! {
                _ = context.cancelled() => return Ok(()),
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let now = visible_fingerprint(&self.registry, &caller);
                    if now != seen {
                        seen = now;
                        if context.sink().notify_tool_list_changed().await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

/// Tells a pre-2026 session about changes to its tool list until the session ends.
async fn forward_list_changes(
    registry: Arc<Registry>,
    caller: Arc<Caller>,
    peer: Peer<RoleServer>,
    session_end: CancellationToken,
) {
    let mut changes = registry.subscribe();
    let mut seen = visible_fingerprint(&registry, &caller);
    let mut liveness = tokio::time::interval(LIVENESS_CHECK);
    loop {
        tokio::select! {
            _ = session_end.cancelled() => return,
            _ = liveness.tick() => {
                if peer.is_transport_closed() {
                    return;
                }
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = visible_fingerprint(&registry, &caller);
                if now != seen {
                    seen = now;
                    if peer.notify_tool_list_changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Forwards a tool's progress to the client that asked for it.
struct PeerProgress {
    peer: Peer<RoleServer>,
    token: ProgressToken,
}

impl ProgressSink for PeerProgress {
    fn progress(&self, progress: f64, total: Option<f64>, message: Option<String>) -> BoxFuture<'_, ()> {
        let mut param = ProgressNotificationParam::new(self.token.clone(), progress);
        param.total = total;
        param.message = message;
        async move {
            if let Err(error) = self.peer.notify_progress(param).await {
                tracing::debug!(%error, "could not deliver a progress notification");
            }
        }
        .boxed()
    }
}

fn request_id_text(id: &rmcp::model::RequestId) -> String {
    match id {
        rmcp::model::NumberOrString::Number(n) => n.to_string(),
        rmcp::model::NumberOrString::String(s) => s.to_string(),
    }
}

/// Refusals of what has no result channel (resource reads, prompt gets, listings) as JSON-RPC
/// errors: unknown or denied resources and prompts are "not found" (denied ones look unknown),
/// bad arguments are invalid params, and the rest an internal error whose `data` says its kind
/// (and, when rate limited, the delay; when held, the approval).
fn call_error_to_protocol(error: CallError) -> ErrorData {
    let message = error.to_string();
    match &error {
        CallError::UnknownTool(_)
        | CallError::NotFound(_)
        | CallError::Failed {
            kind: FailureKind::NotFound,
            ..
        } => ErrorData::resource_not_found(message, None),
        CallError::InvalidArguments { .. } => ErrorData::invalid_params(message, None),
        _ => {
            let mut data = serde_json::json!({ "kind": error.code() });
            if let CallError::RateLimited(refusal) = &error {
                data["retryAfterSecs"] = refusal.retry_after_secs().into();
            }
            if let CallError::Failed {
                approval_id: Some(id), ..
            } = &error
            {
                data["approvalId"] = id.clone().into();
            }
            ErrorData::internal_error(message, Some(data))
        }
    }
}

/// The one mapping of registry refusals onto MCP tool calls: unknown (or denied) tools are a
/// protocol error, as the spec asks; everything a model can fix or retry (bad arguments, a
/// deadline, a rate limit with its delay) is an `isError` result it reads.
pub fn call_error_to_mcp(error: CallError) -> Result<CallToolResult, ErrorData> {
    match error {
        CallError::UnknownTool(_) => Err(ErrorData::invalid_params(error.to_string(), None)),
        error => Ok(refusal_result(&error)),
    }
}

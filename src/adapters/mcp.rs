//! The MCP server both front doors share (stdio and streamable HTTP): a thin translation of MCP
//! requests into registry calls, plus change notifications (pre-2026 sessions' and 2026-07-28
//! `subscriptions/listen` streams') and log messages for live sessions.

mod direct;
pub mod envelope;
mod list_watch;
mod peer_client;
mod session_log;
mod session_subscriptions;

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult, ErrorData,
    GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ProgressToken,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig, SubscribeRequestParams,
    SubscriptionFilter, Tool, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, RequestContext, SubscriptionContext};
use rmcp::{Peer, RoleServer, ServerHandler};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::registry::{
    CallContext, CallError, Caller, FailureKind, LimitClass, NameStyle, ProgressSink, Registry, ResourceError,
    refusal_result,
};
pub use direct::{Handoff, finish_result};
use list_watch::{Notice, Shown, Watching};
#[allow(deprecated)]
use session_log::{SessionLog, SetLevelRequestParams};
use session_subscriptions::SessionSubscriptions;

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
    /// Ends the session's watchers when the last clone rmcp holds is dropped; `None` in the
    /// detached clone the HTTP fast path keeps (see [`direct`]), which must not keep them alive.
    _session_guard: Option<Arc<DropGuard>>,
    shown: Shown,
    log: SessionLog,
    subscriptions: SessionSubscriptions,
    /// The session's client as its calls' channel, made once (the peer is the session's).
    client_channel: Arc<std::sync::OnceLock<Arc<dyn crate::registry::ClientChannel>>>,
    /// The session's client, once its handshake is over (the HTTP fast path calls through it).
    peer: Arc<std::sync::OnceLock<Peer<RoleServer>>>,
    /// Where an HTTP session's handler is handed to the fast path when `initialize` runs.
    handoff: Option<Arc<Handoff>>,
}

impl McpHandler {
    pub fn new(registry: Arc<Registry>, default_identity: RequestIdentity) -> Self {
        let session_end = CancellationToken::new();
        Self {
            registry,
            default_identity,
            _session_guard: Some(Arc::new(session_end.clone().drop_guard())),
            session_end,
            shown: Shown::default(),
            log: SessionLog::default(),
            subscriptions: SessionSubscriptions::default(),
            client_channel: Arc::default(),
            peer: Arc::default(),
            handoff: None,
        }
    }

    /// A handler that hands itself to `handoff` when an HTTP session's `initialize` reaches it.
    pub fn handing_off_to(mut self, handoff: Arc<Handoff>) -> Self {
        self.handoff = Some(handoff);
        self
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
        self.context_for(
            identity.caller,
            request_id,
            front_door,
            context.ct.clone(),
            Some(&context.peer),
            context.meta.get_progress_token(),
        )
    }

    /// The context of a call by `caller`, with the session's client as its channel when there
    /// is one (`peer`) and progress reported to it when the request asked (`progress`).
    fn context_for(
        &self,
        caller: Arc<Caller>,
        request_id: String,
        front_door: &'static str,
        cancel: CancellationToken,
        peer: Option<&Peer<RoleServer>>,
        progress: Option<ProgressToken>,
    ) -> CallContext {
        let mut ctx = CallContext::new(caller, request_id, self.registry.default_timeout())
            .with_cancel(cancel)
            .with_front_door(front_door);
        if let Some(peer) = peer {
            let channel = self.client_channel.get_or_init(|| {
                Arc::new(peer_client::PeerClient {
                    peer: peer.clone(),
                    log: self.log.clone(),
                })
            });
            ctx = ctx.with_client_channel(channel.clone());
            if let Some(token) = progress {
                ctx = ctx.with_progress(Arc::new(PeerProgress {
                    peer: peer.clone(),
                    token,
                }));
            }
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

    /// The page of a listing the request's cursor asks for; a cursor not made here is -32602.
    fn page<T>(
        &self,
        items: Vec<T>,
        request: Option<PaginatedRequestParams>,
        key: impl Fn(&T) -> &str,
    ) -> Result<(Vec<T>, Option<String>), ErrorData> {
        let cursor = request.and_then(|request| request.cursor);
        self.registry
            .page(items, cursor.as_deref(), key)
            .map_err(|invalid| ErrorData::invalid_params(invalid.to_string(), None))
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

impl ServerHandler for McpHandler {
    // `enable_logging`: see `session_log` for why agentos offers a deprecated feature.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .enable_resources()
                .enable_resources_subscribe()
                .enable_resources_list_changed()
                .enable_prompts()
                .enable_prompts_list_changed()
                .enable_logging()
                .enable_completions()
                .build(),
        )
        .with_server_info(Implementation::new("agentos", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let identity = self.identity(&context.extensions);
        self.answer_tool_list(&identity, request).await
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
        let stateless = stateless_capabilities(&context);
        self.answer_call(request, ctx, Some(&context.peer), stateless).await
    }

    async fn initialize(
        &self,
        request: rmcp::model::InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::InitializeResult, ErrorData> {
        context.peer.set_peer_info(request.clone());
        self.hand_off(&context);
        self.negotiate_initialize(&request)
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let identity = self.identity(&context.extensions);
        self.charge_listing(&identity.caller)?;
        self.subscriptions
            .subscribe(
                &self.registry,
                &identity.caller,
                request.uri,
                &context.peer,
                &self.session_end,
            )
            .await
            .map_err(resource_error_to_protocol)
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscriptions.unsubscribe(&self.registry, &request.uri).await;
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let identity = self.identity(&context.extensions);
        self.charge_listing(&identity.caller)?;
        self.registry
            .complete_for(&identity.caller, request)
            .await
            .map_err(|error| match error {
                ResourceError::NotFound(message) => ErrorData::invalid_params(message, None),
                ResourceError::Failed(message) => ErrorData::internal_error(message, None),
            })
    }

    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.log.set(request);
        Ok(())
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let identity = self.identity(&context.extensions);
        self.charge_listing(&identity.caller)?;
        let resources = self.registry.list_resources_for(&identity.caller).await;
        let (resources, next) = self.page(resources, request, |resource| &resource.uri)?;
        let mut answer = ListResourcesResult::with_all_items(resources);
        answer.next_cursor = next;
        Ok(answer)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let identity = self.identity(&context.extensions);
        self.charge_listing(&identity.caller)?;
        let templates = self.registry.list_resource_templates_for(&identity.caller).await;
        let (templates, next) = self.page(templates, request, |template| &template.uri_template)?;
        let mut answer = ListResourceTemplatesResult::with_all_items(templates);
        answer.next_cursor = next;
        Ok(answer)
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
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let identity = self.identity(&context.extensions);
        self.charge_listing(&identity.caller)?;
        let prompts = self.registry.list_prompts_for(&identity.caller).await;
        let (prompts, next) = self.page(prompts, request, |prompt| &prompt.name)?;
        let mut answer = ListPromptsResult::with_all_items(prompts);
        answer.next_cursor = next;
        Ok(answer)
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
        let _ = self.peer.set(context.peer.clone());
        let identity = self.identity(&context.extensions);
        tokio::spawn(forward_changes(
            Watching::start(self.registry.clone(), identity, self.shown.clone()),
            context.peer.clone(),
            self.session_end.clone(),
        ));
    }

    /// Everything agentos announces: list changes of all three kinds, and changes of whichever
    /// resources the client names (each watched as `resources/subscribe` would).
    fn accepted_subscription_filter(&self, requested: &SubscriptionFilter) -> Option<SubscriptionFilter> {
        let mut offered = SubscriptionFilter::builder()
            .tools_list_changed()
            .resources_list_changed()
            .prompts_list_changed()
            .build();
        offered.resource_subscriptions = requested.resource_subscriptions.clone();
        Some(offered)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let identity = self.identity(&context.request_context().extensions);
        let accepted = context.accepted().clone();
        let uris = accepted.resource_subscriptions.clone().unwrap_or_default();
        let mut watching = tokio::select! {
            _ = context.cancelled() => return Ok(()),
            watching = Watching::start(self.registry.clone(), identity, self.shown.clone()) => {
                watching.with_resources(&uris).await
            }
        };
        let sink = context.sink();
        loop {
            let notice = tokio::select! {
                _ = context.cancelled() => break,
                notice = watching.next() => notice,
            };
            let sent = match notice {
                None => break,
                Some(Notice::Tools) if accepted.tools_list_changed == Some(true) => {
                    sink.notify_tool_list_changed().await
                }
                Some(Notice::Resources) if accepted.resources_list_changed == Some(true) => {
                    sink.notify_resource_list_changed().await
                }
                Some(Notice::Prompts) if accepted.prompts_list_changed == Some(true) => {
                    sink.notify_prompt_list_changed().await
                }
                Some(Notice::ResourceUpdated(uri)) => sink.notify_resource_updated(uri).await,
                Some(_) => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
        watching.release().await;
        Ok(())
    }
}

/// Tells a pre-2026 session about changes to its tool, resource and prompt lists until the
/// session ends.
async fn forward_changes(
    watching: impl std::future::Future<Output = Watching>,
    peer: Peer<RoleServer>,
    session_end: CancellationToken,
) {
    let mut watching = tokio::select! {
        _ = session_end.cancelled() => return,
        watching = watching => watching,
    };
    let mut liveness = tokio::time::interval(LIVENESS_CHECK);
    loop {
        let notice = tokio::select! {
            _ = session_end.cancelled() => return,
            _ = liveness.tick() => {
                if peer.is_transport_closed() {
                    return;
                }
                continue;
            }
            notice = watching.next() => notice,
        };
        let sent = match notice {
            None => return,
            Some(Notice::Tools) => peer.notify_tool_list_changed().await,
            Some(Notice::Resources) => peer.notify_resource_list_changed().await,
            Some(Notice::Prompts) => peer.notify_prompt_list_changed().await,
            // Subscriptions of these sessions are `resources/subscribe`'s (see
            // `session_subscriptions`); none are named here.
            Some(Notice::ResourceUpdated(_)) => Ok(()),
        };
        if sent.is_err() {
            return;
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

/// The capabilities a 2026-07-28 (stateless) request declares in its `_meta`; None for a
/// request in a session, whose client can be sent requests.
fn stateless_capabilities(context: &RequestContext<RoleServer>) -> Option<rmcp::model::ClientCapabilities> {
    let version = context.meta.protocol_version()?;
    (version >= rmcp::model::ProtocolVersion::NO_INITIALIZE)
        .then(|| context.meta.client_capabilities().unwrap_or_default())
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
/// A provider's refusal of a subscription: unknown or forbidden resources are "not found".
fn resource_error_to_protocol(error: ResourceError) -> ErrorData {
    match error {
        ResourceError::NotFound(message) => ErrorData::resource_not_found(message, None),
        ResourceError::Failed(message) => ErrorData::internal_error(message, None),
    }
}

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

//! A proxied tool: the upstream's spec under our name, and a call forwarded over the server's
//! current shared connection, with its progress routed back to the caller; and the server's
//! resources and prompts as a registry provider.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotification, CancelledNotificationParam, ClientRequest,
    CompleteRequestParams, CompleteResult, GetPromptRequestParams, GetPromptResponse, GetPromptResult, JsonObject,
    ProgressToken, Prompt, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, RequestId, Resource,
    ResourceTemplate, ResultType, ServerResult, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{PeerRequestOptions, ServiceError};
use rmcp::{Peer, RoleClient};
use serde_json::Value;

use super::supervisor::{Link, Status};
use crate::registry::trace::{AttrValue, Layer};
use crate::registry::{
    Audience, CallContext, Hints, Origin, Registry, ResourceError, ResourceProvider, Tool, ToolFailure, ToolResult,
    ToolSpec,
};

pub(crate) struct ProxyTool {
    spec: ToolSpec,
    /// Set for the tool under the server's own name (a transparent server): `mcp.<server>.<tool>`.
    alias_of: Option<Arc<str>>,
    /// The name the server knows the tool by, kept for the process (see `tool_names`).
    upstream_name: std::borrow::Cow<'static, str>,
    /// The same name, shared by every span of a call to it.
    upstream_tool: Arc<str>,
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
            audience: Audience::ByPolicy,
        };
        Self {
            spec,
            alias_of: None,
            upstream_name: super::tool_names::lasting(&tool.name),
            upstream_tool: Arc::from(tool.name.as_ref()),
            link,
        }
    }

    /// The same tool under the server's own name (a transparent server): listed and called as
    /// `tool`, allowed exactly when `mcp.<server>.<tool>` is.
    pub(crate) fn alias(link: Arc<Link>, tool: rmcp::model::Tool) -> Self {
        let mut proxy = Self::new(link, tool);
        proxy.alias_of = Some(std::mem::replace(&mut proxy.spec.name, proxy.upstream_tool.clone()));
        proxy
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
    /// The call's upstream request id, under which its client is found.
    call: RequestId,
    pending: Option<RequestId>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.link.routes().remove(&self.token);
        self.link.in_transit.forget(&self.token);
        self.link.calls().remove(&self.call);
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

    fn alias_of(&self) -> Option<&str> {
        self.alias_of.as_deref()
    }

    fn call<'a>(&'a self, input: Value, ctx: &'a CallContext) -> BoxFuture<'a, ToolResult> {
        async move {
            // The upstream's own span: how long the server took and how it failed, under the
            // proxied tool's span.
            let mut span = ctx
                .trace
                .span(Layer::Upstream, || format!("upstream {}", self.link.name()));
            if let Some(span) = &mut span {
                span.attr("server", AttrValue::Str(Arc::from(self.link.name())));
                span.attr("upstream_tool", AttrValue::Str(self.upstream_tool.clone()));
            }
            let result = self.forward(input, ctx).await;
            if let Some(mut span) = span {
                match &result {
                    Err(failure) => span.fail(&failure.message),
                    Ok(result) if result.is_error == Some(true) => span.fail("the server returned an error result"),
                    Ok(_) => {}
                }
                span.end();
            }
            result
        }
        .boxed()
    }
}

impl ProxyTool {
    /// Sends the call over the server's current connection and waits for its answer.
    async fn forward(&self, input: Value, ctx: &CallContext) -> ToolResult {
        let peer = self.link.state().peer.clone().ok_or_else(|| self.unavailable())?;
        let mut params = CallToolRequestParams::new(self.upstream_name.clone());
        if let Value::Object(arguments) = input {
            params = params.with_arguments(arguments);
        }
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        let handle = peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(|_| self.unavailable())?;
        self.link
            .routes()
            .insert(handle.progress_token.clone(), ctx.progress.clone());
        self.link.calls().insert(handle.id.clone(), ctx.client_channel.clone());
        self.link.call_recorded.notify_waiters();
        let mut guard = CallGuard {
            link: self.link.clone(),
            peer,
            token: handle.progress_token.clone(),
            call: handle.id.clone(),
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
                // Progress the server sent before its result reaches the caller first.
                self.link.in_transit.settled(&guard.token).await;
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
}

/// A server's resources and prompts, offered through the registry under its name for as long as
/// the server is configured; requests go over its current connection.
pub(crate) struct UpstreamResources {
    link: Weak<Link>,
}

/// Puts `link`'s resources and prompts in the registry (replacing a previous server of that
/// name). What is offered follows the capabilities of the live connection, so nothing needs
/// re-registering on reconnects; once the server is removed the provider reports itself gone.
pub(crate) fn register_resources(registry: &Registry, link: &Arc<Link>) {
    registry.set_resource_provider(
        link.name(),
        Arc::new(UpstreamResources {
            link: Arc::downgrade(link),
        }),
    );
}

/// How long a request waits for a server that is still completing its first connection (a
/// server just added is handed to its supervisor, which publishes the connection a moment later).
const FIRST_CONNECTION_WAIT: Duration = Duration::from_secs(5);

/// What a request needs from the current connection.
struct Current {
    name: String,
    peer: Peer<RoleClient>,
    capabilities: rmcp::model::ServerCapabilities,
    timeout: Duration,
}

impl UpstreamResources {
    /// The current connection, waiting briefly for a first one; None if the server is down,
    /// disabled or removed.
    async fn current(&self) -> Option<Current> {
        let started = tokio::time::Instant::now();
        loop {
            let link = self.link.upgrade().filter(|link| !link.stop.is_cancelled())?;
            let (peer, connecting) = {
                let state = link.state();
                (state.peer.clone(), state.status == Status::Connecting)
            };
            if let Some(peer) = peer {
                let capabilities = peer.peer_info()?.capabilities.clone();
                return Some(Current {
                    name: link.name().to_owned(),
                    peer,
                    capabilities,
                    timeout: link.spec.timeout(),
                });
            }
            if !connecting || started.elapsed() >= FIRST_CONNECTION_WAIT {
                return None;
            }
            drop(link);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn unavailable(&self) -> ResourceError {
        let name = self.link.upgrade().map(|l| l.name().to_owned()).unwrap_or_default();
        ResourceError::Failed(format!(
            "MCP server `{name}` is unavailable, restarting; try again shortly"
        ))
    }

    /// Runs one request within the server's timeout.
    async fn request<T, Fut>(current: &Current, what: &str, send: Fut) -> Result<T, ResourceError>
    where
        Fut: std::future::Future<Output = Result<T, ServiceError>>,
    {
        let name = &current.name;
        match tokio::time::timeout(current.timeout, send).await {
            Err(_) => Err(ResourceError::Failed(format!(
                "MCP server `{name}` did not answer {what} within {}s",
                current.timeout.as_secs()
            ))),
            Ok(Ok(result)) => Ok(result),
            Ok(Err(ServiceError::McpError(error))) => Err(ResourceError::Failed(format!(
                "MCP server `{name}` refused {what}: {}",
                error.message
            ))),
            Ok(Err(error)) => Err(ResourceError::Failed(format!(
                "MCP server `{name}` could not answer {what}: {error}"
            ))),
        }
    }
}

impl ResourceProvider for UpstreamResources {
    fn live(&self) -> bool {
        self.link.upgrade().is_some_and(|link| !link.stop.is_cancelled())
    }

    fn list_resources(&self) -> BoxFuture<'_, Result<Vec<Resource>, ResourceError>> {
        async move {
            match self.current().await {
                Some(c) if c.capabilities.resources.is_some() => {
                    Self::request(&c, "resources/list", c.peer.list_all_resources()).await
                }
                _ => Ok(Vec::new()),
            }
        }
        .boxed()
    }

    fn list_resource_templates(&self) -> BoxFuture<'_, Result<Vec<ResourceTemplate>, ResourceError>> {
        async move {
            match self.current().await {
                Some(c) if c.capabilities.resources.is_some() => {
                    Self::request(&c, "resources/templates/list", c.peer.list_all_resource_templates()).await
                }
                _ => Ok(Vec::new()),
            }
        }
        .boxed()
    }

    fn read_resource(&self, uri: String) -> BoxFuture<'_, Result<ReadResourceResult, ResourceError>> {
        async move {
            let c = self.current().await.ok_or_else(|| self.unavailable())?;
            if c.capabilities.resources.is_none() {
                return Err(ResourceError::NotFound(format!(
                    "MCP server `{}` offers no resources",
                    c.name
                )));
            }
            let params = ReadResourceRequestParams::new(uri);
            match Self::request(&c, "resources/read", c.peer.read_resource_once(params)).await? {
                ReadResourceResponse::Complete(mut result) => {
                    result.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(result)
                }
                _ => Err(ResourceError::Failed(
                    "the MCP server asked for client input to read this resource, which agentos does not relay yet"
                        .into(),
                )),
            }
        }
        .boxed()
    }

    fn list_prompts(&self) -> BoxFuture<'_, Result<Vec<Prompt>, ResourceError>> {
        async move {
            match self.current().await {
                Some(c) if c.capabilities.prompts.is_some() => {
                    Self::request(&c, "prompts/list", c.peer.list_all_prompts()).await
                }
                _ => Ok(Vec::new()),
            }
        }
        .boxed()
    }

    #[allow(deprecated)] // resources/subscribe: legacy-only in rmcp, which is what upstreams speak
    fn subscribe(&self, uri: String) -> BoxFuture<'_, Result<(), ResourceError>> {
        async move {
            let c = self.current().await.ok_or_else(|| self.unavailable())?;
            let offered = c
                .capabilities
                .resources
                .as_ref()
                .and_then(|r| r.subscribe)
                .unwrap_or(false);
            if !offered {
                return Err(ResourceError::NotFound(format!(
                    "MCP server `{}` offers no resource subscriptions",
                    c.name
                )));
            }
            Self::request(
                &c,
                "resources/subscribe",
                c.peer.subscribe(SubscribeRequestParams::new(uri)),
            )
            .await
        }
        .boxed()
    }

    #[allow(deprecated)]
    fn unsubscribe(&self, uri: String) -> BoxFuture<'_, Result<(), ResourceError>> {
        async move {
            let Some(c) = self.current().await else { return Ok(()) };
            Self::request(
                &c,
                "resources/unsubscribe",
                c.peer.unsubscribe(UnsubscribeRequestParams::new(uri)),
            )
            .await
        }
        .boxed()
    }

    fn transparent(&self) -> bool {
        self.link.upgrade().is_some_and(|link| link.spec.transparent)
    }

    fn news(&self) -> Option<tokio::sync::broadcast::Receiver<crate::registry::ProviderNews>> {
        self.link.upgrade().map(|link| link.news.subscribe())
    }

    fn complete(&self, request: CompleteRequestParams) -> BoxFuture<'_, Result<CompleteResult, ResourceError>> {
        async move {
            let c = self.current().await.ok_or_else(|| self.unavailable())?;
            if c.capabilities.completions.is_none() {
                // Nothing to suggest is the answer of a server without completion.
                return Ok(CompleteResult::default());
            }
            let mut result = Self::request(&c, "completion/complete", c.peer.complete(request)).await?;
            result.result_type.get_or_insert(ResultType::COMPLETE);
            Ok(result)
        }
        .boxed()
    }

    fn get_prompt(
        &self,
        name: String,
        arguments: Option<JsonObject>,
    ) -> BoxFuture<'_, Result<GetPromptResult, ResourceError>> {
        async move {
            let c = self.current().await.ok_or_else(|| self.unavailable())?;
            if c.capabilities.prompts.is_none() {
                return Err(ResourceError::NotFound(format!(
                    "MCP server `{}` offers no prompts",
                    c.name
                )));
            }
            let mut params = GetPromptRequestParams::new(name);
            params.arguments = arguments;
            match Self::request(&c, "prompts/get", c.peer.get_prompt_once(params)).await? {
                GetPromptResponse::Complete(mut result) => {
                    result.result_type.get_or_insert(ResultType::COMPLETE);
                    Ok(result)
                }
                _ => Err(ResourceError::Failed(
                    "the MCP server asked for client input to get this prompt, which agentos does not relay yet".into(),
                )),
            }
        }
        .boxed()
    }
}

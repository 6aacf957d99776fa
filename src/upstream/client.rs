//! Our side of an upstream session (its rmcp client handler): routes the server's progress to
//! callers, asks for a re-list when its tools change, passes its news (resources and resource or
//! prompt lists that changed) on, and takes the requests and log messages it sends while serving
//! a call to that call's client.
// Sampling, roots and logging are deprecated by the 2026-07-28 revision (SEP-2577), but the
// revisions upstream servers speak define them.
#![allow(deprecated)]

use std::sync::{Arc, Weak};
use std::time::Duration;

use rmcp::model::{
    ClientCapabilities, ClientConfig, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, ErrorCode, ErrorData, Implementation, ListRootsResult, LoggingMessageNotificationParam,
    ProgressNotificationParam, ResourceUpdatedNotificationParam,
};
use rmcp::service::{InboundStreamOrigin, NotificationContext, RequestContext};
use rmcp::{ClientHandler, RoleClient};

use super::supervisor::Link;

/// How long a server's request waits for agentos to record the call it belongs to.
const CALL_RECORD_WAIT: Duration = Duration::from_secs(1);
/// How long a progress notification waits for the route of its call (one for a call that has
/// already ended never comes).
const PROGRESS_ROUTE_WAIT: Duration = Duration::from_millis(100);
use crate::registry::{CatalogList, ClientChannel, ProviderNews};

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

impl UpstreamClient {
    fn announce(&self, news: ProviderNews) {
        if let Some(link) = self.link.upgrade() {
            // Nobody listening is not an error.
            let _ = link.news.send(news);
        }
    }

    /// The client of the call a server's request or message belongs to: the call whose HTTP
    /// response stream it came on (streamable HTTP), else the one call in flight (stdio cannot
    /// say which of several it belongs to). A server may ask before agentos has recorded the
    /// call it just sent (its id is known only once it is on its way): that waits, briefly.
    async fn caller_of(&self, extensions: &rmcp::model::Extensions) -> Result<Arc<dyn ClientChannel>, ErrorData> {
        let link = self
            .link
            .upgrade()
            .ok_or_else(|| ErrorData::internal_error("the server was removed from agentos", None))?;
        let origin = match extensions.get::<InboundStreamOrigin>() {
            Some(InboundStreamOrigin::OutboundRequest(id)) => Some(id.clone()),
            _ => None,
        };
        let deadline = tokio::time::Instant::now() + CALL_RECORD_WAIT;
        loop {
            let recorded = link.call_recorded.notified();
            let (found, in_flight) = {
                let calls = link.calls();
                let found = match &origin {
                    Some(id) => calls.get(id).cloned(),
                    None if calls.len() == 1 => calls.values().next().cloned(),
                    None => None,
                };
                (found, calls.len())
            };
            match found {
                Some(Some(channel)) => return Ok(channel),
                Some(None) => {
                    return Err(ErrorData::new(
                        ErrorCode::METHOD_NOT_FOUND,
                        "the caller of this tool reached agentos without an MCP session (plain HTTP or \
                         REST), so nobody can answer this request",
                        None,
                    ));
                }
                None if in_flight > 1 && origin.is_none() => {
                    return Err(ErrorData::new(
                        ErrorCode::INVALID_REQUEST,
                        format!(
                            "agentos cannot tell which call this request belongs to ({in_flight} calls in \
                             flight on this server over stdio)"
                        ),
                        None,
                    ));
                }
                None => {
                    if tokio::time::timeout_at(deadline, recorded).await.is_err() {
                        return Err(ErrorData::new(
                            ErrorCode::INVALID_REQUEST,
                            "this request belongs to no call of this server that agentos knows of",
                            None,
                        ));
                    }
                }
            }
        }
    }
}

impl ClientHandler for UpstreamClient {
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        capabilities.sampling = Some(Default::default());
        capabilities.roots = Some(Default::default());
        capabilities.elicitation = Some(Default::default());
        ClientConfig::new(capabilities, Implementation::new("agentos", env!("CARGO_PKG_VERSION")))
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let caller = self.caller_of(&context.extensions).await?;
        caller.sample(params).await
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let caller = self.caller_of(&context.extensions).await?;
        caller.elicit(params).await
    }

    async fn list_roots(&self, context: RequestContext<RoleClient>) -> Result<ListRootsResult, ErrorData> {
        let caller = self.caller_of(&context.extensions).await?;
        caller.roots().await
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        context: NotificationContext<RoleClient>,
    ) {
        // A message outside any call (or of one of several stdio calls) has nobody to go to.
        if let Ok(caller) = self.caller_of(&context.extensions).await {
            caller.log(params).await;
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        if let Some(link) = self.link.upgrade() {
            link.relist.notify_one();
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.announce(ProviderNews::ResourceUpdated(params.uri));
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.announce(ProviderNews::ListChanged(CatalogList::Resources));
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.announce(ProviderNews::ListChanged(CatalogList::Prompts));
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        let Some(link) = self.link.upgrade() else { return };
        // The route is recorded right after the request is queued (with the call, which is
        // announced); an event racing ahead of it waits for that rather than being lost.
        let deadline = tokio::time::Instant::now() + PROGRESS_ROUTE_WAIT;
        let route = loop {
            let recorded = link.call_recorded.notified();
            if let Some(route) = link.routes().get(&params.progress_token).cloned() {
                break Some(route);
            }
            if tokio::time::timeout_at(deadline, recorded).await.is_err() {
                break None;
            }
        };
        let token = params.progress_token.clone();
        if let Some(Some(sink)) = route {
            sink.progress(params.progress, params.total, params.message).await;
        }
        link.in_transit.delivered(&token);
    }
}

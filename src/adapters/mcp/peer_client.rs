//! The MCP session's client as a call's [`ClientChannel`]: what a proxied server asks while
//! serving one of this session's calls goes to this session's client, if it declared the
//! capability; the server gets the protocol's error otherwise.
// Roots and logging are deprecated by the 2026-07-28 revision (SEP-2577), but the revisions
// sessions speak here define them.
#![allow(deprecated)]

use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::{
    ClientResult, CreateMessageRequestParams, CreateMessageResult, ElicitRequest, ElicitRequestParams, ElicitResult,
    ErrorCode, ErrorData, ListRootsResult, LoggingMessageNotificationParam, ServerRequest,
};
use rmcp::service::ServiceError;
use rmcp::{Peer, RoleServer};

use super::session_log::SessionLog;
use crate::registry::ClientChannel;

pub(super) struct PeerClient {
    pub peer: Peer<RoleServer>,
    pub log: SessionLog,
}

/// The error a server gets for a request the client did not declare it can answer.
fn not_offered(what: &str) -> ErrorData {
    ErrorData::new(
        ErrorCode::METHOD_NOT_FOUND,
        format!("the client of this call does not support {what}"),
        None,
    )
}

fn from_service(error: ServiceError) -> ErrorData {
    match error {
        ServiceError::McpError(error) => error,
        other => ErrorData::internal_error(format!("the client of this call could not answer: {other}"), None),
    }
}

impl PeerClient {
    fn capabilities(&self) -> Option<rmcp::model::ClientCapabilities> {
        self.peer.peer_info().map(|info| info.capabilities.clone())
    }
}

impl ClientChannel for PeerClient {
    fn sample(&self, params: CreateMessageRequestParams) -> BoxFuture<'_, Result<CreateMessageResult, ErrorData>> {
        async move {
            if self.capabilities().and_then(|c| c.sampling).is_none() {
                return Err(not_offered("sampling"));
            }
            self.peer.create_message(params).await.map_err(from_service)
        }
        .boxed()
    }

    fn elicit(&self, params: ElicitRequestParams) -> BoxFuture<'_, Result<ElicitResult, ErrorData>> {
        async move {
            if self.capabilities().and_then(|c| c.elicitation).is_none() {
                return Err(not_offered("elicitation"));
            }
            let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
            match self.peer.send_request(request).await.map_err(from_service)? {
                ClientResult::ElicitResult(result) => Ok(result),
                _ => Err(ErrorData::internal_error(
                    "the client answered elicitation with something else",
                    None,
                )),
            }
        }
        .boxed()
    }

    fn roots(&self) -> BoxFuture<'_, Result<ListRootsResult, ErrorData>> {
        async move {
            if self.capabilities().and_then(|c| c.roots).is_none() {
                return Err(not_offered("roots"));
            }
            self.peer.list_roots().await.map_err(from_service)
        }
        .boxed()
    }

    fn log(&self, params: LoggingMessageNotificationParam) -> BoxFuture<'_, ()> {
        async move {
            if !self.log.passes(params.level) {
                return;
            }
            if let Err(error) = self.peer.notify_logging_message(params).await {
                tracing::debug!(%error, "could not pass a server's log message on to the session");
            }
        }
        .boxed()
    }
}

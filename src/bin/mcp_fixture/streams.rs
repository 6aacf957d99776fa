//! Session manager for the HTTP transport: rmcp's in-memory `LocalSessionManager`, plus what the
//! `test_reconnection` tool needs to close its own POST SSE stream mid-call (SEP-1699).
//!
//! rmcp can close a request's SSE stream (`LocalSessionHandle::close_sse_stream`), but only by
//! its internal HTTP request id, which a tool handler never sees. So this manager opens the
//! request streams itself, remembers which HTTP request carries each `test_reconnection` call,
//! and reports when the client resumes a stream with `Last-Event-ID`.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use futures::Stream;
use rmcp::{
    model::{ClientJsonRpcMessage, ClientRequest, RequestId},
    transport::streamable_http_server::session::{
        ServerSseMessage, SessionId, SessionManager,
        local::{LocalSessionHandle, LocalSessionManager, LocalSessionManagerError, SessionError},
    },
};
use tokio::sync::watch;

/// The tool whose POST stream this manager can close.
pub const RECONNECTION_TOOL: &str = "test_reconnection";

/// The `retry` hint sent before the server closes a stream: how long clients wait before
/// reconnecting with `Last-Event-ID`.
const RECONNECT_RETRY: Duration = Duration::from_millis(500);

type CallKey = (SessionId, RequestId);

pub struct FixtureSessions {
    inner: LocalSessionManager,
    /// HTTP request id (rmcp's, per session) of each `test_reconnection` call in flight.
    calls: Mutex<HashMap<CallKey, u64>>,
    /// The last request stream a client resumed: (session, HTTP request id).
    resumed: watch::Sender<Option<(SessionId, u64)>>,
}

impl Default for FixtureSessions {
    fn default() -> Self {
        Self {
            inner: LocalSessionManager::default(),
            calls: Mutex::default(),
            resumed: watch::Sender::new(None),
        }
    }
}

/// Why a stream could not be closed.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    #[error("no such session")]
    NoSession,
    #[error("this call did not arrive on a POST stream of this session")]
    NoStream,
    #[error("rmcp could not close the stream: {0}")]
    Session(#[from] SessionError),
}

impl FixtureSessions {
    /// Closes the SSE stream that carries `request` (after a `retry` hint) and waits up to
    /// `timeout` for the client to resume it. Returns whether it did.
    pub async fn close_and_await_resume(
        &self,
        session: &SessionId,
        request: &RequestId,
        timeout: Duration,
    ) -> Result<bool, CloseError> {
        let http_request_id = self
            .lock_calls()
            .remove(&(session.clone(), request.clone()))
            .ok_or(CloseError::NoStream)?;
        let handle = self.handle(session).await.map_err(|_| CloseError::NoSession)?;
        // Subscribe before closing, so a resume that comes at once is not missed.
        let mut resumed = self.resumed.subscribe();
        handle.close_sse_stream(http_request_id, Some(RECONNECT_RETRY)).await?;
        let expected = Some((session.clone(), http_request_id));
        let wait = resumed.wait_for(|last| *last == expected);
        Ok(matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(_))))
    }

    fn lock_calls(&self) -> std::sync::MutexGuard<'_, HashMap<CallKey, u64>> {
        // The map stays consistent even if a holder panicked: every access is one operation.
        self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn handle(&self, id: &SessionId) -> Result<LocalSessionHandle, LocalSessionManagerError> {
        self.inner
            .sessions
            .read()
            .await
            .get(id)
            .cloned()
            .ok_or_else(|| LocalSessionManagerError::SessionNotFound(id.clone()))
    }
}

/// The JSON-RPC id of `message` if it calls the reconnection tool.
fn reconnection_call_id(message: &ClientJsonRpcMessage) -> Option<&RequestId> {
    match message {
        ClientJsonRpcMessage::Request(request) => match &request.request {
            ClientRequest::CallToolRequest(call) if call.params.name == RECONNECTION_TOOL => Some(&request.id),
            _ => None,
        },
        _ => None,
    }
}

/// The HTTP request id in one of rmcp's request-stream event ids (`<index>/<http request id>`).
fn http_request_id_of(event_id: &str) -> Option<u64> {
    event_id.split_once('/')?.1.parse().ok()
}

impl SessionManager for FixtureSessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<rmcp::model::ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.lock_calls().retain(|(session, _), _| session != id);
        self.inner.close_session(id).await
    }

    /// What `LocalSessionManager::create_stream` does, keeping the HTTP request id.
    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let handle = self.handle(id).await?;
        let receiver = handle.establish_request_wise_channel().await?;
        if let (Some(request), Some(http_request_id)) = (reconnection_call_id(&message), receiver.http_request_id) {
            // Recorded before the call reaches the handler, which looks it up.
            self.lock_calls().insert((id.clone(), request.clone()), http_request_id);
        }
        handle.push_message(message, receiver.http_request_id).await?;
        let mut inner = receiver.inner;
        Ok(futures::stream::poll_fn(move |cx| inner.poll_recv(cx)))
    }

    async fn accept_message(&self, id: &SessionId, message: ClientJsonRpcMessage) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        self.inner.create_standalone_stream(id).await
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let http_request_id = http_request_id_of(&last_event_id);
        let stream = self.inner.resume(id, last_event_id).await?;
        // Only now does the request stream have a live receiver for the tool's result.
        if let Some(http_request_id) = http_request_id {
            self.resumed.send_replace(Some((id.clone(), http_request_id)));
        }
        Ok(stream)
    }
}

//! The call context: who is calling, which request this is, and how long and whether it may run.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::policy::ToolPolicy;

/// The identity a call runs as. Every stored item belongs to `agent_id`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub agent_id: Arc<str>,
    pub tools: ToolPolicy,
    /// Hosts the network primitives may reach for this caller; empty means any public host.
    pub allowed_domains: Arc<[String]>,
}

impl Caller {
    /// The agent id of the machine's owner: `agentos mcp` and an unauthenticated local
    /// `agentos serve` run as this agent.
    pub const OWNER_ID: &'static str = "owner";

    pub fn is_owner(&self) -> bool {
        &*self.agent_id == Self::OWNER_ID
    }

    /// The local owner with the given tool policy (normally `*`).
    pub fn owner(tools: ToolPolicy) -> Self {
        Self {
            agent_id: Arc::from(Self::OWNER_ID),
            tools,
            allowed_domains: Arc::from(Vec::new()),
        }
    }
}

/// Receives progress of a long call; the MCP adapters forward it as notifications/progress.
pub trait ProgressSink: Send + Sync {
    fn progress(&self, progress: f64, total: Option<f64>, message: Option<String>) -> BoxFuture<'_, ()>;
}

/// Everything a tool may know about the call it is serving.
#[derive(Clone)]
pub struct CallContext {
    pub caller: Arc<Caller>,
    /// Ties log lines, traces and audit records of one call together.
    pub request_id: Arc<str>,
    pub deadline: Instant,
    pub cancel: CancellationToken,
    pub progress: Option<Arc<dyn ProgressSink>>,
}

impl CallContext {
    pub fn new(caller: Arc<Caller>, request_id: impl Into<Arc<str>>, timeout: Duration) -> Self {
        Self {
            caller,
            request_id: request_id.into(),
            deadline: Instant::now() + timeout,
            cancel: CancellationToken::new(),
            progress: None,
        }
    }

    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = cancel;
        self
    }

    pub fn with_progress(mut self, sink: Arc<dyn ProgressSink>) -> Self {
        self.progress = Some(sink);
        self
    }

    /// Reports progress if the client asked for it; a no-op otherwise.
    pub async fn report_progress(&self, progress: f64, total: Option<f64>, message: Option<String>) {
        if let Some(sink) = &self.progress {
            sink.progress(progress, total, message).await;
        }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("caller", &self.caller.agent_id)
            .field("request_id", &self.request_id)
            .field("remaining", &self.remaining())
            .finish()
    }
}

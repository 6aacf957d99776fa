//! Whether an agent may still act: what runs on an agent's behalf (background workflows, held
//! approvals, live MCP sessions) hears here when an operator stops it, so stopping an agent stops
//! everything it started, whichever part started it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Why an agent was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopKind {
    /// Disabled (or deleted): nothing may run for it any more.
    Disabled,
    /// Every credential it held was withdrawn: its live sessions end, but work it scheduled
    /// still runs as it (it is still an active agent).
    CredentialsRevoked,
}

/// One stop, as subscribers receive it.
#[derive(Debug, Clone)]
pub struct AgentStop {
    pub agent_id: Arc<str>,
    pub kind: StopKind,
}

/// Cancellation per agent, and the stops as a stream.
pub(super) struct Standing {
    /// A parent token per agent with work in progress; a disable cancels it (and every child).
    running: Mutex<HashMap<Arc<str>, CancellationToken>>,
    stops: broadcast::Sender<AgentStop>,
}

impl Default for Standing {
    fn default() -> Self {
        // Stops are rare; a subscriber that falls this far behind is told it lagged.
        let (stops, _) = broadcast::channel(256);
        Self {
            running: Mutex::new(HashMap::new()),
            stops,
        }
    }
}

impl Standing {
    /// A token cancelled when `agent_id` is disabled, for work that runs on its behalf.
    pub fn work_token(&self, agent_id: &str) -> CancellationToken {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.entry(Arc::from(agent_id)).or_default().child_token()
    }

    pub fn stop(&self, agent_id: &str, kind: StopKind) {
        if kind == StopKind::Disabled {
            let parent = self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(agent_id);
            if let Some(parent) = parent {
                parent.cancel();
            }
        }
        // No subscriber is not an error: nothing needed telling.
        let _ = self.stops.send(AgentStop {
            agent_id: Arc::from(agent_id),
            kind,
        });
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AgentStop> {
        self.stops.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabling_cancels_that_agents_work_only_and_later_work_starts_fresh() {
        let standing = Standing::default();
        let (mine, theirs) = (standing.work_token("a"), standing.work_token("b"));
        let mut stops = standing.subscribe();
        standing.stop("a", StopKind::CredentialsRevoked);
        assert!(
            !mine.is_cancelled(),
            "revoking credentials leaves scheduled work running"
        );
        standing.stop("a", StopKind::Disabled);
        assert!(mine.is_cancelled());
        assert!(!theirs.is_cancelled());
        assert!(
            !standing.work_token("a").is_cancelled(),
            "re-enabled work is not born cancelled"
        );
        assert_eq!(stops.try_recv().unwrap().kind, StopKind::CredentialsRevoked);
        let stop = stops.try_recv().unwrap();
        assert_eq!((&*stop.agent_id, stop.kind), ("a", StopKind::Disabled));
    }
}

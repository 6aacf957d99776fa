//! Which agent each live MCP session belongs to, for the session's whole life: a session is
//! bound when `initialize` creates it and unbound only when it ends (DELETE, idle past rmcp's
//! keep-alive, its agent stopped, or evicted as the oldest when the table is full; an evicted
//! session is closed, never left running without its owner).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::adapters::mcp::McpHandler;
use crate::registry::Registry;

/// How often sessions idle past the keep-alive are closed.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

struct Bound {
    agent: Arc<str>,
    /// The session's MCP handler (detached), for the JSON-RPC fast path.
    handler: Option<McpHandler>,
    /// Milliseconds since `Sessions::epoch` of the last request in this session.
    last_seen_ms: AtomicU64,
    /// When it was last used, in `Sessions::uses` order (milliseconds tie, this never does).
    last_use: AtomicU64,
}

pub(super) struct Sessions {
    manager: Arc<LocalSessionManager>,
    bound: DashMap<Arc<str>, Bound>,
    epoch: Instant,
    uses: AtomicU64,
    max: usize,
    idle: Duration,
}

impl Sessions {
    pub fn new(manager: Arc<LocalSessionManager>, max: usize) -> Arc<Self> {
        let idle = manager.session_config.keep_alive.unwrap_or(Duration::from_secs(300));
        Arc::new(Self {
            manager,
            bound: DashMap::new(),
            epoch: Instant::now(),
            uses: AtomicU64::new(0),
            max: max.max(1),
            idle,
        })
    }

    fn next_use(&self) -> u64 {
        self.uses.fetch_add(1, Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The agent that owns session `id`, noting the request; `None` for a session agentos does
    /// not know (never bound, or ended).
    pub fn owner(&self, id: &str) -> Option<Arc<str>> {
        let bound = self.bound.get(id)?;
        bound.last_seen_ms.store(self.now_ms(), Ordering::Relaxed);
        bound.last_use.store(self.next_use(), Ordering::Relaxed);
        Some(bound.agent.clone())
    }

    /// The agent that owns session `id` and the session's handler, noting the request, as
    /// [`Self::owner`] does.
    pub fn session(&self, id: &str) -> Option<(Arc<str>, Option<McpHandler>)> {
        let bound = self.bound.get(id)?;
        bound.last_seen_ms.store(self.now_ms(), Ordering::Relaxed);
        bound.last_use.store(self.next_use(), Ordering::Relaxed);
        Some((bound.agent.clone(), bound.handler.clone()))
    }

    /// Binds a session rmcp just created to `agent`, closing the least recently used session
    /// first when the table is full.
    pub fn bind(self: &Arc<Self>, id: &str, agent: Arc<str>, handler: Option<McpHandler>) {
        if self.bound.len() >= self.max
            && let Some(oldest) = self.least_recently_used()
        {
            tracing::warn!(max = self.max, "too many MCP sessions; closing the least recently used");
            self.close(oldest);
        }
        self.bound.insert(
            Arc::from(id),
            Bound {
                agent,
                handler,
                last_seen_ms: AtomicU64::new(self.now_ms()),
                last_use: AtomicU64::new(self.next_use()),
            },
        );
    }

    /// Forgets a session its client ended.
    pub fn unbind(&self, id: &str) {
        self.bound.remove(id);
    }

    pub fn len(&self) -> usize {
        self.bound.len()
    }

    fn least_recently_used(&self) -> Option<Arc<str>> {
        self.bound
            .iter()
            .min_by_key(|entry| entry.last_use.load(Ordering::Relaxed))
            .map(|entry| entry.key().clone())
    }

    /// Unbinds `id` and ends it in rmcp (its streams close; the next request gets 404).
    fn close(self: &Arc<Self>, id: Arc<str>) {
        self.bound.remove(&id);
        let manager = self.manager.clone();
        tokio::spawn(async move {
            let session = Arc::<str>::from(&*id);
            if let Err(error) = manager.close_session(&session).await {
                tracing::debug!(%error, "closing an MCP session failed");
            }
        });
    }

    /// Closes every session of `agent`; returns how many.
    pub fn close_agent(self: &Arc<Self>, agent: &str) -> usize {
        let ids: Vec<Arc<str>> = self
            .bound
            .iter()
            .filter(|entry| &*entry.agent == agent)
            .map(|entry| entry.key().clone())
            .collect();
        let count = ids.len();
        for id in ids {
            self.close(id);
        }
        count
    }

    /// Closes sessions idle past the keep-alive: rmcp stops their workers but keeps them in
    /// its table, so without this they would stay there (and here) for good.
    fn sweep(self: &Arc<Self>) -> usize {
        let cutoff = self
            .now_ms()
            .saturating_sub(u64::try_from(self.idle.as_millis()).unwrap_or(u64::MAX));
        let idle: Vec<Arc<str>> = self
            .bound
            .iter()
            .filter(|entry| entry.last_seen_ms.load(Ordering::Relaxed) <= cutoff)
            .map(|entry| entry.key().clone())
            .collect();
        let count = idle.len();
        for id in idle {
            self.close(id);
        }
        count
    }

    /// Sweeps idle sessions and closes those of stopped agents until `shutdown`.
    pub fn maintain(self: &Arc<Self>, registry: &Registry, shutdown: CancellationToken) {
        let sessions = self.clone();
        let mut stops = registry.agent_stops();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = every.tick() => {
                        let closed = sessions.sweep();
                        if closed > 0 {
                            tracing::debug!(closed, "closed idle MCP sessions");
                        }
                    }
                    stop = stops.recv() => match stop {
                        Ok(stop) => {
                            let closed = sessions.close_agent(&stop.agent_id);
                            if closed > 0 {
                                tracing::info!(agent = %stop.agent_id, closed, "closed a stopped agent's MCP sessions");
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "missed agent stops; their sessions end with their next request");
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(max: usize, keep_alive: Duration) -> Arc<Sessions> {
        let mut manager = LocalSessionManager::default();
        manager.session_config.keep_alive = Some(keep_alive);
        Sessions::new(Arc::new(manager), max)
    }

    #[tokio::test]
    async fn a_full_table_closes_the_least_recently_used_session_never_an_owner_check() {
        let sessions = table(2, Duration::from_secs(300));
        sessions.bind("s1", Arc::from("alice"), None);
        sessions.bind("s2", Arc::from("bob"), None);
        assert_eq!(
            sessions.owner("s1").as_deref(),
            Some("alice"),
            "s1 is now the more recent"
        );
        sessions.bind("s3", Arc::from("carol"), None);
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions.owner("s2"), None, "the oldest session is gone, not unchecked");
        assert_eq!(sessions.owner("s1").as_deref(), Some("alice"));
        assert_eq!(sessions.owner("s3").as_deref(), Some("carol"));
    }

    #[tokio::test]
    async fn a_stopped_agents_sessions_and_idle_sessions_are_closed() {
        let sessions = table(10, Duration::from_secs(300));
        sessions.bind("a1", Arc::from("alice"), None);
        sessions.bind("a2", Arc::from("alice"), None);
        sessions.bind("b1", Arc::from("bob"), None);
        assert_eq!(sessions.close_agent("alice"), 2);
        assert_eq!(sessions.owner("a1"), None);
        assert_eq!(sessions.owner("b1").as_deref(), Some("bob"));

        let idle = table(10, Duration::ZERO);
        idle.bind("x", Arc::from("alice"), None);
        assert_eq!(idle.sweep(), 1);
        assert_eq!(idle.len(), 0);
    }
}

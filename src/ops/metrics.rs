//! The metrics collector: HTTP requests (recorded by the HTTP adapter's outermost layer), tool
//! calls (told by the registry pipeline, the one place every call passes), rate-limit refusals,
//! and, read at scrape time, upstream health, sessions, pending approvals and the tool count.
//!
//! Recording is lock-free apart from `DashMap` shard reads: series are created once per label
//! set and keyed by the registry's `Arc<str>` names or `&'static str` labels, so a call or a
//! request allocates nothing once its series exists.

mod histogram;
mod render;
mod summary;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::registry::{AuditOutcome, CallObservation, CallObserver, LimitClass, Origin, Registry};
use crate::store::{Store, now_ms};
use crate::upstream::{CrewMember, Upstreams};

pub use histogram::{BUCKETS, Histogram, HistogramSnapshot};
pub use render::{CONTENT_TYPE, Exposition};
pub use summary::tools;

/// The series maps' hasher: their keys are our own route templates and tool names, not attacker
/// input that could be chosen to collide, and SipHash showed in every request's profile.
type Fast = foldhash::fast::RandomState;

/// The `route` label of requests no route matched: never the raw path, which anyone can vary.
pub const UNMATCHED: &str = "unmatched";
/// The `tool` label of calls no tool answered (unknown, or denied: they must look the same).
pub const UNKNOWN_TOOL: &str = "unknown";

/// HTTP methods as labels; anything unusual is `OTHER` so the label set stays bounded.
const METHODS: [&str; 8] = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "OTHER"];
/// Origins as labels, in `Origin` order, then calls that reached no tool.
const ORIGINS: [&str; 4] = ["primitive", "skill", "mcp", "unknown"];
/// Rate-limit classes as labels (`LimitClass::as_str`).
const LIMIT_CLASSES: [&str; 3] = ["mcp", "api", "auth"];

fn method_index(method: &axum::http::Method) -> usize {
    METHODS[..METHODS.len() - 1]
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

fn origin_index(origin: Option<Origin>) -> usize {
    match origin {
        Some(Origin::Primitive) => 0,
        Some(Origin::Skill) => 1,
        Some(Origin::Mcp) => 2,
        None => 3,
    }
}

/// One route template's series: latency per method, answers per (method, status).
#[derive(Debug, Default)]
struct RouteSeries {
    durations: [Histogram; METHODS.len()],
    statuses: DashMap<(u8, u16), AtomicU64, Fast>,
}

/// One tool's calls per outcome (in `AuditOutcome::ALL` order) and their total latency.
#[derive(Debug)]
struct ToolSeries {
    origin: usize,
    outcomes: [AtomicU64; AuditOutcome::ALL.len()],
    micros: AtomicU64,
}

/// Where scrape-time values come from. Weak where the source owns the tools that hold us.
struct Sources {
    registry: Weak<Registry>,
    upstreams: Weak<Upstreams>,
    store: Arc<dyn Store>,
}

/// Records that record-keeping let go, counted where it let them go (the audit and trace
/// queues) and exposed in `/metrics`, so an operator sees when the trail is incomplete.
#[derive(Debug, Default)]
pub struct RecordLoss {
    /// Audit records not written: the queue to the writer was full or closed.
    pub audit_dropped: AtomicU64,
    /// Finished traces not written: the queue to the writer was full or closed.
    pub traces_dropped: AtomicU64,
    /// Successful traces not stored because `traces.max_ok_per_second` was reached.
    pub traces_sampled_out: AtomicU64,
}

/// A provider with series of its own (voice): rendered into `/metrics` after the collector's.
pub trait MetricsSource: Send + Sync {
    fn render(&self, out: &mut Exposition<'_>);
}

/// Counts the live MCP sessions (set by the HTTP adapter, which owns the session table).
pub type SessionGauge = Arc<dyn Fn() -> usize + Send + Sync>;

/// Everything agentos counts about itself. One per process, shared by every adapter.
pub struct Metrics {
    started: Instant,
    public: bool,
    routes: DashMap<Arc<str>, Arc<RouteSeries>, Fast>,
    requests: AtomicU64,
    server_errors: AtomicU64,
    client_errors: AtomicU64,
    minute: histogram::MinuteWindow,
    tools: DashMap<Arc<str>, Arc<ToolSeries>, Fast>,
    /// Calls that reached no tool, per outcome (always `unknown_tool`, kept general for safety).
    unknown: [AtomicU64; AuditOutcome::ALL.len()],
    call_durations: [Histogram; ORIGINS.len()],
    rate_limited: [AtomicU64; LIMIT_CLASSES.len()],
    /// MCP JSON-RPC requests answered by the HTTP fast path rather than rmcp's transport.
    mcp_fast_answers: AtomicU64,
    sources: OnceLock<Sources>,
    sessions: RwLock<Option<SessionGauge>>,
    loss: Arc<RecordLoss>,
    providers: RwLock<Vec<Arc<dyn MetricsSource>>>,
}

impl Metrics {
    /// `public`: whether `GET /metrics` answers without a token (`[metrics] public`).
    pub fn new(public: bool) -> Self {
        Self {
            started: Instant::now(),
            public,
            routes: DashMap::default(),
            requests: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
            client_errors: AtomicU64::new(0),
            minute: histogram::MinuteWindow::default(),
            tools: DashMap::default(),
            unknown: Default::default(),
            call_durations: Default::default(),
            rate_limited: Default::default(),
            mcp_fast_answers: AtomicU64::new(0),
            sources: OnceLock::new(),
            sessions: RwLock::new(None),
            loss: Arc::default(),
            providers: RwLock::new(Vec::new()),
        }
    }

    pub fn public(&self) -> bool {
        self.public
    }

    /// Where the audit and trace queues count what they let go (counted even when metrics are
    /// off: the counters cost one atomic add per loss).
    pub fn record_loss(&self) -> Arc<RecordLoss> {
        self.loss.clone()
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Where scrape-time gauges are read from; set once, when the instance is assembled.
    pub fn set_sources(&self, registry: &Arc<Registry>, upstreams: &Arc<Upstreams>, store: Arc<dyn Store>) {
        let _ = self.sources.set(Sources {
            registry: Arc::downgrade(registry),
            upstreams: Arc::downgrade(upstreams),
            store,
        });
    }

    /// Adds a provider's own series to the exposition.
    pub fn add_source(&self, source: Arc<dyn MetricsSource>) {
        self.providers.write().unwrap_or_else(|p| p.into_inner()).push(source);
    }

    /// How to count live MCP sessions; replaces the one set before (a rebuilt router).
    pub fn set_session_gauge(&self, gauge: SessionGauge) {
        *self.sessions.write().unwrap_or_else(|p| p.into_inner()) = Some(gauge);
    }

    /// One HTTP answer: `route` is the matched template or [`UNMATCHED`].
    pub fn record_http(&self, method: &axum::http::Method, route: &str, status: u16, elapsed: Duration) {
        let series = match self.routes.get(route) {
            Some(series) => series.clone(),
            None => self.routes.entry(Arc::from(route)).or_default().clone(),
        };
        let method = method_index(method);
        series.durations[method].observe(elapsed);
        // `u8` is enough for `METHODS`' indexes; the key stays two machine words.
        let key = (method as u8, status);
        match series.statuses.get(&key) {
            Some(count) => {
                count.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                series.statuses.entry(key).or_default().fetch_add(1, Ordering::Relaxed);
            }
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let server_error = status >= 500;
        if server_error {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        } else if status >= 400 {
            self.client_errors.fetch_add(1, Ordering::Relaxed);
        }
        self.minute.record(self.started.elapsed().as_secs(), server_error);
    }

    /// A request refused by a rate limit of `class` (`mcp`, `api` or `auth`).
    pub fn record_rate_limited(&self, class: &str) {
        if let Some(index) = LIMIT_CLASSES.iter().position(|c| *c == class) {
            self.rate_limited[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An MCP JSON-RPC request answered by the HTTP fast path.
    pub fn record_mcp_fast_answer(&self) {
        self.mcp_fast_answers.fetch_add(1, Ordering::Relaxed);
    }

    fn record_call(&self, call: &CallObservation<'_>) {
        let outcome = call.outcome as usize;
        let origin = origin_index(call.origin);
        self.call_durations[origin].observe(call.elapsed);
        let Some(tool) = call.tool else {
            self.unknown[outcome].fetch_add(1, Ordering::Relaxed);
            return;
        };
        let series = match self.tools.get(&**tool) {
            Some(series) => series.clone(),
            None => self
                .tools
                .entry(tool.clone())
                .or_insert_with(|| {
                    Arc::new(ToolSeries {
                        origin,
                        outcomes: Default::default(),
                        micros: AtomicU64::new(0),
                    })
                })
                .clone(),
        };
        series.outcomes[outcome].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(call.elapsed.as_micros()).unwrap_or(u64::MAX);
        series.micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Values read when someone looks: upstream health, pending approvals, sessions, tools.
    pub async fn gauges(&self) -> Gauges {
        let sessions = self.sessions.read().unwrap_or_else(|p| p.into_inner()).clone();
        let mut gauges = Gauges {
            uptime_seconds: self.uptime().as_secs_f64(),
            sessions_active: sessions.map(|count| count()),
            ..Gauges::default()
        };
        let Some(sources) = self.sources.get() else {
            return gauges;
        };
        gauges.tools_registered = sources.registry.upgrade().map(|r| r.len());
        gauges.upstreams = sources.upstreams.upgrade().map(|u| u.crew_status()).unwrap_or_default();
        gauges.approvals_pending = match sources.store.approval_pending_count(now_ms()).await {
            Ok(count) => Some(count),
            Err(error) => {
                tracing::warn!(%error, "could not count pending approvals for metrics");
                None
            }
        };
        gauges
    }
}

impl CallObserver for Metrics {
    fn observe(&self, call: &CallObservation<'_>) {
        self.record_call(call);
    }

    fn rate_limited(&self, class: LimitClass) {
        self.record_rate_limited(class.as_str());
    }
}

/// Scrape-time values; `None` where the source is unavailable (then the series is left out).
#[derive(Debug, Default)]
pub struct Gauges {
    pub uptime_seconds: f64,
    pub sessions_active: Option<usize>,
    pub tools_registered: Option<usize>,
    pub upstreams: Vec<CrewMember>,
    pub approvals_pending: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    fn observe(metrics: &Metrics, tool: Option<&Arc<str>>, outcome: AuditOutcome) {
        metrics.observe(&CallObservation {
            tool,
            origin: tool.map(|_| Origin::Primitive),
            outcome,
            elapsed: Duration::from_millis(2),
        });
    }

    #[test]
    fn calls_are_counted_per_tool_and_unknown_ones_together() {
        let metrics = Metrics::new(true);
        let time: Arc<str> = Arc::from("agentos.time_now");
        observe(&metrics, Some(&time), AuditOutcome::Ok);
        observe(&metrics, Some(&time), AuditOutcome::InvalidArguments);
        observe(&metrics, None, AuditOutcome::UnknownTool);
        observe(&metrics, None, AuditOutcome::UnknownTool);
        let series = metrics.tools.get("agentos.time_now").map(|s| s.clone());
        let series = series
            .as_deref()
            .map(|s| s.outcomes[AuditOutcome::Ok as usize].load(Ordering::Relaxed));
        assert_eq!(series, Some(1));
        assert_eq!(
            metrics.unknown[AuditOutcome::UnknownTool as usize].load(Ordering::Relaxed),
            2
        );
        assert_eq!(metrics.call_durations[0].snapshot().count(), 2);
        assert_eq!(metrics.call_durations[3].snapshot().count(), 2);
    }

    #[test]
    fn requests_are_counted_per_route_method_and_status() {
        let metrics = Metrics::new(true);
        metrics.record_http(&Method::GET, "/health", 200, Duration::from_millis(1));
        metrics.record_http(&Method::GET, "/health", 200, Duration::from_millis(1));
        metrics.record_http(
            &Method::from_bytes(b"BREW").unwrap_or(Method::GET),
            UNMATCHED,
            404,
            Duration::ZERO,
        );
        metrics.record_http(&Method::POST, "/mcp", 503, Duration::ZERO);
        assert_eq!(metrics.requests.load(Ordering::Relaxed), 4);
        assert_eq!(metrics.client_errors.load(Ordering::Relaxed), 1);
        assert_eq!(metrics.server_errors.load(Ordering::Relaxed), 1);
        let health = metrics.routes.get("/health").map(|s| s.clone());
        let count = health
            .as_ref()
            .and_then(|s| s.statuses.get(&(0, 200)).map(|c| c.load(Ordering::Relaxed)));
        assert_eq!(count, Some(2));
        let other = metrics
            .routes
            .get(UNMATCHED)
            .map(|s| s.durations[METHODS.len() - 1].snapshot().count());
        assert_eq!(other, Some(1), "unusual methods share the OTHER label");
    }

    #[test]
    fn refusals_are_counted_per_class() {
        let metrics = Metrics::new(true);
        metrics.record_rate_limited("mcp");
        metrics.record_rate_limited("auth");
        metrics.record_rate_limited("nonsense");
        let counts: Vec<u64> = metrics.rate_limited.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        assert_eq!(counts, vec![1, 0, 1]);
    }
}

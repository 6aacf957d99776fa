//! Readiness: is each service agentos depends on answering? The store gets a timed trivial read,
//! each upstream MCP server reports its supervisor's view. The answers are public (probes run
//! without credentials), so they carry a status, a time and a short error category, never an
//! endpoint, a command line or an error text that could hold one.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;

use crate::registry::{Empty, Hints, Tool, ToolBuilder, ToolFailure};
use crate::store::Store;
use crate::upstream::{CrewMember, Health, Upstreams};

/// A store read slower than this counts as a failure: a probe must answer even when SQLite is
/// stuck behind a lock.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The name of the store's entry.
pub const STORE: &str = "store";
/// Upstream MCP servers are reported as `mcp.<server>`.
pub const UPSTREAM_PREFIX: &str = "mcp.";

/// How one service is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    Healthy,
    /// Reconnecting: it may come back by itself.
    Degraded,
    /// Failing or stopped.
    Unhealthy,
    /// Turned off in the configuration; reported, but it does not make agentos unready.
    Disabled,
}

impl ServiceStatus {
    /// Whether this service makes agentos unready.
    pub fn degrades(self) -> bool {
        matches!(self, Self::Degraded | Self::Unhealthy)
    }
}

/// One service's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHealth {
    pub status: ServiceStatus,
    /// How long the check took, in milliseconds.
    pub response_time: u64,
    /// A short category when it is not healthy: `timeout`, `unavailable`, `restarting`, `down`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
}

/// Overall readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Healthy,
    Degraded,
}

/// The answer of `GET /health/ready`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Report {
    pub status: Overall,
    pub services: BTreeMap<String, ServiceHealth>,
    /// Unix time in milliseconds.
    pub timestamp: i64,
    /// The HTTP server's connections and the limits on them; for ops-admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<Connections>,
}

/// How close the HTTP server is to its connection limits (ops-admins only: it tells an attacker
/// how many connections would shut others out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Connections {
    /// The process's soft limit on open files (raised to the hard limit at start); absent when
    /// unlimited or unknown.
    pub open_file_limit: Option<u64>,
    /// Connections served at once (`http.max_connections`, lowered to fit the open-file limit).
    pub max_connections: usize,
    /// Connections open now.
    pub open_connections: usize,
}

impl Report {
    pub fn new(services: BTreeMap<String, ServiceHealth>) -> Self {
        let degraded = services.values().any(|s| s.status.degrades());
        Self {
            status: if degraded { Overall::Degraded } else { Overall::Healthy },
            services,
            timestamp: chrono::Utc::now().timestamp_millis(),
            connections: None,
        }
    }
}

/// A service name as clients may ask for it: `store` or `mcp.<server>`, short and plain, so
/// a name is checked before it is looked up or echoed.
pub fn valid_service_name(name: &str) -> bool {
    (1..=80).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

/// A provider that reports services of its own (voice reports `stt` and `tts`).
pub trait HealthSource: Send + Sync {
    fn services(&self) -> Vec<(&'static str, ServiceHealth)>;
}

/// Providers' services, added to every report.
pub type HealthSources = Arc<[Arc<dyn HealthSource>]>;

/// What an upstream's supervisor state means for readiness.
/// `agentos.health`: the readiness report as a tool (what `GET /health/ready` answers, without
/// the connection detail), so the studio's `health` reads it through the registry like every
/// other command. Holds the upstreams weakly: they hold the registry that holds this tool.
pub fn tools(store: Arc<dyn Store>, upstreams: Weak<Upstreams>, sources: HealthSources) -> Vec<Arc<dyn Tool>> {
    vec![
        ToolBuilder::new("agentos.health")
            .title("Check agentos's health")
            .description(
                "Whether agentos is ready: its store answers a trivial read in time, and each proxied \
                 MCP server (`mcp.<name>`) and the speech engines (`stt`, `tts`) are healthy, \
                 degraded (reconnecting), unhealthy or disabled. `status` is `degraded` when any service is degraded or unhealthy. The \
                 same report as GET /health/ready.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |_: Empty, _ctx| {
                let (store, upstreams, sources) = (store.clone(), upstreams.upgrade(), sources.clone());
                async move {
                    let upstreams = upstreams.ok_or_else(|| ToolFailure::busy("agentos is shutting down"))?;
                    Ok(Checker::new(store, upstreams, sources).report().await)
                }
            }),
    ]
}

fn upstream_health(member: &CrewMember) -> ServiceHealth {
    let (status, error) = match member.health {
        Health::Up => (ServiceStatus::Healthy, None),
        Health::Restarting => (ServiceStatus::Degraded, Some("restarting")),
        Health::Down => (ServiceStatus::Unhealthy, Some("down")),
        Health::Disabled => (ServiceStatus::Disabled, None),
    };
    ServiceHealth {
        status,
        response_time: 0,
        error,
    }
}

/// Runs the checks; cheap to clone.
#[derive(Clone)]
pub struct Checker {
    store: Arc<dyn Store>,
    upstreams: Arc<Upstreams>,
    sources: HealthSources,
}

impl Checker {
    pub fn new(store: Arc<dyn Store>, upstreams: Arc<Upstreams>, sources: HealthSources) -> Self {
        Self {
            store,
            upstreams,
            sources,
        }
    }

    /// Every service, checked now.
    pub async fn report(&self) -> Report {
        let mut services = BTreeMap::new();
        services.insert(STORE.to_owned(), self.store_health().await);
        for member in self.upstreams.crew_status() {
            services.insert(format!("{UPSTREAM_PREFIX}{}", member.name), upstream_health(&member));
        }
        for source in self.sources.iter() {
            for (name, health) in source.services() {
                services.insert(name.to_owned(), health);
            }
        }
        Report::new(services)
    }

    /// One service by name, or `None` when there is no such service.
    pub async fn service(&self, name: &str) -> Option<ServiceHealth> {
        if name == STORE {
            return Some(self.store_health().await);
        }
        let mut provided = self.sources.iter().flat_map(|source| source.services());
        if let Some((_, health)) = provided.find(|(service, _)| *service == name) {
            return Some(health);
        }
        let server = name.strip_prefix(UPSTREAM_PREFIX)?;
        self.upstreams
            .crew_status()
            .iter()
            .find(|member| member.name == server)
            .map(upstream_health)
    }

    async fn store_health(&self) -> ServiceHealth {
        let started = Instant::now();
        let outcome = tokio::time::timeout(STORE_TIMEOUT, self.store.check()).await;
        let response_time = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(error)) => {
                tracing::warn!(%error, "health check: the store did not answer");
                Some("unavailable")
            }
            Err(_) => {
                tracing::warn!(
                    timeout_ms = STORE_TIMEOUT.as_millis() as u64,
                    "health check: the store timed out"
                );
                Some("timeout")
            }
        };
        ServiceHealth {
            status: if error.is_none() {
                ServiceStatus::Healthy
            } else {
                ServiceStatus::Unhealthy
            },
            response_time,
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(status: ServiceStatus) -> ServiceHealth {
        ServiceHealth {
            status,
            response_time: 1,
            error: None,
        }
    }

    #[test]
    fn disabled_services_do_not_degrade_readiness() {
        let mut services = BTreeMap::new();
        services.insert("store".to_owned(), entry(ServiceStatus::Healthy));
        services.insert("mcp.off".to_owned(), entry(ServiceStatus::Disabled));
        assert_eq!(Report::new(services.clone()).status, Overall::Healthy);
        services.insert("mcp.flaky".to_owned(), entry(ServiceStatus::Degraded));
        assert_eq!(Report::new(services).status, Overall::Degraded);
    }

    #[test]
    fn service_names_are_plain() {
        assert!(valid_service_name("store"));
        assert!(valid_service_name("mcp.git-hub_2"));
        assert!(!valid_service_name(""));
        assert!(!valid_service_name("mcp/../x"));
        assert!(!valid_service_name("Store"));
        assert!(!valid_service_name(&"a".repeat(81)));
    }

    #[test]
    fn upstream_states_map_to_statuses() {
        let mut member = CrewMember {
            name: "x".into(),
            active: "cmd --secret".into(),
            standby: vec![],
            health: Health::Down,
            last_failure: None,
            restarts: 0,
            switches: 0,
        };
        let down = upstream_health(&member);
        assert_eq!((down.status, down.error), (ServiceStatus::Unhealthy, Some("down")));
        member.health = Health::Restarting;
        assert_eq!(upstream_health(&member).status, ServiceStatus::Degraded);
        member.health = Health::Up;
        let up = serde_json::to_value(upstream_health(&member)).unwrap_or_default();
        assert_eq!(up, serde_json::json!({"status": "healthy", "responseTime": 0}));
    }
}

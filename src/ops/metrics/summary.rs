//! `agentos.ops_metrics`: the collector as JSON, behind `GET /api/ops/metrics`. Anyone gets the
//! aggregate summary and the non-secret settings; only ops-admins get the breakdown per route,
//! tool and upstream (it shows who runs what).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use schemars::JsonSchema;
use serde::Serialize;

use super::histogram::{BUCKETS, HistogramSnapshot};
use super::{Gauges, LIMIT_CLASSES, METHODS, Metrics, ORIGINS, UNKNOWN_TOOL};
use crate::config::Config;
use crate::registry::{AuditOutcome, Empty, Hints, Tool, ToolBuilder};
use crate::upstream::Health;

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpsMetrics {
    pub summary: Summary,
    pub settings: Settings,
    /// The breakdown per route, tool and upstream; ops-admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Details>,
    /// True when `metrics` was withheld because the caller is not an ops-admin.
    pub requires_auth_for_details: bool,
}

/// Aggregates: safe to show anyone.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// HTTP requests answered.
    pub requests: Rate,
    /// HTTP answers with a 5xx status (the server's fault).
    pub errors: Rate,
    /// HTTP answers with a 4xx status (refused, unknown, invalid, limited); total only.
    pub client_errors: u64,
    /// HTTP answer latency over all routes, estimated from the histogram buckets.
    pub latency: Latency,
    /// Seconds since this agentos started.
    pub uptime: f64,
    /// Tools in the registry.
    pub tools: usize,
    /// Registry calls made, from every front door.
    pub tool_calls: u64,
    pub coverage: Coverage,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    pub total: u64,
    /// In the last 60 seconds.
    pub per_minute: u64,
}

/// Percentiles in milliseconds.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Latency {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// Proxied MCP servers up out of those configured.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Coverage {
    pub up: usize,
    pub total: usize,
}

/// How metrics are configured (nothing secret).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Whether `GET /metrics` answers without a token (`[metrics] public`).
    pub public_scrape: bool,
    /// Where the Prometheus text format is served.
    pub scrape_path: String,
    /// Upper bounds of the latency histogram buckets, in seconds.
    pub histogram_buckets: Vec<f64>,
    pub rate_limits_enabled: bool,
    pub audit_enabled: bool,
    pub traces_enabled: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    pub routes: Vec<RouteDetail>,
    pub tools: Vec<ToolDetail>,
    pub upstreams: Vec<UpstreamDetail>,
    /// Requests refused by a rate limit, per route class.
    pub rate_limited: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approvals_pending: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sessions_active: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteDetail {
    pub method: String,
    /// The route template (`unmatched` for requests no route matched).
    pub route: String,
    pub requests: u64,
    /// Answers per HTTP status.
    pub statuses: BTreeMap<String, u64>,
    pub latency: Latency,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolDetail {
    /// The tool's native name; `unknown` for calls no tool answered.
    pub tool: String,
    pub origin: String,
    pub calls: u64,
    /// Calls per outcome, as the audit trail names them.
    pub outcomes: BTreeMap<String, u64>,
    /// Mean latency in milliseconds (known tools only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_ms: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamDetail {
    pub server: String,
    pub health: Health,
    pub restarts: u64,
    pub switches: u64,
}

fn latency(snapshot: &HistogramSnapshot) -> Latency {
    Latency {
        p50: snapshot.quantile_ms(0.5),
        p95: snapshot.quantile_ms(0.95),
        p99: snapshot.quantile_ms(0.99),
    }
}

fn outcomes(counts: &[std::sync::atomic::AtomicU64]) -> BTreeMap<String, u64> {
    AuditOutcome::ALL
        .iter()
        .zip(counts)
        .map(|(outcome, count)| (outcome.as_str().to_owned(), count.load(Ordering::Relaxed)))
        .filter(|(_, count)| *count > 0)
        .collect()
}

impl Metrics {
    /// The report `agentos.ops_metrics` returns; `details` for ops-admins.
    pub async fn report(&self, config: &Config, details: bool) -> OpsMetrics {
        let gauges = self.gauges().await;
        let (minute_requests, minute_errors) = self.minute.last_minute(self.uptime().as_secs());
        let mut all = HistogramSnapshot::default();
        for series in self.routes.iter() {
            for durations in &series.durations {
                all.merge(&durations.snapshot());
            }
        }
        let tool_calls = self.call_durations.iter().map(|h| h.snapshot().count()).sum();
        let summary = Summary {
            requests: Rate {
                total: self.requests.load(Ordering::Relaxed),
                per_minute: minute_requests,
            },
            errors: Rate {
                total: self.server_errors.load(Ordering::Relaxed),
                per_minute: minute_errors,
            },
            client_errors: self.client_errors.load(Ordering::Relaxed),
            latency: latency(&all),
            uptime: (gauges.uptime_seconds * 1000.0).round() / 1000.0,
            tools: gauges.tools_registered.unwrap_or(0),
            tool_calls,
            coverage: Coverage {
                up: gauges.upstreams.iter().filter(|m| m.health == Health::Up).count(),
                total: gauges.upstreams.len(),
            },
        };
        OpsMetrics {
            summary,
            settings: Settings {
                public_scrape: self.public,
                scrape_path: "/metrics".into(),
                histogram_buckets: BUCKETS.to_vec(),
                rate_limits_enabled: config.rate_limits.enabled,
                audit_enabled: config.audit.enabled,
                traces_enabled: config.traces.enabled,
            },
            metrics: details.then(|| self.details(gauges)),
            requires_auth_for_details: !details,
        }
    }

    fn details(&self, gauges: Gauges) -> Details {
        let mut routes = Vec::new();
        for entry in self.routes.iter() {
            for (index, method) in METHODS.iter().enumerate() {
                let snapshot = entry.value().durations[index].snapshot();
                if snapshot.count() == 0 {
                    continue;
                }
                let statuses = entry
                    .value()
                    .statuses
                    .iter()
                    .filter(|s| usize::from(s.key().0) == index)
                    .map(|s| (s.key().1.to_string(), s.value().load(Ordering::Relaxed)))
                    .collect();
                routes.push(RouteDetail {
                    method: (*method).to_owned(),
                    route: entry.key().to_string(),
                    requests: snapshot.count(),
                    statuses,
                    latency: latency(&snapshot),
                });
            }
        }
        routes.sort_by(|a, b| (&a.route, &a.method).cmp(&(&b.route, &b.method)));
        let mut tools: Vec<ToolDetail> = self
            .tools
            .iter()
            .map(|entry| {
                let outcomes = outcomes(&entry.value().outcomes);
                let calls: u64 = outcomes.values().sum();
                let micros = entry.value().micros.load(Ordering::Relaxed);
                ToolDetail {
                    tool: entry.key().to_string(),
                    origin: ORIGINS[entry.value().origin].to_owned(),
                    calls,
                    outcomes,
                    mean_ms: (calls > 0).then(|| (micros as f64 / calls as f64).round() / 1000.0),
                }
            })
            .collect();
        tools.sort_by(|a, b| a.tool.cmp(&b.tool));
        let unknown = outcomes(&self.unknown);
        if !unknown.is_empty() {
            tools.push(ToolDetail {
                tool: UNKNOWN_TOOL.to_owned(),
                origin: ORIGINS[3].to_owned(),
                calls: unknown.values().sum(),
                outcomes: unknown,
                mean_ms: None,
            });
        }
        Details {
            routes,
            tools,
            upstreams: gauges
                .upstreams
                .into_iter()
                .map(|m| UpstreamDetail {
                    server: m.name,
                    health: m.health,
                    restarts: m.restarts,
                    switches: m.switches,
                })
                .collect(),
            rate_limited: LIMIT_CLASSES
                .iter()
                .zip(&self.rate_limited)
                .map(|(class, count)| ((*class).to_owned(), count.load(Ordering::Relaxed)))
                .collect(),
            approvals_pending: gauges.approvals_pending,
            sessions_active: gauges.sessions_active,
        }
    }
}

/// `agentos.ops_metrics`.
pub fn tools(metrics: Arc<Metrics>, config: Arc<Config>) -> Vec<Arc<dyn Tool>> {
    vec![
        ToolBuilder::new("agentos.ops_metrics")
            .title("Show agentos metrics")
            .description(
                "Operational metrics of this agentos: HTTP requests and 5xx errors (total and in \
                 the last minute), latency percentiles in ms, uptime in seconds, the tool count \
                 and how many proxied MCP servers are up. Ops-admins also get the breakdown per \
                 route, tool (calls per outcome) and upstream (health, restarts); for everyone \
                 else `requiresAuthForDetails` is true. Prometheus scrapes the same counters at \
                 GET /metrics.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |_: Empty, ctx| {
                let (metrics, config) = (metrics.clone(), config.clone());
                async move { Ok(metrics.report(&config, ctx.caller.is_admin()).await) }
            }),
    ]
}

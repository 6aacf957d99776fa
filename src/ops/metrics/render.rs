//! The Prometheus text exposition format (version 0.0.4) of the collector: `# HELP` and
//! `# TYPE` per family, histograms as cumulative `_bucket{le=...}` lines ending in `+Inf`, then
//! `_sum` and `_count`; label values escaped. Series come out sorted, so scrapes diff cleanly.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::histogram::{BUCKETS, HistogramSnapshot};
use super::{Gauges, LIMIT_CLASSES, METHODS, Metrics, ORIGINS, UNKNOWN_TOOL};
use crate::registry::AuditOutcome;
use crate::upstream::Health;

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const PREFIX: &str = "agentos_";

/// Escapes a label value: backslash, double quote and newline, as the format requires.
pub(super) fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `{a="x",b="y"}` from pairs (values escaped); empty for no labels.
fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(name, value)| format!("{name}=\"{}\"", escape(value)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {PREFIX}{name} {help}");
    let _ = writeln!(out, "# TYPE {PREFIX}{name} {kind}");
}

fn sample(out: &mut String, name: &str, pairs: &[(&str, &str)], value: impl std::fmt::Display) {
    let _ = writeln!(out, "{PREFIX}{name}{} {value}", labels(pairs));
}

fn histogram(out: &mut String, name: &str, pairs: &[(&str, &str)], snapshot: &HistogramSnapshot) {
    let bounds = BUCKETS.iter().map(|b| b.to_string()).chain(["+Inf".to_owned()]);
    for (bound, cumulative) in bounds.zip(snapshot.cumulative()) {
        let mut with_le = pairs.to_vec();
        with_le.push(("le", &bound));
        sample(out, &format!("{name}_bucket"), &with_le, cumulative);
    }
    sample(out, &format!("{name}_sum"), pairs, snapshot.sum_seconds);
    sample(out, &format!("{name}_count"), pairs, snapshot.count());
}

/// Where a provider ([`super::MetricsSource`]) writes its series, in the same format and with
/// the same `agentos_` prefix as the collector's own.
pub struct Exposition<'a> {
    out: &'a mut String,
}

impl Exposition<'_> {
    /// `# HELP` and `# TYPE` of a family (`kind`: `counter`, `gauge` or `histogram`).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        family(self.out, name, kind, help);
    }

    pub fn sample(&mut self, name: &str, pairs: &[(&str, &str)], value: impl std::fmt::Display) {
        sample(self.out, name, pairs, value);
    }

    pub fn histogram(&mut self, name: &str, pairs: &[(&str, &str)], snapshot: &HistogramSnapshot) {
        histogram(self.out, name, pairs, snapshot);
    }
}

impl Metrics {
    /// The whole exposition, gauges read now.
    pub async fn render(&self) -> String {
        let gauges = self.gauges().await;
        let mut out = String::with_capacity(16 * 1024);
        self.render_http(&mut out);
        self.render_calls(&mut out);
        render_gauges(&mut out, &gauges);
        family(
            &mut out,
            "rate_limited_total",
            "counter",
            "Requests refused by a rate limit, per route class.",
        );
        for (class, count) in LIMIT_CLASSES.iter().zip(&self.rate_limited) {
            sample(
                &mut out,
                "rate_limited_total",
                &[("class", class)],
                count.load(Ordering::Relaxed),
            );
        }
        family(
            &mut out,
            "mcp_fast_path_total",
            "counter",
            "MCP JSON-RPC requests (tools/call, tools/list, ping) answered by the HTTP fast path.",
        );
        sample(
            &mut out,
            "mcp_fast_path_total",
            &[],
            self.mcp_fast_answers.load(Ordering::Relaxed),
        );
        self.render_loss(&mut out);
        let providers = self.providers.read().unwrap_or_else(|p| p.into_inner()).clone();
        for provider in providers {
            provider.render(&mut Exposition { out: &mut out });
        }
        out
    }

    fn render_loss(&self, out: &mut String) {
        let loss = &self.loss;
        for (name, help, count) in [
            (
                "audit_records_dropped_total",
                "Audit records not written because the queue to the writer was full (the calls ran).",
                &loss.audit_dropped,
            ),
            (
                "traces_dropped_total",
                "Finished traces not written because the queue to the writer was full.",
                &loss.traces_dropped,
            ),
            (
                "traces_sampled_out_total",
                "Successful traces not stored because traces.max_ok_per_second was reached (failed calls are always stored).",
                &loss.traces_sampled_out,
            ),
        ] {
            family(out, name, "counter", help);
            sample(out, name, &[], count.load(Ordering::Relaxed));
        }
    }

    fn render_http(&self, out: &mut String) {
        let mut routes: Vec<_> = self
            .routes
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        family(
            out,
            "http_requests_total",
            "counter",
            "HTTP answers, per method, route template and status.",
        );
        for (route, series) in &routes {
            let mut statuses: Vec<((u8, u16), u64)> = series
                .statuses
                .iter()
                .map(|e| (*e.key(), e.value().load(Ordering::Relaxed)))
                .collect();
            statuses.sort_unstable();
            for ((method, status), count) in statuses {
                let status = status.to_string();
                let method = METHODS[usize::from(method)];
                sample(
                    out,
                    "http_requests_total",
                    &[("method", method), ("route", route), ("status", &status)],
                    count,
                );
            }
        }
        family(
            out,
            "http_request_duration_seconds",
            "histogram",
            "Time to answer an HTTP request (to the response head).",
        );
        for (route, series) in &routes {
            for (method, durations) in METHODS.iter().zip(&series.durations) {
                let snapshot = durations.snapshot();
                if snapshot.count() > 0 {
                    histogram(
                        out,
                        "http_request_duration_seconds",
                        &[("method", method), ("route", route)],
                        &snapshot,
                    );
                }
            }
        }
    }

    fn render_calls(&self, out: &mut String) {
        family(
            out,
            "tool_calls_total",
            "counter",
            "Registry calls, per tool, origin and outcome (as in the audit trail).",
        );
        let mut tools: Vec<_> = self
            .tools
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        tools.sort_by(|a, b| a.0.cmp(&b.0));
        for (tool, series) in &tools {
            for (outcome, count) in AuditOutcome::ALL.iter().zip(&series.outcomes) {
                let count = count.load(Ordering::Relaxed);
                if count > 0 {
                    let pairs = [
                        ("tool", &**tool),
                        ("origin", ORIGINS[series.origin]),
                        ("outcome", outcome.as_str()),
                    ];
                    sample(out, "tool_calls_total", &pairs, count);
                }
            }
        }
        for (outcome, count) in AuditOutcome::ALL.iter().zip(&self.unknown) {
            let count = count.load(Ordering::Relaxed);
            if count > 0 {
                let pairs = [
                    ("tool", UNKNOWN_TOOL),
                    ("origin", ORIGINS[3]),
                    ("outcome", outcome.as_str()),
                ];
                sample(out, "tool_calls_total", &pairs, count);
            }
        }
        family(
            out,
            "tool_call_duration_seconds",
            "histogram",
            "Time a registry call took, per tool origin.",
        );
        for (origin, durations) in ORIGINS.iter().zip(&self.call_durations) {
            histogram(
                out,
                "tool_call_duration_seconds",
                &[("origin", origin)],
                &durations.snapshot(),
            );
        }
    }
}

fn render_gauges(out: &mut String, gauges: &Gauges) {
    family(
        out,
        "upstream_up",
        "gauge",
        "1 when the proxied MCP server is up, else 0.",
    );
    for member in &gauges.upstreams {
        sample(
            out,
            "upstream_up",
            &[("server", &member.name)],
            u8::from(member.health == Health::Up),
        );
    }
    family(
        out,
        "upstream_health",
        "gauge",
        "1 for the proxied MCP server's current health state, 0 for the others.",
    );
    for member in &gauges.upstreams {
        for (state, health) in [
            ("up", Health::Up),
            ("restarting", Health::Restarting),
            ("down", Health::Down),
            ("disabled", Health::Disabled),
        ] {
            let value = u8::from(member.health == health);
            sample(
                out,
                "upstream_health",
                &[("server", &member.name), ("state", state)],
                value,
            );
        }
    }
    family(
        out,
        "upstream_restarts_total",
        "counter",
        "Times a live upstream connection was lost and restarted.",
    );
    for member in &gauges.upstreams {
        sample(
            out,
            "upstream_restarts_total",
            &[("server", &member.name)],
            member.restarts,
        );
    }
    family(
        out,
        "upstream_switches_total",
        "counter",
        "Times an upstream's active endpoint was switched or redialled.",
    );
    for member in &gauges.upstreams {
        sample(
            out,
            "upstream_switches_total",
            &[("server", &member.name)],
            member.switches,
        );
    }
    if let Some(sessions) = gauges.sessions_active {
        family(
            out,
            "mcp_sessions_active",
            "gauge",
            "Open MCP streamable HTTP sessions.",
        );
        sample(out, "mcp_sessions_active", &[], sessions);
    }
    if let Some(pending) = gauges.approvals_pending {
        family(
            out,
            "approvals_pending",
            "gauge",
            "Calls waiting for a human's approval.",
        );
        sample(out, "approvals_pending", &[], pending);
    }
    if let Some(tools) = gauges.tools_registered {
        family(out, "tools_registered", "gauge", "Tools in the registry.");
        sample(out, "tools_registered", &[], tools);
    }
    family(out, "uptime_seconds", "gauge", "Seconds since this agentos started.");
    sample(out, "uptime_seconds", &[], format!("{:.3}", gauges.uptime_seconds));
    family(out, "build_info", "gauge", "Always 1; the version is in the label.");
    sample(out, "build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::registry::{CallObservation, CallObserver, Origin};

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("line\nbreak"), "line\\nbreak");
        assert_eq!(labels(&[("a", "1"), ("b", "\"")]), r#"{a="1",b="\""}"#);
    }

    #[tokio::test]
    async fn the_exposition_has_help_type_and_cumulative_buckets() {
        let metrics = Metrics::new(true);
        metrics.record_http(
            &axum::http::Method::GET,
            "/api/approvals/{id}",
            200,
            Duration::from_millis(3),
        );
        let tool: Arc<str> = Arc::from("weird\"tool");
        metrics.observe(&CallObservation {
            tool: Some(&tool),
            origin: Some(Origin::Mcp),
            outcome: AuditOutcome::Ok,
            elapsed: Duration::from_millis(30),
        });
        let text = metrics.render().await;
        assert!(text.contains("# TYPE agentos_http_requests_total counter\n"), "{text}");
        assert!(
            text.contains(
                "agentos_http_requests_total{method=\"GET\",route=\"/api/approvals/{id}\",status=\"200\"} 1\n"
            )
        );
        assert!(text.contains("agentos_tool_calls_total{tool=\"weird\\\"tool\",origin=\"mcp\",outcome=\"ok\"} 1\n"));
        assert!(text.contains("agentos_tool_call_duration_seconds_bucket{origin=\"mcp\",le=\"0.025\"} 0\n"));
        assert!(text.contains("agentos_tool_call_duration_seconds_bucket{origin=\"mcp\",le=\"0.05\"} 1\n"));
        assert!(text.contains("agentos_tool_call_duration_seconds_bucket{origin=\"mcp\",le=\"+Inf\"} 1\n"));
        assert!(text.contains("agentos_tool_call_duration_seconds_count{origin=\"mcp\"} 1\n"));
        assert!(text.contains("agentos_build_info{version=\""));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap_or_default();
            assert!(value.parse::<f64>().is_ok(), "unparsable sample: {line}");
        }
    }
}

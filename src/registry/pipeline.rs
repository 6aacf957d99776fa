//! The one call path: resolve → authorize → validate → approve → run under deadline and
//! cancellation → record (stats, trace, audit). Every adapter, the scheduler and workflows call tools through here and nowhere else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rmcp::model::CallToolResult;
use serde_json::Value;
use tracing::Instrument;

use super::audit::AuditTrail;
use super::catalog::Entry;
use super::trace::Layer;
use super::trace_trail::TraceTrail;
use super::{CallContext, CallError, Registry};

/// At most this many schema violations are reported at once; the first few are what a model fixes.
const MAX_REPORTED_VIOLATIONS: usize = 3;

impl Registry {
    /// Calls `name` (native or strict spelling) with `input` as the context's caller.
    pub async fn call(&self, ctx: &CallContext, name: &str, input: Value) -> Result<CallToolResult, CallError> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let mut trail = AuditTrail::begin(self.trail_hooks(), ctx, name, &input);
        let mut trace = TraceTrail::begin(self.traces.get().map(|sink| &**sink), ctx, name);
        let Some(entry) = self.resolve_for(&ctx.caller, name) else {
            self.stats.unknown.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(tool = name, agent = %ctx.caller.agent_id, request_id = %ctx.request_id, "unknown or denied tool");
            let outcome = Err(CallError::UnknownTool(name.to_owned()));
            trail.finish(&outcome);
            trace.finish(&outcome);
            return outcome;
        };
        trail.resolved(&entry);
        trace.resolved(&entry);
        let traced = trace.context(ctx);
        let ctx = traced.as_ref().unwrap_or(ctx);
        // Debug: the fmt layer formats a span's fields when it opens, which at info cost every call
        // about a tenth of its instructions (measured with callgrind), for context that only lines
        // logged during the call use. `AGENTOS_LOG=info,agentos::registry=debug` turns it on.
        let span = tracing::debug_span!(
            "tool_call",
            tool = %entry.name(),
            origin = entry.tool.spec().origin.as_str(),
            agent = %ctx.caller.agent_id,
            request_id = %ctx.request_id,
        );
        let outcome = self.run(entry, ctx, input).instrument(span).await;
        trail.finish(&outcome);
        trace.finish(&outcome);
        outcome
    }

    async fn run(&self, entry: Arc<Entry>, ctx: &CallContext, input: Value) -> Result<CallToolResult, CallError> {
        let started = Instant::now();
        let mut in_flight = InFlight::enter(&self.stats.in_flight);
        let input = match input {
            Value::Null => Value::Object(Default::default()),
            other => other,
        };
        if let Err(message) = validate(&entry, &input) {
            self.stats.invalid.fetch_add(1, Ordering::Relaxed);
            entry.stats.record(true, micros_since(started));
            tracing::debug!(%message, "invalid arguments");
            return Err(CallError::InvalidArguments {
                tool: entry.name().to_string(),
                message,
            });
        }
        let outcome = match self.approve(&entry, ctx, &input).await {
            Some(held) => held,
            None => self.execute(&entry, ctx, input).await,
        };
        let failed = match &outcome {
            Ok(result) => result.is_error == Some(true),
            Err(_) => true,
        };
        if failed {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
        }
        let micros = micros_since(started);
        in_flight.finish();
        entry.stats.record(failed, micros);
        tracing::debug!(micros, failed, "tool call finished");
        outcome
    }

    /// Runs the tool under the call's deadline and cancellation. A call held for approval never
    /// gets here: its approved run is a fresh call with a fresh deadline (see `approval`).
    async fn execute(&self, entry: &Entry, ctx: &CallContext, input: Value) -> Result<CallToolResult, CallError> {
        let started = tokio::time::Instant::now();
        // The tool's own span; what it calls (an upstream, workflow steps) nests under it.
        let mut span = ctx.trace.span(Layer::Tool, || entry.name().clone());
        let traced = span.as_ref().map(|span| CallContext {
            trace: super::TraceLink::Within(span.context()),
            ..ctx.clone()
        });
        let ctx = traced.as_ref().unwrap_or(ctx);
        let outcome = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => {
                tracing::info!("tool call cancelled by the client");
                Err(CallError::Cancelled(entry.name().to_string()))
            }
            _ = tokio::time::sleep_until(ctx.deadline) => Err(CallError::DeadlineExceeded {
                tool: entry.name().to_string(),
                timeout: ctx.deadline.saturating_duration_since(started),
            }),
            result = entry.tool.call(input, ctx) => Ok(result.unwrap_or_else(failure_result)),
        };
        if let Some(span) = span.take() {
            super::trace_trail::end_tool_span(span, &outcome);
        }
        outcome
    }
}

/// The `_meta` key carrying a failed result's [`FailureKind`].
const FAILURE_KIND_META: &str = "agentos/failure";

/// A tool's failure as an MCP result: its message as text, its kind in `_meta`.
pub(super) fn failure_result(failure: super::ToolFailure) -> CallToolResult {
    let mut result = CallToolResult::error(vec![rmcp::model::ContentBlock::text(failure.message)]);
    let mut meta = rmcp::model::JsonObject::new();
    meta.insert(FAILURE_KIND_META.into(), Value::String(failure.kind.as_str().into()));
    result.meta = Some(rmcp::model::MetaObject(meta));
    result
}

/// The kind of a failed result made by the pipeline; `None` for successes and for failures
/// passed through from elsewhere (an upstream's own `isError` results count as `Failed`).
pub fn failure_kind(result: &CallToolResult) -> Option<super::FailureKind> {
    if result.is_error != Some(true) {
        return None;
    }
    let kind = result
        .meta
        .as_ref()
        .and_then(|meta| meta.0.get(FAILURE_KIND_META))
        .and_then(Value::as_str)
        .and_then(super::FailureKind::parse);
    Some(kind.unwrap_or_default())
}

/// Counts a call as in flight until it finishes or its future is dropped (the caller went away).
struct InFlight<'a> {
    gauge: &'a AtomicU64,
    finished: bool,
}

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self { gauge, finished: false }
    }

    fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.gauge.fetch_sub(1, Ordering::Relaxed);
        if !self.finished {
            tracing::info!("tool call abandoned: the caller went away");
        }
    }
}

fn micros_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Checks `input` against the tool's compiled schema and says, per field, what is wrong.
fn validate(entry: &Entry, input: &Value) -> Result<(), String> {
    if entry.validator.is_valid(input) {
        return Ok(());
    }
    let problems: Vec<String> = entry
        .validator
        .iter_errors(input)
        .take(MAX_REPORTED_VIOLATIONS)
        .map(|error| {
            let path = error.instance_path().to_string();
            match error.kind() {
                jsonschema::error::ValidationErrorKind::Required { property } => {
                    let field = property
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| property.to_string());
                    if path.is_empty() {
                        format!("missing required field `{field}`")
                    } else {
                        format!("missing required field `{}/{field}`", path.trim_start_matches('/'))
                    }
                }
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    format!(
                        "unexpected field(s) {}: remove them",
                        unexpected
                            .iter()
                            .map(|u| format!("`{u}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
                _ if path.is_empty() => error.to_string(),
                _ => format!("field `{}`: {}", path.trim_start_matches('/'), error.masked()),
            }
        })
        .collect();
    Err(problems.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{FailureKind, ToolFailure};

    #[test]
    fn failure_kinds_travel_with_the_result() {
        let result = failure_result(ToolFailure::not_found("no such server"));
        assert_eq!(result.is_error, Some(true));
        assert_eq!(failure_kind(&result), Some(FailureKind::NotFound));
        assert_eq!(
            failure_kind(&failure_result(ToolFailure::new("x"))),
            Some(FailureKind::Failed)
        );
        assert_eq!(failure_kind(&CallToolResult::success(vec![])), None);
        let from_upstream = CallToolResult::error(vec![]);
        assert_eq!(
            failure_kind(&from_upstream),
            Some(FailureKind::Failed),
            "no kind means failed"
        );
    }
}

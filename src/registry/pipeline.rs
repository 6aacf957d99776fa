//! The one call path: charge the rate limit → resolve and authorize → validate → approve → run
//! under deadline and cancellation → record (stats, metrics, trace, audit). Every adapter, the
//! scheduler, workflows and approved runs call tools, read resources and get prompts through
//! here and nowhere else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rmcp::model::{CallToolResult, GetPromptResult, JsonObject, ReadResourceResult};
use serde_json::Value;
use tracing::Instrument;

use super::audit::AuditTrail;
use super::catalog::Entry;
use super::operation::Operation;
use super::redact::{Redaction, Secrets};
use super::target::Target;
use super::trace::Layer;
use super::trace_trail::TraceTrail;
use super::{CallContext, CallError, FailureKind, Registry};

/// At most this many schema violations are reported at once; the first few are what a model fixes.
const MAX_REPORTED_VIOLATIONS: usize = 3;

impl Registry {
    /// Calls `name` (native or strict spelling) with `input` as the context's caller.
    pub async fn call(&self, ctx: &CallContext, name: &str, input: Value) -> Result<CallToolResult, CallError> {
        self.perform(ctx, Operation::Tool(name), input).await
    }

    /// Runs any operation through the pipeline: charge → resolve (authorize) → validate →
    /// approve → run under deadline and cancellation → record. A resource read or prompt get
    /// answers in a tool result's shape (see `target`); [`Registry::read_resource`] and
    /// [`Registry::get_prompt`] turn it back.
    pub async fn perform(
        &self,
        ctx: &CallContext,
        op: Operation<'_>,
        input: Value,
    ) -> Result<CallToolResult, CallError> {
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        let requested = op.record_name();
        let mut trail = AuditTrail::begin(self.trail_hooks(), ctx, &requested);
        let mut trace = TraceTrail::begin(self.traces.get().map(|sink| &**sink), ctx, &requested);
        if let Err(refusal) = self.charge_call(ctx) {
            tracing::info!(agent = %ctx.caller.agent_id, class = refusal.class.as_str(), "rate limited");
            let secrets = unresolved_input(&mut trail, &input);
            let outcome = Err(CallError::RateLimited(refusal));
            trail.finish(&outcome, &secrets);
            trace.finish(&outcome, &secrets);
            return outcome;
        }
        // A tool its provider has not offered yet (agentos is still starting) is waited for,
        // as a first listing is, before the call is told it does not exist.
        let target = match self.resolve_target(&ctx.caller, &op) {
            None if !self.startup_over() => {
                self.until_started().await;
                self.resolve_target(&ctx.caller, &op)
            }
            found => found,
        };
        let Some(target) = target else {
            self.stats.unknown.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(name = %requested, agent = %ctx.caller.agent_id, request_id = %ctx.request_id, "unknown or denied");
            let secrets = unresolved_input(&mut trail, &input);
            let outcome = Err(match op {
                Operation::Tool(name) => CallError::UnknownTool(name.to_owned()),
                Operation::Resource(uri) => CallError::NotFound(format!("no resource `{uri}`")),
                Operation::Prompt(name) => CallError::NotFound(format!("no prompt `{name}`")),
            });
            trail.finish(&outcome, &secrets);
            trace.finish(&outcome, &secrets);
            return outcome;
        };
        trail.resolved(&target.record, &target.series, target.origin);
        // The call's sensitive values, scrubbed from whatever error text it leaves in records.
        let secrets = {
            let recorded = target.redaction().input(&input);
            trail.input(&recorded.value);
            recorded.secrets
        };
        trace.resolved(&target.record, target.origin);
        let traced = trace.context(ctx);
        let ctx = traced.as_ref().unwrap_or(ctx);
        // Debug: the fmt layer formats a span's fields when it opens, which at info cost every call
        // about a tenth of its instructions (measured with callgrind), for context that only lines
        // logged during the call use. `AGENTOS_LOG=info,agentos::registry=debug` turns it on.
        let span = tracing::debug_span!(
            "tool_call",
            tool = %target.record,
            origin = target.origin.as_str(),
            agent = %ctx.caller.agent_id,
            request_id = %ctx.request_id,
        );
        let outcome = self.run(&target, ctx, input, &secrets).instrument(span).await;
        trail.finish(&outcome, &secrets);
        trace.finish(&outcome, &secrets);
        outcome
    }

    async fn run(
        &self,
        target: &Target,
        ctx: &CallContext,
        input: Value,
        secrets: &Secrets,
    ) -> Result<CallToolResult, CallError> {
        let started = Instant::now();
        let mut in_flight = InFlight::enter(&self.stats.in_flight);
        let input = match input {
            Value::Null => Value::Object(Default::default()),
            other => other,
        };
        if let Err(message) = target.validate(&input) {
            self.stats.invalid.fetch_add(1, Ordering::Relaxed);
            if let Some(entry) = target.entry() {
                entry.stats.record(true, micros_since(started));
            }
            tracing::debug!(%message, "invalid arguments");
            return Err(CallError::InvalidArguments {
                tool: target.record.to_string(),
                message,
            });
        }
        let outcome = match self.approve(target, ctx, &input).await {
            Some(held) => held,
            None => self.execute(target, ctx, input, secrets).await,
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
        if let Some(entry) = target.entry() {
            entry.stats.record(failed, micros);
        }
        tracing::debug!(micros, failed, "tool call finished");
        outcome
    }

    /// Runs the target under the call's deadline and cancellation. A call held for approval
    /// never gets here: its approved run is a fresh call with a fresh deadline (see `approval`).
    async fn execute(
        &self,
        target: &Target,
        ctx: &CallContext,
        input: Value,
        secrets: &Secrets,
    ) -> Result<CallToolResult, CallError> {
        let started = tokio::time::Instant::now();
        // The run's own span; what it calls (an upstream, workflow steps) nests under it.
        let mut span = ctx.trace.span(Layer::Tool, || target.record.clone());
        let traced = span.as_ref().map(|span| CallContext {
            trace: super::TraceLink::Within(span.context()),
            ..ctx.clone()
        });
        let ctx = traced.as_ref().unwrap_or(ctx);
        let outcome = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => {
                tracing::info!("tool call cancelled by the client");
                Err(CallError::Cancelled(target.record.to_string()))
            }
            _ = tokio::time::sleep_until(ctx.deadline) => Err(CallError::DeadlineExceeded {
                tool: target.record.to_string(),
                timeout: ctx.deadline.saturating_duration_since(started),
            }),
            result = target.invoke(input, ctx) => Ok(result.unwrap_or_else(failure_result)),
        };
        if let Some(span) = span.take() {
            super::trace_trail::end_tool_span(span, &outcome, secrets);
        }
        outcome
    }

    /// Reads a namespaced resource URI as the context's caller, through the whole pipeline.
    pub async fn read_resource(&self, ctx: &CallContext, uri: &str) -> Result<ReadResourceResult, CallError> {
        let plain = self.transparent_uri(uri).await;
        let result = self
            .perform(ctx, Operation::Resource(plain.as_deref().unwrap_or(uri)), Value::Null)
            .await?;
        if result.is_error == Some(true) {
            return Err(failed(&result));
        }
        let mut read = super::target::into_resource(result);
        if plain.is_some() {
            // Asked by its own URI, answered with it.
            for contents in &mut read.contents {
                super::resources::plain_contents(contents);
            }
        }
        Ok(read)
    }

    /// Gets a namespaced prompt as the context's caller, through the whole pipeline.
    pub async fn get_prompt(
        &self,
        ctx: &CallContext,
        name: &str,
        arguments: Option<JsonObject>,
    ) -> Result<GetPromptResult, CallError> {
        let input = super::target::prompt_input(arguments);
        let plain = self.transparent_prompt(name).await;
        let result = self
            .perform(ctx, Operation::Prompt(plain.as_deref().unwrap_or(name)), input)
            .await?;
        if result.is_error == Some(true) {
            return Err(failed(&result));
        }
        super::target::into_prompt(result).ok_or_else(|| CallError::Failed {
            kind: FailureKind::Failed,
            message: format!("the result of prompt `{name}` is not a prompt"),
            approval_id: None,
        })
    }
}

/// Records the input of a call that reached no tool (refused, unknown), redacted by key names
/// alone; returns its sensitive values.
fn unresolved_input(trail: &mut AuditTrail<'_>, input: &Value) -> Secrets {
    let recorded = Redaction::by_name().input(input);
    trail.input(&recorded.value);
    recorded.secrets
}

/// A failed resource read or prompt get, which has no result channel of its own.
fn failed(result: &CallToolResult) -> CallError {
    let (kind, message) = super::target::failure_of(result);
    CallError::Failed {
        kind,
        message,
        approval_id: super::approval_id_of(result).map(str::to_owned),
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

/// The `_meta` key of a rate-limited result: whole seconds until a call would pass.
const RETRY_AFTER_META: &str = "agentos/retryAfterSecs";

/// A refusal of the pipeline as a failed tool result, for front doors whose callers read those
/// (MCP clients): its message as text, its kind in `_meta` and, when rate limited, the delay.
pub fn refusal_result(error: &CallError) -> CallToolResult {
    let kind = match error {
        CallError::InvalidArguments { .. } => super::FailureKind::InvalidInput,
        CallError::NotFound(_) | CallError::UnknownTool(_) => super::FailureKind::NotFound,
        CallError::RateLimited(_) => super::FailureKind::RateLimited,
        CallError::Failed { kind, .. } => *kind,
        CallError::Cancelled(_) | CallError::DeadlineExceeded { .. } => super::FailureKind::Failed,
    };
    let mut result = failure_result(super::ToolFailure::new(error.to_string()).with_kind(kind));
    if let (CallError::RateLimited(refusal), Some(meta)) = (error, &mut result.meta) {
        meta.0
            .insert(RETRY_AFTER_META.into(), Value::from(refusal.retry_after_secs()));
    }
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

/// What a call of a tool whose own input schema does not compile is told: no input can pass.
pub(crate) fn schema_bug(message: &str) -> String {
    format!(
        "this tool's input schema does not compile ({message}), so no input can be checked; this is a bug in agentos"
    )
}

/// Checks `input` against the tool's compiled schema and says, per field, what is wrong.
pub(super) fn validate(entry: &Entry, input: &Value) -> Result<(), String> {
    let validator = entry.validator().map_err(schema_bug)?;
    if validator.is_valid(input) {
        return Ok(());
    }
    let problems: Vec<String> = validator
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
    use crate::registry::trace::FinishedTrace;
    use crate::registry::{
        AuditRecord, AuditSink, Caller, FailureKind, ToolBuilder, ToolFailure, ToolPolicy, TraceSink,
    };
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    #[derive(Default)]
    struct Kept {
        audit: Mutex<Vec<AuditRecord>>,
        traces: Mutex<Vec<FinishedTrace>>,
    }

    impl AuditSink for Kept {
        fn record(&self, record: AuditRecord) {
            self.audit.lock().unwrap().push(record);
        }
    }

    impl TraceSink for Kept {
        fn record(&self, trace: FinishedTrace) {
            self.traces.lock().unwrap().push(trace);
        }
    }

    #[derive(serde::Deserialize, schemars::JsonSchema)]
    struct Login {
        user: String,
        #[schemars(extend("x-sensitive" = true))]
        pin: String,
        headers: BTreeMap<String, String>,
    }

    #[tokio::test]
    async fn audit_and_traces_never_keep_a_calls_sensitive_values() {
        let registry = Registry::new(std::time::Duration::from_secs(5));
        let kept = Arc::new(Kept::default());
        assert!(registry.set_audit_sink(kept.clone()));
        assert!(registry.set_trace_sink(kept.clone()));
        let login = ToolBuilder::new("test.login")
            .description("fails, echoing its input")
            .handler(|args: Login, _ctx| async move {
                let auth = args.headers.get("Authorization").cloned().unwrap_or_default();
                Err::<Value, _>(ToolFailure::new(format!(
                    "{} may not sign in with pin {} and {auth}",
                    args.user, args.pin
                )))
            });
        registry.register(vec![login]).unwrap();
        let ctx = CallContext::new(
            Arc::new(Caller::owner(ToolPolicy::allow_all())),
            "r",
            std::time::Duration::from_secs(5),
        );
        let input =
            serde_json::json!({"user": "ann", "pin": "pin-4321", "headers": {"Authorization": "Bearer tok-98765"}});
        let result = registry.call(&ctx, "test.login", input.clone()).await.unwrap();
        let told = super::super::result_text(&result);
        assert!(
            told.contains("pin-4321"),
            "the caller itself gets the real text: {told}"
        );

        let records = kept.audit.lock().unwrap().clone();
        let error = records[0].error.clone().unwrap();
        assert_eq!(error, "ann may not sign in with pin [redacted] and [redacted]");
        let recorded =
            serde_json::json!({"user": "ann", "pin": "[redacted]", "headers": {"Authorization": "[redacted]"}});
        assert_eq!(records[0].input_digest, super::super::input_digest(&recorded));
        let traces = kept.traces.lock().unwrap().clone();
        let text = format!("{traces:?}");
        assert!(text.contains("[redacted]"), "{text}");
        for secret in ["pin-4321", "tok-98765"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

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

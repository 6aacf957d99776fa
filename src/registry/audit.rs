//! The audit hook: every registry call leaves one record, handed to a sink that must not block,
//! so persisting the trail never slows a call down. The same trail tells the call observer
//! (metrics) how each call ended, so both count exactly the same calls.
//!
//! A record carries a digest of the input, never the input itself: inputs hold secrets and
//! personal data, and the digest is enough to tell whether two calls asked the same thing. The
//! digest is taken of the input as recorded (see `redact`), so it cannot confirm a guessed
//! secret; and an error text is scrubbed of the call's sensitive values before it is cut.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::CallToolResult;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::redact::Secrets;
use super::results::{result_text, truncate};
use super::{CallContext, CallError, FailureKind, Origin, failure_kind};

/// Error texts are cut to this many characters: enough to see what went wrong, bounded in size.
pub const MAX_ERROR_CHARS: usize = 500;

/// How a call ended, as the audit trail names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    Ok,
    /// The tool ran and returned `isError`.
    Error,
    /// No such tool, or one the caller may not use (the two look the same here too).
    UnknownTool,
    InvalidArguments,
    Cancelled,
    Timeout,
    /// The call waits for a human's approval.
    ApprovalPending,
    /// A human denied the approval the call needed.
    ApprovalDenied,
    /// No such resource or prompt (or one the caller may not use).
    NotFound,
    /// The caller's rate limit refused the call; nothing ran.
    RateLimited,
}

impl AuditOutcome {
    pub const ALL: [AuditOutcome; 10] = [
        Self::Ok,
        Self::Error,
        Self::UnknownTool,
        Self::InvalidArguments,
        Self::Cancelled,
        Self::Timeout,
        Self::ApprovalPending,
        Self::ApprovalDenied,
        Self::NotFound,
        Self::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::UnknownTool => "unknown_tool",
            Self::InvalidArguments => "invalid_arguments",
            Self::Cancelled => "cancelled",
            Self::Timeout => "timeout",
            Self::ApprovalPending => "approval_pending",
            Self::ApprovalDenied => "approval_denied",
            Self::NotFound => "not_found",
            Self::RateLimited => "rate_limited",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|outcome| outcome.as_str() == text)
    }

    fn of_failure(kind: FailureKind) -> Self {
        match kind {
            FailureKind::Pending => Self::ApprovalPending,
            FailureKind::Denied => Self::ApprovalDenied,
            _ => Self::Error,
        }
    }

    /// The outcome of a finished call and, unless it succeeded, its error text (truncated).
    pub fn of(result: &Result<CallToolResult, CallError>) -> (Self, Option<String>) {
        Self::recorded(result, &Secrets::default())
    }

    /// [`AuditOutcome::of`], with the call's sensitive values scrubbed from the error text
    /// before it is cut (a cut could leave the beginning of one).
    pub fn recorded(result: &Result<CallToolResult, CallError>, secrets: &Secrets) -> (Self, Option<String>) {
        let text = |text: &str| truncate(&secrets.scrub_text(text), MAX_ERROR_CHARS);
        match result {
            Ok(result) => match failure_kind(result) {
                None => (Self::Ok, None),
                Some(kind) => (Self::of_failure(kind), Some(text(&result_text(result)))),
            },
            Err(error) => {
                let outcome = match error {
                    CallError::UnknownTool(_) => Self::UnknownTool,
                    CallError::NotFound(_) => Self::NotFound,
                    CallError::InvalidArguments { .. } => Self::InvalidArguments,
                    CallError::Cancelled(_) => Self::Cancelled,
                    CallError::DeadlineExceeded { .. } => Self::Timeout,
                    CallError::RateLimited(_) => Self::RateLimited,
                    CallError::Failed { kind, .. } => Self::of_failure(*kind),
                };
                (outcome, Some(text(&error.to_string())))
            }
        }
    }
}

/// One call as the audit trail keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// When the call started, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub request_id: Arc<str>,
    pub agent_id: Arc<str>,
    /// The caller's account, so an operator can see its agents' records.
    pub account_id: Option<Arc<str>>,
    /// The resolved native name, or the name as requested when no tool answered to it.
    pub tool: Arc<str>,
    /// `None` when the tool was unknown.
    pub origin: Option<Origin>,
    /// SHA-256 (hex) of the JSON bytes of the input as recorded (sensitive values redacted).
    pub input_digest: String,
    pub outcome: AuditOutcome,
    pub latency_us: u64,
    pub error: Option<String>,
    /// The skill the call was made through (`<slug>@<version>`): a skill's host call.
    pub skill: Option<Arc<str>>,
}

/// Where finished records go. `record` runs on the call path: it must return at once (queue the
/// record, or drop and count it), never wait for storage.
pub trait AuditSink: Send + Sync {
    fn record(&self, record: AuditRecord);
}

/// How one call ended, as the call observer sees it: borrowed, so observing allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct CallObservation<'a> {
    /// The resolved native name; `None` when no tool answered (unknown or denied: they look alike).
    pub tool: Option<&'a Arc<str>>,
    pub origin: Option<Origin>,
    pub outcome: AuditOutcome,
    pub elapsed: Duration,
}

/// Told of every finished call (metrics). Like [`AuditSink::record`], `observe` runs on the call
/// path and must return at once.
pub trait CallObserver: Send + Sync {
    fn observe(&self, call: &CallObservation<'_>);
    /// A charge to `class` was refused (a call, or a request a front door charged itself).
    fn rate_limited(&self, class: super::LimitClass) {
        let _ = class;
    }
}

/// SHA-256 of the input's JSON encoding, in lowercase hex.
pub fn input_digest(input: &Value) -> String {
    let mut hasher = Sha256::new();
    // Serialized straight into the hash: the input's JSON is never held in memory whole. Writing
    // to a hash cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut hasher, input);
    let mut hex = [0u8; 64];
    let _ = hex::encode_to_slice(hasher.finalize(), &mut hex);
    // Hex digits are ASCII: the conversion cannot fail.
    std::str::from_utf8(&hex).map(str::to_owned).unwrap_or_default()
}

/// The record of the call in progress. If the call's future is dropped before it finishes (the
/// client went away), the record is still written, and the observer told, as `cancelled`.
pub(super) struct AuditTrail<'a> {
    sink: Option<&'a dyn AuditSink>,
    observer: Option<&'a dyn CallObserver>,
    record: Option<AuditRecord>,
    /// The resolved tool, kept apart from `record` so the observer sees it when audit is off.
    tool: Option<(Arc<str>, Origin)>,
    finished: bool,
    started: Instant,
}

impl<'a> AuditTrail<'a> {
    pub(super) fn begin(
        (sink, observer): (Option<&'a dyn AuditSink>, Option<&'a dyn CallObserver>),
        ctx: &CallContext,
        name: &str,
    ) -> Self {
        let record = sink.map(|_| AuditRecord {
            time_ms: chrono::Utc::now().timestamp_millis(),
            request_id: ctx.request_id.clone(),
            agent_id: ctx.caller.agent_id.clone(),
            account_id: ctx.caller.account_id.clone(),
            tool: Arc::from(name),
            origin: None,
            input_digest: String::new(),
            outcome: AuditOutcome::Cancelled,
            latency_us: 0,
            error: None,
            skill: ctx.caller.skill.as_ref().map(|skill| skill.name.clone()),
        });
        Self {
            sink,
            observer,
            record,
            tool: None,
            finished: false,
            started: Instant::now(),
        }
    }

    /// The input as recorded (redacted). Without a sink nothing is digested: the trail costs
    /// nothing when audit is off.
    pub(super) fn input(&mut self, recorded: &Value) {
        if let Some(record) = &mut self.record {
            record.input_digest = input_digest(recorded);
        }
    }

    /// The call reached a tool (or resource, or prompt): record its name and origin, and count
    /// it under its metrics series.
    pub(super) fn resolved(&mut self, record_name: &Arc<str>, series: &Arc<str>, origin: Origin) {
        if let Some(record) = &mut self.record {
            record.tool = record_name.clone();
            record.origin = Some(origin);
        }
        if self.observer.is_some() {
            self.tool = Some((series.clone(), origin));
        }
    }

    /// Writes the record; `secrets` are the call's sensitive values, scrubbed from its error.
    pub(super) fn finish(mut self, result: &Result<CallToolResult, CallError>, secrets: &Secrets) {
        let (outcome, error) = AuditOutcome::recorded(result, secrets);
        self.write(outcome, error);
    }

    fn write(&mut self, outcome: AuditOutcome, error: Option<String>) {
        self.finished = true;
        let elapsed = self.started.elapsed();
        if let Some(observer) = self.observer {
            observer.observe(&CallObservation {
                tool: self.tool.as_ref().map(|(name, _)| name),
                origin: self.tool.as_ref().map(|(_, origin)| *origin),
                outcome,
                elapsed,
            });
        }
        if let (Some(sink), Some(mut record)) = (self.sink, self.record.take()) {
            record.outcome = outcome;
            record.error = error;
            record.latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            sink.record(record);
        }
    }
}

impl Drop for AuditTrail<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.write(
                AuditOutcome::Cancelled,
                Some("the caller went away before the call finished".into()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digests_are_sha256_of_the_json_bytes() {
        // sha256("{}")
        assert_eq!(
            input_digest(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        assert_ne!(input_digest(&json!({"a": 1})), input_digest(&json!({"a": 2})));
        assert_eq!(input_digest(&json!({"a": 1})).len(), 64);
    }

    #[derive(Default)]
    struct Seen(std::sync::Mutex<Vec<(Option<String>, AuditOutcome)>>);

    impl CallObserver for Seen {
        fn observe(&self, call: &CallObservation<'_>) {
            let tool = call.tool.map(|t| t.to_string());
            self.0.lock().unwrap().push((tool, call.outcome));
        }
    }

    #[test]
    fn the_observer_hears_of_every_call_even_without_audit() {
        let seen = Seen::default();
        let ctx = CallContext::new(
            Arc::new(crate::registry::Caller::owner(crate::registry::ToolPolicy::allow_all())),
            "r",
            Duration::from_secs(1),
        );
        let unknown = AuditTrail::begin((None, Some(&seen)), &ctx, "nope");
        unknown.finish(&Err(CallError::UnknownTool("nope".into())), &Secrets::default());
        // A trail dropped before it finished: the caller went away.
        drop(AuditTrail::begin((None, Some(&seen)), &ctx, "gone"));
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![(None, AuditOutcome::UnknownTool), (None, AuditOutcome::Cancelled)],
            "a requested name never reaches the observer"
        );
    }

    #[test]
    fn outcomes_follow_the_result() {
        let ok = Ok(CallToolResult::success(vec![]));
        assert_eq!(AuditOutcome::of(&ok), (AuditOutcome::Ok, None));
        let unknown = Err(CallError::UnknownTool("x".into()));
        assert_eq!(AuditOutcome::of(&unknown).0, AuditOutcome::UnknownTool);
        let failed = Ok(CallToolResult::error(vec![rmcp::model::ContentBlock::text("boom")]));
        assert_eq!(AuditOutcome::of(&failed), (AuditOutcome::Error, Some("boom".into())));
        for outcome in AuditOutcome::ALL {
            assert_eq!(AuditOutcome::parse(outcome.as_str()), Some(outcome));
        }
    }
}

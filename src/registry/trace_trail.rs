//! The pipeline's side of tracing: the registry span of each call, the root span when the call
//! starts a trace, and handing the finished trace to the sink. Kept apart from `pipeline` so
//! the call path reads as a list of steps.

use std::sync::Arc;

use rmcp::model::CallToolResult;

use super::redact::Secrets;
use super::trace::{AttrValue, Layer, OpenSpan, RootSpan, Summary, TraceLink, TraceSink};
use super::{AuditOutcome, CallContext, CallError};

/// The spans of the call in progress; empty (and free) when the call is not traced.
pub(super) struct TraceTrail<'a> {
    sink: Option<&'a dyn TraceSink>,
    root: Option<RootSpan>,
    registry: Option<OpenSpan>,
    summary: Option<Summary>,
}

impl<'a> TraceTrail<'a> {
    pub(super) fn begin(sink: Option<&'a dyn TraceSink>, ctx: &CallContext, name: &str) -> Self {
        let (root, mut registry) = match (&ctx.trace, sink) {
            (TraceLink::Within(parent), _) => (None, Some(parent.span(Layer::Registry, "registry"))),
            (TraceLink::Start { front_door, at }, Some(_)) => {
                // The root's and its registry span's summary attributes (agent, request id, tool)
                // are added only to the traces that are kept (`FinishedTrace::complete`).
                let root = RootSpan::start(front_door.clone(), *at);
                let registry = root.context().span(Layer::Registry, "registry");
                (Some(root), Some(registry))
            }
            (TraceLink::Start { .. }, None) => (None, None),
        };
        if let (Some(span), Some(skill)) = (&mut registry, &ctx.caller.skill) {
            // A skill's host call: which skill made it, beside the agent it acts for.
            span.attr("skill", AttrValue::Str(skill.name.clone()));
        }
        let summary = registry.as_ref().map(|_| Summary {
            agent_id: ctx.caller.agent_id.clone(),
            account_id: ctx.caller.account_id.clone(),
            tool: Arc::from(name),
            request_id: ctx.request_id.clone(),
        });
        Self {
            sink,
            root,
            registry,
            summary,
        }
    }

    /// The call reached a tool (or resource, or prompt): name it and its origin.
    pub(super) fn resolved(&mut self, name: &Arc<str>, origin: super::Origin) {
        if let (Some(span), Some(summary)) = (&mut self.registry, &mut self.summary) {
            summary.tool = name.clone();
            span.attr("origin", AttrValue::Static(origin.as_str()));
        }
    }

    /// The context the rest of the pipeline runs in: spans opened from it (the tool's) are
    /// children of the registry span. `None` when the call is not traced.
    pub(super) fn context(&self, ctx: &CallContext) -> Option<CallContext> {
        let span = self.registry.as_ref()?;
        let mut inner = ctx.clone();
        inner.trace = TraceLink::Within(span.context());
        Some(inner)
    }

    /// Ends the call's spans; `secrets` are its sensitive values, scrubbed from its error.
    pub(super) fn finish(mut self, result: &Result<CallToolResult, CallError>, secrets: &Secrets) {
        let (outcome, error) = AuditOutcome::recorded(result, secrets);
        self.close(outcome, error.as_deref());
    }

    fn close(&mut self, outcome: AuditOutcome, error: Option<&str>) {
        let (Some(mut span), Some(summary)) = (self.registry.take(), self.summary.take()) else {
            return;
        };
        if self.root.is_none() {
            // A nested call's registry span: its tool and agent are not the trace's summary.
            span.attr("tool", AttrValue::Str(summary.tool.clone()));
            span.attr("agent", AttrValue::Str(summary.agent_id.clone()));
        }
        span.attr("outcome", AttrValue::Static(outcome.as_str()));
        if let Some(error) = error {
            span.fail(error);
        }
        span.end();
        if let (Some(mut root), Some(sink)) = (self.root.take(), self.sink) {
            if let Some(error) = error {
                root.span_mut().fail(error);
            }
            sink.record(root.finish(summary));
        }
    }
}

impl Drop for TraceTrail<'_> {
    fn drop(&mut self) {
        self.close(
            AuditOutcome::Cancelled,
            Some("the caller went away before the call finished"),
        );
    }
}

/// Ends the span of a tool's run: failed when the tool returned an error result, or the run was
/// cut short by the deadline or the caller. The error is scrubbed of `secrets`, the call's.
pub(super) fn end_tool_span(mut span: OpenSpan, result: &Result<CallToolResult, CallError>, secrets: &Secrets) {
    if let (_, Some(error)) = AuditOutcome::recorded(result, secrets) {
        span.fail(&error);
    }
    span.end();
}

//! Trace context: every call becomes a tree of spans (front door → registry pipeline → the
//! tool's run → an upstream server), collected in memory while the call runs and handed, when
//! the root span ends, to a sink that must not block (see `ops::traces`).
//!
//! Spans cost a few small allocations and one uncontended lock each; with no sink installed
//! nothing is created at all. Ids come from a per-thread generator seeded from the OS: they
//! only need to be unique, not secret (who may read a trace is checked on every read).

use std::cell::Cell;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Which part of agentos a span covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// The front door: MCP over HTTP or stdio, the plain form, a REST route, the scheduler...
    Adapter,
    /// The pipeline: resolve, authorize, validate, approve.
    Registry,
    /// The provider's run of the tool.
    Tool,
    /// The call a proxied tool makes to its upstream MCP server.
    Upstream,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Adapter => "adapter",
            Layer::Registry => "registry",
            Layer::Tool => "tool",
            Layer::Upstream => "upstream",
        }
    }

    /// The OpenTelemetry span kind: the front door serves, an upstream call is a client.
    pub fn kind(self) -> &'static str {
        match self {
            Layer::Adapter => "server",
            Layer::Registry | Layer::Tool => "internal",
            Layer::Upstream => "client",
        }
    }
}

/// An attribute value: shared strings are cloned by reference count, never copied.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(Arc<str>),
    Static(&'static str),
    Int(i64),
}

/// A span's name: a literal, or shared text (a tool's name) cloned by reference count, so naming
/// a span allocates nothing on the call path.
#[derive(Debug, Clone)]
pub enum SpanName {
    Static(&'static str),
    Shared(Arc<str>),
}

/// Names are equal by their text, however they are held.
impl PartialEq for SpanName {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl Eq for SpanName {}

impl PartialEq<&str> for SpanName {
    fn eq(&self, other: &&str) -> bool {
        &**self == *other
    }
}

impl Default for SpanName {
    fn default() -> Self {
        SpanName::Static("")
    }
}

impl Deref for SpanName {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            SpanName::Static(text) => text,
            SpanName::Shared(text) => text,
        }
    }
}

impl fmt::Display for SpanName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl From<&'static str> for SpanName {
    fn from(text: &'static str) -> Self {
        SpanName::Static(text)
    }
}

impl From<Arc<str>> for SpanName {
    fn from(text: Arc<str>) -> Self {
        SpanName::Shared(text)
    }
}

impl From<String> for SpanName {
    fn from(text: String) -> Self {
        SpanName::Shared(Arc::from(text))
    }
}

/// One finished span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub span_id: u64,
    /// 0 for the root.
    pub parent_id: u64,
    pub name: SpanName,
    pub layer: Layer,
    pub start_unix_ns: i64,
    pub duration_ns: u64,
    /// `None`: the span ended ok.
    pub error: Option<String>,
    pub attributes: Vec<(&'static str, AttrValue)>,
}

/// A whole trace, as the sink receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedTrace {
    pub trace_id: u128,
    pub start_unix_ns: i64,
    pub duration_ns: u64,
    /// The root span's name: the front door.
    pub root: SpanName,
    pub agent_id: Arc<str>,
    pub account_id: Option<Arc<str>>,
    /// The resolved native name, or the name as requested when no tool answered to it.
    pub tool: Arc<str>,
    pub request_id: Arc<str>,
    pub error: Option<String>,
    pub spans: Vec<SpanRecord>,
}

impl FinishedTrace {
    /// Adds the summary's attributes to the spans that share it: agent, request id and tool to
    /// the root, tool and agent to the root's registry span. The call path leaves them out (most
    /// successful traces are never kept); a sink calls this for the traces it keeps.
    pub fn complete(&mut self) {
        let root_id = self.spans.iter().find(|s| s.parent_id == 0).map(|s| s.span_id);
        for span in &mut self.spans {
            if span.parent_id == 0 {
                span.attributes.push(("agent", AttrValue::Str(self.agent_id.clone())));
                span.attributes
                    .push(("request_id", AttrValue::Str(self.request_id.clone())));
                span.attributes.push(("tool", AttrValue::Str(self.tool.clone())));
            } else if span.layer == Layer::Registry && Some(span.parent_id) == root_id {
                span.attributes.push(("tool", AttrValue::Str(self.tool.clone())));
                span.attributes.push(("agent", AttrValue::Str(self.agent_id.clone())));
            }
        }
    }
}

/// Where finished traces go. `record` runs on the call path: queue or drop, never wait.
pub trait TraceSink: Send + Sync {
    fn record(&self, trace: FinishedTrace);
}

pub fn trace_id_hex(id: u128) -> String {
    format!("{id:032x}")
}

pub fn span_id_hex(id: u64) -> String {
    format!("{id:016x}")
}

/// Whether `text` is a trace id: 32 lowercase hex digits.
pub fn is_trace_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A fresh non-zero 64-bit id (splitmix64 over a per-thread state seeded from the OS).
pub fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut seed = [0u8; 8];
            // Without OS randomness, time still makes ids unique enough per process.
            if getrandom::fill(&mut seed).is_err() {
                seed = (Instant::now().elapsed().as_nanos() as u64 ^ std::process::id() as u64).to_le_bytes();
            }
            u64::from_le_bytes(seed)
        });
    }
    STATE.with(|state| {
        loop {
            let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
            state.set(next);
            let mut z = next;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    })
}

/// The spans of one trace collected so far.
pub(crate) struct Recorder {
    trace_id: u128,
    base: Instant,
    base_unix_ns: i64,
    spans: Mutex<Vec<SpanRecord>>,
}

impl Recorder {
    fn new(started: Instant) -> Arc<Self> {
        let now_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| i64::try_from(since.as_nanos()).unwrap_or(i64::MAX));
        let elapsed = i64::try_from(started.elapsed().as_nanos()).unwrap_or(0);
        Arc::new(Self {
            trace_id: (u128::from(random_u64()) << 64) | u128::from(random_u64()),
            base: started,
            base_unix_ns: now_ns - elapsed,
            spans: Mutex::new(Vec::with_capacity(4)),
        })
    }

    fn unix_ns(&self, at: Instant) -> i64 {
        self.base_unix_ns + i64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(0)
    }

    fn push(&self, span: SpanRecord) {
        self.spans.lock().unwrap_or_else(|p| p.into_inner()).push(span);
    }

    fn take(&self) -> Vec<SpanRecord> {
        std::mem::take(&mut *self.spans.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A position inside a trace: spans opened from here are children of `parent`.
#[derive(Clone)]
pub struct TraceContext {
    recorder: Arc<Recorder>,
    parent: u64,
}

impl TraceContext {
    pub fn trace_id(&self) -> u128 {
        self.recorder.trace_id
    }

    /// Opens a child span of this position; it is recorded when it ends or is dropped.
    pub fn span(&self, layer: Layer, name: impl Into<SpanName>) -> OpenSpan {
        OpenSpan::open(self.recorder.clone(), self.parent, layer, name.into(), Instant::now())
    }
}

/// How a call context relates to tracing.
#[derive(Clone)]
pub enum TraceLink {
    /// No trace yet: the registry call starts one whose root span is named for the front door
    /// and began when the context was made.
    Start { front_door: SpanName, at: Instant },
    /// Inside a trace (a nested call, a proxied tool's run).
    Within(TraceContext),
}

impl TraceLink {
    pub fn start(front_door: impl Into<SpanName>) -> Self {
        TraceLink::Start {
            front_door: front_door.into(),
            at: Instant::now(),
        }
    }

    /// A child span of the current position, if this call is being traced (`name` is only
    /// made then).
    pub fn span<N: Into<SpanName>>(&self, layer: Layer, name: impl FnOnce() -> N) -> Option<OpenSpan> {
        match self {
            TraceLink::Within(context) => Some(context.span(layer, name())),
            TraceLink::Start { .. } => None,
        }
    }

    pub fn trace_id(&self) -> Option<u128> {
        match self {
            TraceLink::Within(context) => Some(context.trace_id()),
            TraceLink::Start { .. } => None,
        }
    }
}

/// A span in progress. Dropped without [`OpenSpan::end`], it is recorded as abandoned (the
/// caller went away and the call's future was dropped).
pub struct OpenSpan {
    recorder: Arc<Recorder>,
    record: Option<SpanRecord>,
    started: Instant,
}

impl OpenSpan {
    fn open(recorder: Arc<Recorder>, parent: u64, layer: Layer, name: SpanName, started: Instant) -> Self {
        let record = SpanRecord {
            span_id: random_u64(),
            parent_id: parent,
            name,
            layer,
            start_unix_ns: recorder.unix_ns(started),
            duration_ns: 0,
            error: None,
            // Grown on the first attribute: tool spans usually have none.
            attributes: Vec::new(),
        };
        Self {
            recorder,
            record: Some(record),
            started,
        }
    }

    /// Where this span's children go.
    pub fn context(&self) -> TraceContext {
        TraceContext {
            recorder: self.recorder.clone(),
            parent: self.record.as_ref().map_or(0, |r| r.span_id),
        }
    }

    pub fn attr(&mut self, key: &'static str, value: AttrValue) {
        if let Some(record) = &mut self.record {
            record.attributes.push((key, value));
        }
    }

    /// Marks the span failed with `message` (cut to a bounded length).
    pub fn fail(&mut self, message: &str) {
        if let Some(record) = &mut self.record {
            record.error = Some(super::truncate(message, super::MAX_ERROR_CHARS));
        }
    }

    pub fn end(mut self) {
        self.close();
    }

    fn close(&mut self) {
        if let Some(mut record) = self.record.take() {
            record.duration_ns = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.recorder.push(record);
        }
    }
}

impl Drop for OpenSpan {
    fn drop(&mut self) {
        if let Some(record) = &mut self.record {
            record
                .error
                .get_or_insert_with(|| "abandoned: the caller went away".to_owned());
        }
        self.close();
    }
}

/// The root span of a trace started by a registry call. Ending it hands the trace to the sink.
pub(crate) struct RootSpan {
    span: OpenSpan,
}

impl RootSpan {
    pub(crate) fn start(front_door: SpanName, at: Instant) -> Self {
        let recorder = Recorder::new(at);
        Self {
            span: OpenSpan::open(recorder, 0, Layer::Adapter, front_door, at),
        }
    }

    pub(crate) fn context(&self) -> TraceContext {
        self.span.context()
    }

    pub(crate) fn span_mut(&mut self) -> &mut OpenSpan {
        &mut self.span
    }

    /// Ends the root and assembles the trace from every span ended so far (a span still open
    /// after its root ended is left out: it belongs to work that outlived the call).
    pub(crate) fn finish(self, summary: Summary) -> FinishedTrace {
        let recorder = self.span.recorder.clone();
        let root = self
            .span
            .record
            .as_ref()
            .map(|r| (r.name.clone(), r.start_unix_ns, r.error.clone()));
        self.span.end();
        let spans = recorder.take();
        let (root, start_unix_ns, error) = root.unwrap_or_default();
        let duration_ns = spans.iter().find(|s| s.parent_id == 0).map_or(0, |s| s.duration_ns);
        FinishedTrace {
            trace_id: recorder.trace_id,
            start_unix_ns,
            duration_ns,
            root,
            agent_id: summary.agent_id,
            account_id: summary.account_id,
            tool: summary.tool,
            request_id: summary.request_id,
            error,
            spans,
        }
    }
}

/// What a trace's summary says beyond its spans.
pub(crate) struct Summary {
    pub agent_id: Arc<str>,
    pub account_id: Option<Arc<str>>,
    pub tool: Arc<str>,
    pub request_id: Arc<str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_nest_under_their_parents_and_the_root_carries_the_trace() {
        let mut root = RootSpan::start("mcp.http".into(), Instant::now());
        let registry = root.context().span(Layer::Registry, "registry");
        let tool = registry.context().span(Layer::Tool, "mcp.inner.echo");
        let mut upstream = tool.context().span(Layer::Upstream, "upstream inner");
        upstream.attr("server", AttrValue::Static("inner"));
        upstream.fail("boom");
        let (registry_id, tool_id) = (registry.context().parent, tool.context().parent);
        upstream.end();
        tool.end();
        drop(registry); // not ended: recorded as abandoned
        root.span_mut().fail("the call failed");
        let trace = root.finish(Summary {
            agent_id: "a".into(),
            account_id: None,
            tool: "mcp.inner.echo".into(),
            request_id: "r".into(),
        });
        assert_eq!(trace.spans.len(), 4);
        assert_eq!(trace.root, "mcp.http");
        assert_eq!(trace.error.as_deref(), Some("the call failed"));
        let by_layer = |layer| trace.spans.iter().find(|s| s.layer == layer).unwrap();
        let root_id = by_layer(Layer::Adapter).span_id;
        assert_eq!(by_layer(Layer::Adapter).parent_id, 0);
        assert_eq!(by_layer(Layer::Registry).parent_id, root_id);
        assert_eq!(by_layer(Layer::Registry).span_id, registry_id);
        assert_eq!(by_layer(Layer::Tool).parent_id, registry_id);
        assert_eq!(by_layer(Layer::Upstream).parent_id, tool_id);
        assert_eq!(by_layer(Layer::Upstream).error.as_deref(), Some("boom"));
        assert!(
            by_layer(Layer::Registry)
                .error
                .as_deref()
                .unwrap()
                .contains("abandoned")
        );
        assert!(trace.spans.iter().all(|s| s.start_unix_ns >= trace.start_unix_ns));
        assert_eq!(trace_id_hex(trace.trace_id).len(), 32);
    }

    #[test]
    fn completing_a_kept_trace_adds_the_summary_to_the_root_and_its_registry_span_only() {
        let root = RootSpan::start("http.plain".into(), Instant::now());
        let registry = root.context().span(Layer::Registry, "registry");
        let tool = registry.context().span(Layer::Tool, "agentos.workflow_run");
        let mut nested = tool.context().span(Layer::Registry, "registry");
        nested.attr("tool", AttrValue::Static("agentos.time_now"));
        nested.end();
        tool.end();
        registry.end();
        let mut trace = root.finish(Summary {
            agent_id: "agent-a".into(),
            account_id: None,
            tool: "agentos.workflow_run".into(),
            request_id: "req-1".into(),
        });
        trace.complete();
        let attributes = |span: &SpanRecord| -> Vec<(&str, String)> {
            span.attributes
                .iter()
                .map(|(key, value)| {
                    let text = match value {
                        AttrValue::Str(text) => text.to_string(),
                        AttrValue::Static(text) => (*text).to_owned(),
                        AttrValue::Int(number) => number.to_string(),
                    };
                    (*key, text)
                })
                .collect()
        };
        let root = trace.spans.iter().find(|s| s.parent_id == 0).unwrap();
        assert_eq!(
            attributes(root),
            [
                ("agent", "agent-a".to_owned()),
                ("request_id", "req-1".to_owned()),
                ("tool", "agentos.workflow_run".to_owned())
            ]
        );
        let registries: Vec<&SpanRecord> = trace.spans.iter().filter(|s| s.layer == Layer::Registry).collect();
        let (outer, inner): (Vec<_>, Vec<_>) = registries.iter().partition(|s| s.parent_id == root.span_id);
        assert_eq!(
            attributes(outer[0]),
            [
                ("tool", "agentos.workflow_run".to_owned()),
                ("agent", "agent-a".to_owned())
            ]
        );
        assert_eq!(attributes(inner[0]), [("tool", "agentos.time_now".to_owned())]);
    }

    #[test]
    fn ids_are_nonzero_and_distinct() {
        let ids: std::collections::BTreeSet<u64> = (0..1000).map(|_| random_u64()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&0));
    }

    #[test]
    fn trace_ids_are_32_lowercase_hex_digits() {
        assert!(is_trace_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_trace_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_trace_id("0123"));
        assert!(!is_trace_id("0123456789abcdef0123456789abcdeg"));
    }
}

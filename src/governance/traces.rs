//! Traces: the queue that takes finished span trees off the call path, the background task that
//! writes them in batches (one transaction each), prunes them by age and count and hands them to
//! the OTLP exporter, and `agentos.traces_query` (REST's `GET /api/traces*` calls it).
//!
//! The span model lives with the call context (`registry::trace`): a trace is one call, its
//! spans the front door (`adapter`), the pipeline (`registry`), the provider's run (`tool`) and,
//! for proxied tools, the upstream server's call (`upstream`); nested calls (workflow steps) are
//! children of the step's tool span in the same trace.

pub mod otlp;
mod query;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(super) use query::tools;

use super::Governance;
use crate::ops::metrics::RecordLoss;
use crate::registry::trace::{AttrValue, FinishedTrace, SpanRecord, TraceSink, span_id_hex, trace_id_hex};
use crate::store::{SpanRow, Store, TraceRow, now_ms};

/// Traces waiting to be written; past this, new ones are dropped (and counted), never waited for.
const QUEUE: usize = 16_384;
/// Traces per store write (one transaction).
const BATCH: usize = 4096;
/// After writing a partial batch the writer waits this long for more: fewer, larger transactions
/// cost the store far less than one per handful of calls (traces are not acknowledged writes).
const LINGER: Duration = Duration::from_millis(200);
const PURGE_EVERY: Duration = Duration::from_secs(300);
const HOUR_MS: i64 = 3600 * 1000;

/// The pipeline's [`TraceSink`]: a bounded queue drained by [`start`]'s task.
struct TraceQueue {
    traces: mpsc::Sender<FinishedTrace>,
    ok_limit: OkLimit,
    loss: Arc<RecordLoss>,
}

/// At most `per_second` successful traces a second (0: no limit). Failed calls always pass: they
/// are the traces an operator opens.
struct OkLimit {
    per_second: u64,
    second: AtomicU64,
    taken: AtomicU64,
}

impl OkLimit {
    fn new(per_second: u32) -> Self {
        Self {
            per_second: u64::from(per_second),
            second: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }
    }

    /// Whether a successful trace that started at `start_unix_ns` is stored.
    fn admits(&self, start_unix_ns: i64) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let second = u64::try_from(start_unix_ns / 1_000_000_000).unwrap_or(0);
        let current = self.second.load(Ordering::Relaxed);
        if second > current
            && self
                .second
                .compare_exchange(current, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.taken.store(0, Ordering::Relaxed);
        }
        self.taken.fetch_add(1, Ordering::Relaxed) < self.per_second
    }
}

impl TraceSink for TraceQueue {
    fn record(&self, mut trace: FinishedTrace) {
        if trace.error.is_none() && !self.ok_limit.admits(trace.start_unix_ns) {
            self.loss.traces_sampled_out.fetch_add(1, Ordering::Relaxed);
            return;
        }
        trace.complete();
        if let Err(error) = self.traces.try_send(trace) {
            let dropped = self.loss.traces_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // The first drop and then every thousandth: a full queue must not flood the log too.
            let full = matches!(error, mpsc::error::TrySendError::Full(_));
            if full && (dropped == 1 || dropped.is_multiple_of(1000)) {
                tracing::warn!(dropped, "trace queue full: traces dropped");
            }
        }
    }
}

/// Installs the trace queue on `registry` and writes what it receives until `shutdown`; then
/// writes (and exports) what is queued and ends. `None` when traces are off or already started.
pub(super) fn start(gov: &Governance, shutdown: CancellationToken) -> Option<JoinHandle<()>> {
    let registry = gov.registry()?;
    let config = &gov.config.traces;
    if !config.enabled {
        return None;
    }
    let (sender, receiver) = mpsc::channel(QUEUE);
    let queue = Arc::new(TraceQueue {
        traces: sender,
        ok_limit: OkLimit::new(config.max_ok_per_second),
        loss: gov.loss.clone(),
    });
    if !registry.set_trace_sink(queue) {
        return None;
    }
    let writer = Writer {
        store: gov.store.clone(),
        retention_ms: i64::from(config.retention_hours) * HOUR_MS,
        max_traces: config.max_traces,
        export: otlp::start(config),
    };
    Some(tokio::spawn(writer.run(receiver, shutdown)))
}

struct Writer {
    store: Arc<dyn Store>,
    retention_ms: i64,
    max_traces: u64,
    export: Option<otlp::Export>,
}

impl Writer {
    async fn run(mut self, mut traces: mpsc::Receiver<FinishedTrace>, shutdown: CancellationToken) {
        let mut purge = tokio::time::interval(PURGE_EVERY);
        purge.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                received = traces.recv_many(&mut batch, BATCH) => {
                    if received == 0 {
                        break;
                    }
                    self.write(&mut batch).await;
                    if received < BATCH {
                        tokio::select! {
                            _ = shutdown.cancelled() => {}
                            _ = tokio::time::sleep(LINGER) => {}
                        }
                    }
                }
                _ = purge.tick() => self.purge().await,
            }
        }
        // Refuse new traces, then write every one already queued.
        traces.close();
        while traces.recv_many(&mut batch, BATCH).await > 0 {
            self.write(&mut batch).await;
        }
        if let Some(export) = self.export.take() {
            export.finish().await;
        }
        tracing::debug!("traces flushed");
    }

    async fn write(&self, batch: &mut Vec<FinishedTrace>) {
        let rows: Vec<TraceRow> = batch.iter().map(row_of).collect();
        let count = rows.len();
        if let Err(error) = self.store.traces_append(rows).await {
            tracing::error!(%error, lost = count, "could not write traces");
        }
        let finished = std::mem::take(batch);
        if let Some(export) = &self.export {
            export.send(finished);
        }
    }

    async fn purge(&self) {
        match self
            .store
            .traces_purge(now_ms() - self.retention_ms, self.max_traces)
            .await
        {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "purged old traces"),
            Err(error) => tracing::warn!(%error, "could not purge old traces"),
        }
    }
}

fn row_of(trace: &FinishedTrace) -> TraceRow {
    TraceRow {
        seq: 0,
        trace_id: trace_id_hex(trace.trace_id),
        started_ms: trace.start_unix_ns / 1_000_000,
        duration_us: i64::try_from(trace.duration_ns / 1000).unwrap_or(i64::MAX),
        root: trace.root.to_string(),
        agent_id: trace.agent_id.to_string(),
        account_id: trace.account_id.as_deref().map(str::to_owned),
        tool: trace.tool.to_string(),
        status: if trace.error.is_some() { "error" } else { "ok" }.to_owned(),
        error: trace.error.clone(),
        request_id: trace.request_id.to_string(),
        spans: trace.spans.iter().map(span_row).collect(),
    }
}

fn span_row(span: &SpanRecord) -> SpanRow {
    SpanRow {
        span_id: span_id_hex(span.span_id),
        parent_id: (span.parent_id != 0).then(|| span_id_hex(span.parent_id)),
        name: span.name.to_string(),
        layer: span.layer.as_str().to_owned(),
        kind: span.layer.kind().to_owned(),
        start_ns: span.start_unix_ns,
        duration_ns: i64::try_from(span.duration_ns).unwrap_or(i64::MAX),
        error: span.error.clone(),
        attributes: Value::Object(attributes_json(&span.attributes)).to_string(),
    }
}

fn attributes_json(attributes: &[(&'static str, AttrValue)]) -> Map<String, Value> {
    attributes
        .iter()
        .map(|(key, value)| {
            let value = match value {
                AttrValue::Str(text) => Value::String(text.to_string()),
                AttrValue::Static(text) => Value::String((*text).to_owned()),
                AttrValue::Int(number) => Value::from(*number),
            };
            ((*key).to_owned(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::OkLimit;

    #[test]
    fn successful_traces_are_limited_per_second() {
        let limit = OkLimit::new(2);
        let second = 1_000_000_000i64;
        assert!(limit.admits(5 * second));
        assert!(limit.admits(5 * second + 1));
        assert!(!limit.admits(5 * second + 2), "the third in one second");
        assert!(limit.admits(6 * second), "a new second");
        let unlimited = OkLimit::new(0);
        assert!((0..1000).all(|_| unlimited.admits(second)));
    }
}

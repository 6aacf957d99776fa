//! OTLP export: finished traces posted to `<otlp_endpoint>/v1/traces` as OTLP/HTTP **JSON**
//! (`resourceSpans` → `scopeSpans` → `spans`). JSON rather than protobuf because it needs no
//! generated code or extra dependency, every OTLP/HTTP receiver (the OpenTelemetry Collector,
//! Jaeger, Tempo...) accepts it, and it can be read in a packet capture. Per the OTLP JSON
//! mapping, ids are lowercase hex, 64-bit integers (timestamps, `intValue`) are strings, and
//! `kind` and `status.code` are the enum numbers.
//!
//! Export runs in its own task fed by a small bounded queue: a slow or absent receiver costs
//! dropped exports (logged at warn, at most once a minute), never a slower call or store write.
//! A failed post is not retried.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::TracesConfig;
use crate::registry::trace::{AttrValue, FinishedTrace, Layer, SpanRecord, span_id_hex, trace_id_hex};

/// Batches of traces waiting to be posted; past this, batches are dropped.
const QUEUE: usize = 64;
/// Batches merged into one post.
const MERGE: usize = 8;
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for the last posts.
const FLUSH_WAIT: Duration = Duration::from_secs(5);
const WARN_EVERY: Duration = Duration::from_secs(60);

/// The OTLP span kind numbers (`SPAN_KIND_*`).
fn kind_number(layer: Layer) -> u8 {
    match layer.kind() {
        "server" => 2,
        "client" => 3,
        _ => 1,
    }
}

fn attribute(key: &str, value: &AttrValue) -> Value {
    let value = match value {
        AttrValue::Str(text) => json!({ "stringValue": &**text }),
        AttrValue::Static(text) => json!({ "stringValue": text }),
        AttrValue::Int(number) => json!({ "intValue": number.to_string() }),
    };
    json!({ "key": key, "value": value })
}

fn span_json(trace_id: &str, span: &SpanRecord) -> Value {
    let end = span
        .start_unix_ns
        .saturating_add(i64::try_from(span.duration_ns).unwrap_or(i64::MAX));
    let mut attributes: Vec<Value> = span.attributes.iter().map(|(k, v)| attribute(k, v)).collect();
    attributes.push(attribute("agentos.layer", &AttrValue::Static(span.layer.as_str())));
    let status = match &span.error {
        None => json!({ "code": 1 }),
        Some(message) => json!({ "code": 2, "message": message }),
    };
    let mut out = json!({
        "traceId": trace_id,
        "spanId": span_id_hex(span.span_id),
        "name": &*span.name,
        "kind": kind_number(span.layer),
        "startTimeUnixNano": span.start_unix_ns.max(0).to_string(),
        "endTimeUnixNano": end.max(0).to_string(),
        "attributes": attributes,
        "status": status,
    });
    if span.parent_id != 0 {
        out["parentSpanId"] = Value::String(span_id_hex(span.parent_id));
    }
    out
}

/// One OTLP `ExportTraceServiceRequest` carrying `traces`.
pub fn encode(traces: &[FinishedTrace], service_name: &str) -> Value {
    let spans: Vec<Value> = traces
        .iter()
        .flat_map(|trace| {
            let id = trace_id_hex(trace.trace_id);
            trace.spans.iter().map(move |span| span_json(&id, span))
        })
        .collect();
    json!({
        "resourceSpans": [{
            "resource": {
                "attributes": [attribute("service.name", &AttrValue::Str(service_name.into()))],
            },
            "scopeSpans": [{
                "scope": { "name": "agentos", "version": env!("CARGO_PKG_VERSION") },
                "spans": spans,
            }],
        }],
    })
}

/// The running exporter: its queue and task.
pub(super) struct Export {
    batches: mpsc::Sender<Vec<FinishedTrace>>,
    task: JoinHandle<()>,
}

impl Export {
    /// Queues a batch for export; drops it when the exporter is behind.
    pub(super) fn send(&self, batch: Vec<FinishedTrace>) {
        if self.batches.try_send(batch).is_err() {
            tracing::debug!("OTLP export queue full: a batch of traces was not exported");
        }
    }

    /// Posts what is queued (waiting a few seconds at most) and stops.
    pub(super) async fn finish(self) {
        drop(self.batches);
        if tokio::time::timeout(FLUSH_WAIT, self.task).await.is_err() {
            tracing::warn!("OTLP export did not finish in time at shutdown; the last traces were not exported");
        }
    }
}

/// Starts the exporter when `otlp_endpoint` is set.
pub(super) fn start(config: &TracesConfig) -> Option<Export> {
    let endpoint = config.otlp_endpoint.trim().trim_end_matches('/');
    if endpoint.is_empty() {
        return None;
    }
    let url = if endpoint.ends_with("/v1/traces") {
        endpoint.to_owned()
    } else {
        format!("{endpoint}/v1/traces")
    };
    let mut headers = reqwest::header::HeaderMap::new();
    for (name, value) in &config.otlp_headers {
        match (
            reqwest::header::HeaderName::from_bytes(name.as_bytes()),
            reqwest::header::HeaderValue::from_str(value),
        ) {
            (Ok(name), Ok(value)) => {
                headers.insert(name, value);
            }
            _ => tracing::warn!(header = %name, "ignoring an invalid OTLP header"),
        }
    }
    crate::tls::install_crypto_provider();
    let client = match reqwest::Client::builder()
        .timeout(TIMEOUT)
        .default_headers(headers)
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(%error, "cannot build the OTLP client; traces are not exported");
            return None;
        }
    };
    let (batches, receiver) = mpsc::channel(QUEUE);
    let task = tokio::spawn(export_loop(client, url, config.service_name.clone(), receiver));
    Some(Export { batches, task })
}

async fn export_loop(
    client: reqwest::Client,
    url: String,
    service_name: String,
    mut batches: mpsc::Receiver<Vec<FinishedTrace>>,
) {
    let mut received = Vec::with_capacity(MERGE);
    let mut last_warning: Option<Instant> = None;
    let mut failures = 0u64;
    while batches.recv_many(&mut received, MERGE).await > 0 {
        let traces: Vec<FinishedTrace> = received.drain(..).flatten().collect();
        let body = encode(&traces, &service_name).to_string();
        let outcome = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let problem = match outcome {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("the receiver answered {}", response.status())),
            Err(error) => Some(error.to_string()),
        };
        if let Some(problem) = problem {
            failures += 1;
            if last_warning.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                last_warning = Some(Instant::now());
                tracing::warn!(url = %url, failures, %problem, "OTLP trace export failed; those traces were dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::trace::FinishedTrace;
    use std::sync::Arc;

    fn span(id: u64, parent: u64, layer: Layer, name: &'static str, error: Option<&str>) -> SpanRecord {
        SpanRecord {
            span_id: id,
            parent_id: parent,
            name: name.into(),
            layer,
            start_unix_ns: 1_700_000_000_000_000_000 + i64::try_from(id).unwrap(),
            duration_ns: 1500,
            error: error.map(str::to_owned),
            attributes: vec![("server", AttrValue::Static("inner")), ("n", AttrValue::Int(3))],
        }
    }

    #[test]
    fn traces_encode_as_otlp_json() {
        let trace = FinishedTrace {
            trace_id: 0xabc,
            start_unix_ns: 1_700_000_000_000_000_001,
            duration_ns: 1500,
            root: "mcp.http".into(),
            agent_id: Arc::from("a"),
            account_id: None,
            tool: Arc::from("mcp.inner.echo"),
            request_id: Arc::from("r"),
            error: None,
            spans: vec![
                span(1, 0, Layer::Adapter, "mcp.http", None),
                span(2, 1, Layer::Upstream, "upstream inner", Some("boom")),
            ],
        };
        let body = encode(&[trace], "svc");
        let resource = &body["resourceSpans"][0];
        assert_eq!(
            resource["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "svc"}})
        );
        let spans = resource["scopeSpans"][0]["spans"].as_array().unwrap();
        assert_eq!(spans.len(), 2);
        let (root, upstream) = (&spans[0], &spans[1]);
        assert_eq!(root["traceId"], "00000000000000000000000000000abc");
        assert_eq!(root["spanId"], "0000000000000001");
        assert!(root.get("parentSpanId").is_none(), "a root has no parent");
        assert_eq!(root["kind"], 2);
        assert_eq!(root["status"], json!({"code": 1}));
        assert_eq!(root["startTimeUnixNano"], "1700000000000000001");
        assert_eq!(root["endTimeUnixNano"], "1700000000000001501");
        assert_eq!(upstream["parentSpanId"], "0000000000000001");
        assert_eq!(upstream["kind"], 3);
        assert_eq!(upstream["status"], json!({"code": 2, "message": "boom"}));
        let attributes = upstream["attributes"].as_array().unwrap();
        assert!(attributes.contains(&json!({"key": "server", "value": {"stringValue": "inner"}})));
        assert!(attributes.contains(&json!({"key": "n", "value": {"intValue": "3"}})));
        assert!(attributes.contains(&json!({"key": "agentos.layer", "value": {"stringValue": "upstream"}})));
    }
}

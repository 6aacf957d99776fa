//! What every HTTP request gets on its way in and out: an id (the caller's `X-Request-Id` when it
//! is sane, else a fresh one) and, when metrics are on, its count and latency by route template.
//! The id names the request's `tracing` span, so every log line written while serving it
//! carries it; it is echoed in the response; and it travels in the request's extensions to the
//! tool calls the request makes (plain form, REST routes, MCP over HTTP), whose audit records and
//! traces then carry the same id.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::ops::metrics::{Metrics, UNMATCHED};

pub(super) const REQUEST_ID_HEADER: &str = "x-request-id";

/// The id of the HTTP request being served, in its extensions.
#[derive(Debug, Clone)]
pub struct HttpRequestId(pub Arc<str>);

/// The caller's `X-Request-Id` when it is sane (1-128 visible ASCII characters), else a fresh one.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// The request's id: the one this layer put in its extensions, else read from the headers.
pub(crate) fn of(headers: &HeaderMap, extensions: &axum::http::Extensions) -> String {
    match extensions.get::<HttpRequestId>() {
        Some(HttpRequestId(id)) => id.to_string(),
        None => request_id(headers),
    }
}

/// The request's id as a handler argument.
pub(super) struct RequestId(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestId(of(&parts.headers, &parts.extensions)))
    }
}

/// The outermost middleware, one layer for what every request needs (each layer costs a boxed
/// future and a clone of the service beneath it): the id, a debug span, the metrics of the
/// answer (`None` when `[metrics] enabled = false`) and the echoed id.
pub(super) async fn front(State(metrics): State<Option<Arc<Metrics>>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id: Arc<str> = request_id(request.headers()).into();
    request.extensions_mut().insert(HttpRequestId(id.clone()));
    let method = request.method().clone();
    // The matched route template, never the raw path (anyone can vary that, and every variant
    // would be a series). `Router::layer` wraps each route, so routing has happened already.
    // Cloning `MatchedPath` copies an `Arc`, not the text.
    let route = metrics
        .as_ref()
        .and_then(|_| request.extensions().get::<MatchedPath>().cloned());
    // Debug: at the default level every request would pay for formatting this span's fields
    // (they are only evaluated when the span is enabled).
    let span = tracing::debug_span!("request", request_id = %id, method = %method, path = %request.uri().path());
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status().as_u16();
    if let Some(metrics) = &metrics {
        let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
        metrics.record_http(&method, route, status, started.elapsed());
    }
    // Debug, not info: a line per request would cost every request a write at the default level,
    // and metrics, traces and the audit trail already account for each one. Turn it on with
    // `AGENTOS_LOG=info,agentos::adapters::http::request=debug`.
    span.in_scope(|| {
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(status, latency_ms, "request served")
    });
    // The id passed `request_id`'s check or is a fresh uuid, so it is a valid header value.
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("abc123"));
        assert_eq!(request_id(&headers), "abc123");
        headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static("has space"));
        assert_eq!(request_id(&headers).len(), 32);
        let mut extensions = axum::http::Extensions::new();
        extensions.insert(HttpRequestId("from-layer".into()));
        assert_eq!(of(&headers, &extensions), "from-layer");
    }
}

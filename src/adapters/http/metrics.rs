//! Metrics at the HTTP front door: the outermost layer that counts every answer (the Host
//! guard's, authentication's 401s and 429s and the body cap's 413s included) by route template,
//! and `GET /metrics`, the Prometheus text format of the collector.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{HttpState, error_response};
use crate::adapters::mcp::RequestIdentity;
use crate::ops::metrics::{CONTENT_TYPE, Metrics, UNMATCHED};

/// The layer: times the request to its response head and records it under the matched route
/// template, never the raw path (anyone can vary that, and every variant would be a series).
pub(super) async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // Cloning `MatchedPath` copies an `Arc`, not the text.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    let route = route.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    metrics.record_http(&method, route, response.status().as_u16(), started.elapsed());
    response
}

/// `GET /metrics`. When `[metrics] public` is false, authentication already demanded a token;
/// a caller that is not an ops-admin is told the route does not exist.
pub(super) async fn scrape(State(state): State<HttpState>, request: Request) -> Response {
    let metrics = &state.metrics;
    if !metrics.public() {
        let admin = request
            .extensions()
            .get::<RequestIdentity>()
            .is_some_and(|identity| identity.caller.is_admin());
        if !admin {
            return error_response(StatusCode::NOT_FOUND, "not_found", "no route for GET /metrics");
        }
    }
    let mut response = metrics.render().await.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

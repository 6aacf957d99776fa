//! `GET /metrics`: the Prometheus text format of the collector. Requests are counted by the
//! front layer (`request::front`), outermost, so every answer is (the Host guard's,
//! authentication's 401s and 429s and the body cap's 413s included).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::openapi::Op;
use super::{HttpState, error_response};
use crate::adapters::mcp::RequestIdentity;
use crate::ops::metrics::CONTENT_TYPE;

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

/// `GET /metrics`: rendered straight from the collector, not a tool (a scrape is not a call).
pub(super) fn scrape_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("prometheus", "Prometheus metrics")
        .describe("Open to anyone with `[metrics] public = true` (the default); otherwise ops-admins only.")
        .reply_as(
            200,
            "The text exposition format.",
            "text/plain",
            json!({"type": "string"}),
        )
        .errors(&[404])
}

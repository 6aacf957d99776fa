//! `GET /health/ready` and `GET /health/{service}`: readiness for load balancers and
//! orchestrators, answered without credentials (see `ops::health` for what is checked and why
//! the answers hold no endpoints or error texts). `GET /health` stays the cheap liveness check.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{HttpState, error_response};
use crate::ops::health::valid_service_name;

/// 200 when every service is healthy (or disabled), 503 when one is not: a probe needs only the
/// status code.
fn status_for(degraded: bool) -> StatusCode {
    if degraded {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

/// `GET /health/ready`
pub(super) async fn ready(State(state): State<HttpState>) -> Response {
    let report = state.health.report().await;
    let degraded = report.status == crate::ops::health::Overall::Degraded;
    (status_for(degraded), axum::Json(report)).into_response()
}

/// `GET /health/{service}`: `store` or `mcp.<server>`.
pub(super) async fn service(State(state): State<HttpState>, Path(name): Path<String>) -> Response {
    // An invalid name is not echoed: it could be anything a client put in a path.
    if !valid_service_name(&name) {
        return error_response(
            StatusCode::NOT_FOUND,
            "unknown_service",
            "unknown service; services are `store` and `mcp.<server>` (see GET /health/ready)",
        );
    }
    match state.health.service(&name).await {
        Some(health) => (status_for(health.status.degrades()), axum::Json(health)).into_response(),
        None => error_response(
            StatusCode::NOT_FOUND,
            "unknown_service",
            &format!("unknown service: {name}"),
        ),
    }
}

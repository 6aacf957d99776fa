//! `GET /health` (liveness), `GET /health/ready` and `GET /health/{service}` (readiness for load
//! balancers and orchestrators), answered without credentials (see `ops::health` for what is
//! checked and why the answers hold no endpoints or error texts).

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::openapi::{Op, schema_of};
use super::{HttpState, error_response};
use crate::adapters::mcp::RequestIdentity;
use crate::ops::health::{Report, ServiceHealth, valid_service_name};

/// `GET /health`: the process serves HTTP.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Liveness {
    /// Always `ok`.
    #[schemars(extend("const" = "ok"))]
    status: &'static str,
    version: &'static str,
    /// RFC 3339.
    timestamp: String,
    /// How many tools are registered.
    tools: usize,
    /// Calls running right now.
    in_flight: u64,
}

/// `GET /health`
pub(super) async fn liveness(State(state): State<HttpState>) -> Response {
    axum::Json(Liveness {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        tools: state.registry.len(),
        in_flight: state
            .registry
            .stats
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed),
    })
    .into_response()
}

pub(super) fn liveness_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("liveness", "Liveness")
        .describe("Cheap: answers as long as the process serves HTTP.")
        .reply(200, "Alive.", schema_of::<Liveness>())
}

pub(super) fn ready_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("readiness", "Readiness of every service")
        .describe(
            "Checks the store (a timed trivial read) and every upstream MCP server (`mcp.<server>`). \
             Disabled servers are listed but do not make agentos unready. No credentials are \
             needed; with an ops-admin's, the answer adds `connections` (the open-file limit, the \
             connection cap and the connections open).",
        )
        .reply(200, "Every service is healthy (or disabled).", schema_of::<Report>())
        .reply(503, "A service is degraded or unhealthy.", schema_of::<Report>())
}

pub(super) fn service_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("serviceHealth", "Health of one service")
        .param(
            "path",
            "service",
            true,
            json!({"type": "string", "pattern": "^[a-z0-9._-]{1,80}$"}),
            "`store` or `mcp.<server>`.",
        )
        .reply(200, "Healthy (or disabled).", schema_of::<ServiceHealth>())
        .reply(503, "Degraded or unhealthy.", schema_of::<ServiceHealth>())
        .errors(&[404])
}

/// 200 when every service is healthy (or disabled), 503 when one is not: a probe needs only the
/// status code.
fn status_for(degraded: bool) -> StatusCode {
    if degraded {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

/// `GET /health/ready`. Probes send no credentials and get the services; an ops-admin's token
/// adds the connection limits and count.
pub(super) async fn ready(State(state): State<HttpState>, request: Request) -> Response {
    let mut report = state.health.report().await;
    let admin = request
        .extensions()
        .get::<RequestIdentity>()
        .is_some_and(|identity| identity.caller.is_admin());
    if admin {
        report.connections = Some(state.connections.report());
    }
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

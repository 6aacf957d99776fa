//! The HTTP front door (`agentos serve`): MCP streamable HTTP and its plain JSON form on `/mcp`,
//! plus `GET /tools`, `GET /health` and the crew operations under `/api/ops/crew`.

mod guard;
mod ops;
mod plain;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::mcp::{McpHandler, RequestIdentity};
use crate::config::HttpConfig;
use crate::registry::{NameStyle, Registry};

pub use guard::HostGuard;

type McpService = StreamableHttpService<McpHandler, LocalSessionManager>;

/// What every route handler shares.
#[derive(Clone)]
struct HttpState {
    registry: Arc<Registry>,
    identity: RequestIdentity,
    mcp: McpService,
    max_body_bytes: usize,
}

/// Builds the router. `shutdown` ends open MCP sessions and streams when cancelled.
pub fn router(
    registry: Arc<Registry>,
    identity: RequestIdentity,
    http: &HttpConfig,
    shutdown: CancellationToken,
) -> Router {
    let guard = HostGuard::new(&http.allowed_hosts, &http.allowed_origins);
    let mut mcp_config = StreamableHttpServerConfig::default()
        .with_cancellation_token(shutdown)
        .with_max_request_body_bytes(http.max_body_bytes)
        .with_json_response(true)
        .with_allowed_origins(guard.origin_patterns());
    mcp_config = if guard.hosts_unchecked() {
        mcp_config.disable_allowed_hosts()
    } else {
        mcp_config.with_allowed_hosts(http.allowed_hosts.clone())
    };
    if !guard.origins_unchecked() {
        mcp_config = mcp_config.enforce_origin_validation();
    }
    let factory_registry = registry.clone();
    let factory_identity = identity.clone();
    let mcp = StreamableHttpService::new(
        move || Ok(McpHandler::new(factory_registry.clone(), factory_identity.clone())),
        Arc::new(LocalSessionManager::default()),
        mcp_config,
    );
    let state = HttpState {
        registry,
        identity,
        mcp,
        max_body_bytes: http.max_body_bytes,
    };
    Router::new()
        .route("/mcp", axum::routing::any(mcp_entry))
        .route("/tools", get(list_tools))
        .route("/health", get(health))
        .route("/api/ops/crew", get(ops::crew))
        .route("/api/ops/crew/failover", post(ops::failover))
        .route("/api/ops/crew/bootstrap", post(ops::bootstrap))
        .route("/api/ops/crew/cron", post(ops::cron))
        .route("/api/mcp/servers", get(ops::servers).post(ops::add_server))
        .route("/api/mcp/servers/{name}", axum::routing::delete(ops::remove_server))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
        .with_state(state)
}

/// Binds `addr` and serves until `shutdown` is cancelled. Prints the bound address to stderr so
/// scripts and tests that asked for port 0 can find the real one.
pub async fn serve(addr: SocketAddr, router: Router, shutdown: CancellationToken) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    eprintln!("agentos listening on http://{local}");
    tracing::info!(%local, "listening");
    // Streamed (SSE) answers go out in several writes; without TCP_NODELAY, Nagle's algorithm
    // and the client's delayed ACK hold each answer back by ~40 ms.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

#[derive(Debug, Default, Deserialize)]
struct NamesQuery {
    names: Option<String>,
}

/// The caller of this request and the name spelling it asked for (`?names=strict` or the
/// `X-Agentos-Names` header); falls back to the server's default.
fn identity_for(
    state: &HttpState,
    query: &NamesQuery,
    headers: &axum::http::HeaderMap,
) -> Result<RequestIdentity, Box<Response>> {
    let asked = query
        .names
        .as_deref()
        .or_else(|| headers.get("x-agentos-names").and_then(|v| v.to_str().ok()));
    let mut identity = state.identity.clone();
    if let Some(asked) = asked {
        identity.name_style = asked
            .parse::<NameStyle>()
            .map_err(|message| Box::new(error_response(StatusCode::BAD_REQUEST, "invalid_name_style", &message)))?;
    }
    Ok(identity)
}

/// `/mcp`: a POST whose JSON body has no `jsonrpc` member is the plain form; everything else is
/// MCP streamable HTTP, handled by rmcp.
async fn mcp_entry(State(state): State<HttpState>, Query(query): Query<NamesQuery>, request: Request) -> Response {
    let identity = match identity_for(&state, &query, request.headers()) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(identity.clone());
    if parts.method != Method::POST {
        return forward_to_mcp(&state, Request::from_parts(parts, body)).await;
    }
    let bytes = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                &format!("request bodies are limited to {} bytes", state.max_body_bytes),
            );
        }
    };
    if plain::is_plain_form(&bytes) {
        return plain::handle(&state.registry, identity, &parts.headers, &bytes).await;
    }
    forward_to_mcp(&state, Request::from_parts(parts, Body::from(bytes))).await
}

async fn forward_to_mcp(state: &HttpState, request: Request) -> Response {
    let ending_session = request.method() == Method::DELETE;
    let mut response = match state.mcp.clone().oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    // rmcp answers a session's DELETE with 202; clients (the Python SDK among them) expect the
    // usual 200/204 for a completed deletion.
    if ending_session && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

async fn list_tools(
    State(state): State<HttpState>,
    Query(query): Query<NamesQuery>,
    headers: axum::http::HeaderMap,
) -> Response {
    let identity = match identity_for(&state, &query, &headers) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let tools = state.registry.mcp_tools_for(&identity.caller, identity.name_style);
    axum::Json(serde_json::json!({ "tools": tools })).into_response()
}

async fn health(State(state): State<HttpState>) -> Response {
    axum::Json(serde_json::json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "tools": state.registry.len(),
        "inFlight": state.registry.stats.in_flight.load(std::sync::atomic::Ordering::Relaxed),
    }))
    .into_response()
}

async fn not_found(request: Request) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

/// The HTTP status of a registry refusal, the same for every route.
pub(crate) fn call_error_status(error: &crate::registry::CallError) -> StatusCode {
    use crate::registry::CallError;
    match error {
        CallError::UnknownTool(_) => StatusCode::NOT_FOUND,
        CallError::InvalidArguments { .. } => StatusCode::BAD_REQUEST,
        CallError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
        CallError::Cancelled(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The caller's `X-Request-Id` when it is sane, else a fresh one; it ties logs and traces together.
pub(crate) fn request_id(headers: &axum::http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// The text of a failed tool result, for error bodies.
pub(crate) fn error_text(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|block| match block {
            rmcp::model::ContentBlock::Text(text) => Some(text.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The JSON error body of every non-MCP route.
pub(crate) fn error_response(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": error, "message": message })),
    )
        .into_response()
}

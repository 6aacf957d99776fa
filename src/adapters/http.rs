//! The HTTP front door (`agentos serve`): MCP streamable HTTP and its plain JSON form on `/mcp`,
//! the account and agent routes, `GET /tools`, `GET /health`, `GET /metrics` and the operations
//! under `/api/`.
//! Every request passes the Host/Origin guard, the body cap and authentication first.

mod accounts;
mod auth;
mod errors;
mod governance;
mod guard;
mod json;
mod layers;
mod limit;
mod metrics;
mod openapi;
mod ops;
mod plain;
mod probes;
mod request;
mod traces;

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
use crate::app::App;
use crate::config::Config;
use crate::identity::Identity;
use crate::registry::{NameStyle, Registry};

pub(crate) use errors::{call_error_status, error_response, error_text, failure_status};
pub use guard::HostGuard;
pub use request::HttpRequestId;

type McpService = StreamableHttpService<McpHandler, LocalSessionManager>;

/// What every route handler shares. Behind one `Arc`: axum clones the state for every extractor
/// of every request, and cloning each field was a measurable share of a call.
#[derive(Clone)]
struct HttpState(Arc<Shared>);

impl std::ops::Deref for HttpState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

struct Shared {
    registry: Arc<Registry>,
    /// Who a request acts as when authentication put nobody in its extensions (`--no-auth`).
    identity: RequestIdentity,
    auth: auth::Authenticator,
    config: Arc<Config>,
    /// Readiness checks behind `/health/ready` and `/health/{service}`.
    health: crate::ops::health::Checker,
    mcp: McpService,
    /// Which agent opened each MCP session: another agent presenting that session id is told
    /// it does not exist, so it can neither read the session's stream nor act inside it.
    session_owners: Arc<dashmap::DashMap<String, Arc<str>>>,
    max_body_bytes: usize,
    metrics: Arc<crate::ops::metrics::Metrics>,
}

/// Past this many bound sessions the table is cleared: unbound sessions still work (rmcp knows
/// them), they just lose the cross-agent check, and a flood of never-ended sessions cannot grow
/// memory without limit.
const MAX_BOUND_SESSIONS: usize = 50_000;

/// How `agentos serve` lets callers in.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// `false` (`--no-auth`): every request acts as the local owner; loopback only.
    pub require_auth: bool,
}

/// Builds the router. `shutdown` ends open MCP sessions and streams when cancelled.
pub fn router(app: &App, identity: Arc<Identity>, access: Access, shutdown: CancellationToken) -> Router {
    let http = &app.config.http;
    let registry = app.registry.clone();
    let owner = RequestIdentity {
        caller: app.owner(),
        name_style: app.config.name_style,
    };
    let mut browser_origins = http.allowed_origins.clone();
    browser_origins.extend(http.cors_origins.iter().filter(|o| o.as_str() != "*").cloned());
    if http.cors_origins.iter().any(|o| o == "*") {
        browser_origins.push("*".into());
    }
    let guard = HostGuard::new(&http.allowed_hosts, &browser_origins);
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
    let factory_identity = owner.clone();
    let sessions = Arc::new(LocalSessionManager::default());
    let mcp = StreamableHttpService::new(
        move || Ok(McpHandler::new(factory_registry.clone(), factory_identity.clone())),
        sessions.clone(),
        mcp_config,
    );
    let session_owners = Arc::new(dashmap::DashMap::new());
    let bound = session_owners.clone();
    // rmcp's table is the truth; while a writer holds it, the bound sessions are a close count.
    app.metrics.set_session_gauge(Arc::new(move || {
        sessions
            .sessions
            .try_read()
            .map_or_else(|_| bound.len(), |table| table.len())
    }));
    let limiter = app
        .config
        .rate_limits
        .enabled
        .then(|| limit::RateLimiter::new(app.config.rate_limits.clone()));
    let authenticator = auth::Authenticator::new(
        identity,
        access.require_auth,
        owner.caller.clone(),
        limiter,
        app.config.name_style,
        app.metrics.clone(),
    );
    let state = HttpState(Arc::new(Shared {
        registry,
        identity: owner,
        auth: authenticator.clone(),
        config: Arc::new(app.config.clone()),
        health: crate::ops::health::Checker::new(app.store.clone(), app.upstreams.clone()),
        mcp,
        session_owners,
        max_body_bytes: http.max_body_bytes,
        metrics: app.metrics.clone(),
    }));
    let mut router = Router::new()
        .route("/mcp", axum::routing::any(mcp_entry))
        .route("/tools", get(list_tools))
        .route("/health", get(health))
        .route("/metrics", get(metrics::scrape))
        .route("/health/ready", get(probes::ready))
        .route("/health/{service}", get(probes::service))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::docs))
        .route("/api/signup", post(accounts::signup))
        .route("/api/signin", post(accounts::signin))
        .route("/api/session", get(accounts::session).delete(accounts::sign_out))
        .route("/api/session/token", post(accounts::mint_token))
        .route("/api/forgot-password", post(accounts::forgot_password))
        .route("/api/forgot-password/confirm", post(accounts::confirm_reset))
        .route("/api/tokens/revoke", post(accounts::revoke_token))
        .route(
            "/api/agents/{agent_id}/tokens",
            axum::routing::delete(accounts::revoke_agent_tokens),
        )
        .route("/register", post(accounts::register))
        .route("/agent/me", get(accounts::me))
        .route("/api/ops/metrics", get(ops::metrics))
        .route("/api/ops/crew", get(ops::crew))
        .route("/api/ops/crew/failover", post(ops::failover))
        .route("/api/ops/crew/bootstrap", post(ops::bootstrap))
        .route("/api/ops/crew/cron", post(ops::cron))
        .route("/api/mcp/servers", get(ops::servers).post(ops::add_server))
        .route("/api/mcp/servers/{name}", axum::routing::delete(ops::remove_server))
        .route("/api/audit", get(governance::audit))
        .route("/api/traces", get(traces::list))
        .route("/api/traces/{id}", get(traces::one))
        .route("/api/approvals", get(governance::approvals))
        .route("/api/approvals/{id}", post(governance::decide))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(authenticator, auth::authenticate))
        .layer(axum::extract::DefaultBodyLimit::max(http.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            http.max_body_bytes,
            layers::refuse_large_bodies,
        ))
        .with_state(state);
    if let Some(cors) = layers::cors_layer(&http.cors_origins) {
        router = router.layer(cors);
    }
    // The front layer outermost: its metrics see every answer, the guard's refusals too.
    let metrics = app.config.metrics.enabled.then(|| app.metrics.clone());
    router
        .layer(axum::middleware::from_fn_with_state(guard, guard::check))
        .layer(axum::middleware::from_fn_with_state(metrics, request::front))
}

/// Binds `addr` and serves until `shutdown` is cancelled. Prints the bound address to stderr so
/// scripts and tests that asked for port 0 can find the real one.
/// With `json_logs` the notice is a JSON line like the log lines.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
    json_logs: bool,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    notice(json_logs, &format!("agentos listening on http://{local}"));
    // Streamed (SSE) answers go out in several writes; without TCP_NODELAY, Nagle's algorithm
    // and the client's delayed ACK hold each answer back by ~40 ms.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// A startup line for people and scripts, written whatever the log filter says: plain text, or
/// with `json` an object shaped like the JSON log lines, so every line of stderr still parses.
pub fn notice(json: bool, message: &str) {
    if json {
        let line = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "INFO",
            "message": message,
            "target": "agentos",
        });
        eprintln!("{line}");
    } else {
        eprintln!("{message}");
    }
}

#[derive(Debug, Default, Deserialize)]
struct NamesQuery {
    names: Option<String>,
}

/// The caller of this request (put there by authentication) and the name spelling it asked for
/// (`?names=strict` or the `X-Agentos-Names` header); falls back to the server's default.
fn identity_for(
    state: &HttpState,
    query: &NamesQuery,
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<RequestIdentity, Box<Response>> {
    let asked = query
        .names
        .as_deref()
        .or_else(|| headers.get("x-agentos-names").and_then(|v| v.to_str().ok()));
    let mut identity = extensions
        .get::<RequestIdentity>()
        .cloned()
        .unwrap_or_else(|| state.identity.clone());
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
    let identity = match identity_for(&state, &query, request.headers(), request.extensions()) {
        Ok(identity) => identity,
        Err(response) => return *response,
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(identity.clone());
    if parts.method != Method::POST {
        return forward_to_mcp(&state, &identity, Request::from_parts(parts, body)).await;
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
        let id = request::of(&parts.headers, &parts.extensions);
        return plain::handle(&state.registry, identity, id, &bytes).await;
    }
    forward_to_mcp(&state, &identity, Request::from_parts(parts, Body::from(bytes))).await
}

const SESSION_HEADER: &str = "mcp-session-id";

async fn forward_to_mcp(state: &HttpState, identity: &RequestIdentity, request: Request) -> Response {
    let ending_session = request.method() == Method::DELETE;
    let agent = &identity.caller.agent_id;
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(id) = &session
        && state.session_owners.get(id).is_some_and(|owner| owner.value() != agent)
    {
        tracing::warn!(agent = %agent, "an MCP session id of another agent was presented");
        return error_response(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "no such MCP session; start a new one with initialize",
        );
    }
    let mut response = match state.mcp.clone().oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    };
    match (
        &session,
        response.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()),
    ) {
        (None, Some(created)) => {
            if state.session_owners.len() >= MAX_BOUND_SESSIONS {
                state.session_owners.clear();
            }
            state.session_owners.insert(created.to_owned(), agent.clone());
        }
        (Some(id), _) if ending_session && response.status().is_success() => {
            state.session_owners.remove(id);
        }
        _ => {}
    }
    // rmcp refuses (400, 404, 406, ...) with a text body but no Content-Type; say what it is.
    if !response.headers().contains_key(axum::http::header::CONTENT_TYPE) && response.status().is_client_error() {
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    // rmcp answers a session's DELETE with 202; clients (the Python SDK among them) expect the
    // usual 200/204 for a completed deletion.
    if ending_session && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

async fn list_tools(State(state): State<HttpState>, Query(query): Query<NamesQuery>, request: Request) -> Response {
    let identity = match identity_for(&state, &query, request.headers(), request.extensions()) {
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

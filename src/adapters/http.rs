//! The HTTP front door (`agentos serve`): MCP streamable HTTP and its plain JSON form on `/mcp`,
//! the account and agent routes, `GET /tools`, `GET /health`, `GET /metrics` and the operations
//! under `/api/`, all listed in one table (`routes`).
//! Every request passes the Host/Origin guard, the body cap and its route's authentication first,
//! then has its body read in full under the body deadline and its caller's budget (`bodies`).
//! Connections are accepted, capped and timed out by `conn`.

mod accounts;
mod auth;
mod bodies;
mod conn;
mod console;
mod errors;
mod governance;
mod guard;
mod json;
mod layers;
mod mcp_fast;
mod mcp_route;
mod metrics;
mod openapi;
mod ops;
mod plain;
mod probes;
mod request;
mod routes;
mod sessions;
mod skills;
mod studio;
mod tool_call;
mod tools;
mod traces;
mod voice;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::MethodRouter;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::mcp::{McpHandler, RequestIdentity};
use crate::app::App;
use crate::config::Config;
use crate::identity::Identity;
use crate::registry::{NameStyle, Registry};

pub use conn::Connections;
pub(crate) use errors::{
    annotate_failure, annotate_verdict, call_error_response, error_response, error_text, failure_status,
};
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
    auth: Arc<auth::Authenticator>,
    config: Arc<Config>,
    /// Readiness checks behind `/health/ready` and `/health/{service}`.
    health: crate::ops::health::Checker,
    mcp: McpService,
    /// JSON-RPC `tools/call`, `tools/list` and `ping` answered without rmcp's per-request work.
    fast: mcp_fast::FastPath,
    /// Which agent opened each MCP session: another agent presenting that session id is told
    /// it does not exist, so it can neither read the session's stream nor act inside it.
    /// Which agent owns each live MCP session.
    sessions: Arc<sessions::Sessions>,
    max_body_bytes: usize,
    metrics: Arc<crate::ops::metrics::Metrics>,
    /// The connection cap and count, for `/health/ready`'s detail to ops-admins.
    connections: Arc<Connections>,
    /// The studio's command language, with the confirmation tokens its previews handed out.
    studio: super::studio::Studio,
}

/// How `agentos serve` lets callers in.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    /// `false` (`--no-auth`): every request acts as the local owner; loopback only.
    pub require_auth: bool,
}

/// Builds the router. `shutdown` ends open MCP sessions and streams when cancelled;
/// `connections` is what [`serve`] will count connections in.
pub fn router(
    app: &App,
    identity: Arc<Identity>,
    access: Access,
    shutdown: CancellationToken,
    connections: Arc<Connections>,
) -> Router {
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
        .with_cancellation_token(shutdown.clone())
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
    let handoff = Arc::new(crate::adapters::mcp::Handoff::default());
    let fast = mcp_fast::FastPath::new(mcp_fast::FastPathSetup {
        enabled: http.mcp_fast_path,
        allowed_hosts: (!guard.hosts_unchecked()).then_some(http.allowed_hosts.as_slice()),
        origins_checked: !guard.origins_unchecked() || !mcp_config.allowed_origins.is_empty(),
        manager: sessions.clone(),
        handoff: handoff.clone(),
        registry: registry.clone(),
        owner: owner.clone(),
        metrics: app.metrics.clone(),
    });
    let mcp = StreamableHttpService::new(
        move || Ok(McpHandler::new(factory_registry.clone(), factory_identity.clone()).handing_off_to(handoff.clone())),
        sessions.clone(),
        mcp_config,
    );
    let bound = sessions::Sessions::new(sessions.clone(), http.max_mcp_sessions);
    bound.maintain(&registry, shutdown);
    let counted = bound.clone();
    // rmcp's table is the truth; while a writer holds it, the bound sessions are a close count.
    app.metrics.set_session_gauge(Arc::new(move || {
        sessions
            .sessions
            .try_read()
            .map_or_else(|_| counted.len(), |table| table.len())
    }));
    let authenticator = Arc::new(auth::Authenticator::new(
        identity,
        access.require_auth,
        owner.caller.clone(),
        registry.clone(),
        app.config.name_style,
    ));
    let studio = super::studio::Studio::new(
        registry.clone(),
        std::time::Duration::from_secs(app.config.studio.confirm_ttl_secs),
    );
    let state = HttpState(Arc::new(Shared {
        registry,
        identity: owner,
        auth: authenticator.clone(),
        config: Arc::new(app.config.clone()),
        health: crate::ops::health::Checker::new(app.store.clone(), app.upstreams.clone(), app.health_sources()),
        mcp,
        fast,
        sessions: bound,
        max_body_bytes: http.max_body_bytes,
        metrics: app.metrics.clone(),
        connections,
        studio,
    }));
    let bodies = bodies::Bodies::new(http);
    // The larger caps: a published component in base64, its manifest and the JSON around them;
    // an audio file to transcribe with a multipart form's framing.
    let component_max = usize::try_from(app.config.skills.max_component_bytes.div_ceil(3) * 4)
        .unwrap_or(usize::MAX)
        .saturating_add(128 * 1024);
    let audio_max = usize::try_from(app.config.voice.max_audio_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(64 * 1024);
    let cap_of = |cap: routes::BodyCap| match cap {
        routes::BodyCap::Standard => http.max_body_bytes,
        routes::BodyCap::Component => component_max.max(http.max_body_bytes),
        routes::BodyCap::Audio => audio_max.max(http.max_body_bytes),
    };
    // Each route behind its own guard (its row of the table says how it is reached and
    // charged); methods of one path share one entry. Routes are grouped by body cap, each group
    // with its own body limit layers.
    type Paths = std::collections::BTreeMap<&'static str, MethodRouter<HttpState>>;
    let mut groups: std::collections::BTreeMap<routes::BodyCap, Paths> = Default::default();
    let mut budgets: std::collections::BTreeMap<routes::BodyCap, Arc<bodies::Bodies>> = Default::default();
    for route in routes::table(app.config.metrics.public) {
        let max = cap_of(route.body);
        let route_bodies = budgets
            .entry(route.body)
            .or_insert_with(|| match route.body {
                routes::BodyCap::Standard => bodies.clone(),
                _ => bodies::Bodies::with_max(http, max),
            })
            .clone();
        let route_guard = auth::Guard {
            auth: authenticator.clone(),
            access: route.access,
            charge: route.charge,
            bodies: route_bodies,
        };
        let handler = route
            .handler
            .route_layer(axum::middleware::from_fn_with_state(route_guard, auth::authenticate));
        let table = groups.entry(route.body).or_default();
        let merged = match table.remove(route.path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        table.insert(route.path, merged);
    }
    // Layers apply to the routes present when they are added: each group gets its own limit,
    // then the groups are merged.
    let grouped = groups.into_iter().map(|(cap, paths)| {
        let max = cap_of(cap);
        paths
            .into_iter()
            .fold(Router::new(), |router, (path, handler)| router.route(path, handler))
            .layer(axum::extract::DefaultBodyLimit::max(max))
            .layer(axum::middleware::from_fn_with_state(max, layers::refuse_large_bodies))
    });
    let mut router = grouped
        .fold(Router::new(), Router::merge)
        .fallback(not_found)
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

/// Serves `listener` until `shutdown` is cancelled, then lets requests in flight finish.
/// Prints the bound address to stderr so scripts and tests that asked for port 0 can find the
/// real one. With `json_logs` the notice is a JSON line like the log lines.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    connections: Arc<Connections>,
    shutdown: CancellationToken,
    json_logs: bool,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    notice(json_logs, &format!("agentos listening on http://{local}"));
    conn::accept_loop(listener, router, connections, shutdown).await;
    Ok(())
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

async fn not_found(request: Request) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

//! Keeps one upstream connected: connect, list and register its tools, watch the connection,
//! and when it dies mark it down, restart it with exponential backoff, and take its tools out
//! of the list if it stays down past its grace period.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{ClientRequest, ProgressToken};
use rmcp::service::{RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{Peer, RoleClient, ServiceExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::client::UpstreamClient;
use super::proxy::ProxyTool;
use super::spec::{Endpoint, ServerSpec};
use super::stdio_transport::{StdioTransport, ToolResults};
use super::watched::Watched;
use super::{CONNECT_TIMEOUT, UpstreamError};
use crate::registry::{CatalogList, ProgressSink, ProviderNews, Registry, Starting, Tool};

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often an HTTP upstream is pinged: its death closes no pipe, so it must be noticed.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a server stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Connecting,
    Up,
    /// The connection died; it is being restarted.
    Restarting,
    Disabled,
    Stopped,
}

#[derive(Debug)]
pub(crate) struct LinkState {
    pub status: Status,
    pub peer: Option<Peer<RoleClient>>,
    /// Process group of the stdio child, if one runs.
    pub pgid: Option<u32>,
    pub last_error: Option<String>,
    pub tool_names: Vec<String>,
    pub restarts: u64,
    /// Bumped on every loss of connection, so a stale grace timer does nothing.
    pub generation: u64,
    /// Index into `Link::endpoints` of the endpoint in use (crew): 0 is the primary.
    pub active: usize,
    /// Failures in a row since the last successful connection.
    pub misses: usize,
    /// How many times the active endpoint was switched (or, with one endpoint, redialled).
    pub switches: u64,
    pub last_failure: Option<Failure>,
    /// A forced failover waiting for the supervisor, with its reason.
    pub failover_request: Option<String>,
}

/// When and where the active endpoint last failed, and why.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Failure {
    /// RFC 3339 time.
    pub at: String,
    /// The endpoint that failed, as `command args` or its URL.
    pub endpoint: String,
    pub reason: String,
}

/// How a served connection ended.
enum End {
    /// The server was removed or agentos stops.
    Stopped,
    /// The connection died.
    Lost(String),
    /// A failover was asked for.
    FailOver(String),
}

type ProgressRoutes = HashMap<ProgressToken, Option<Arc<dyn ProgressSink>>>;

/// Everything about one server shared by its supervisor, its proxied tools and its client handler.
pub(crate) struct Link {
    pub spec: ServerSpec,
    /// The primary endpoint, then the standby ones.
    pub endpoints: Vec<Endpoint>,
    /// Asks the supervisor to switch to the next endpoint now (reason in `failover_request`).
    pub failover: Notify,
    /// Ends a wait between reconnection attempts: try again now.
    pub wake: Notify,
    pub prefix: String,
    pub state: Mutex<LinkState>,
    /// Upstream progress token → the sink of the call it belongs to (None: caller wants none).
    pub progress: Mutex<ProgressRoutes>,
    /// Progress notifications received and not yet passed on (see `watched`).
    pub in_transit: super::watched::InTransit,
    /// Calls in flight on this server by upstream request id → the caller's client, for the
    /// requests and log messages the server sends while serving them (see `client::UpstreamClient`).
    pub calls: Mutex<HashMap<rmcp::model::RequestId, Option<Arc<dyn crate::registry::ClientChannel>>>>,
    /// Told each time a call is recorded in `calls`.
    pub call_recorded: Notify,
    /// Set when the upstream says its tool list changed.
    pub relist: Notify,
    /// What the upstream announces (resources and lists that changed), for the registry to pass
    /// on to sessions.
    pub news: tokio::sync::broadcast::Sender<ProviderNews>,
    /// Set when a call saw a transport error: check the connection now.
    pub check: Notify,
    /// Held while this server's tools are put into or taken out of the registry, so a stop, a
    /// grace timer and a (re)registration never interleave.
    pub registration: Mutex<()>,
    pub stop: CancellationToken,
}

impl Link {
    pub fn new(spec: ServerSpec) -> Arc<Self> {
        let status = if spec.enabled {
            Status::Connecting
        } else {
            Status::Disabled
        };
        Arc::new(Self {
            prefix: format!("mcp.{}.", spec.name),
            endpoints: spec.endpoints(),
            failover: Notify::new(),
            wake: Notify::new(),
            news: tokio::sync::broadcast::channel(64).0,
            spec,
            state: Mutex::new(LinkState {
                status,
                peer: None,
                pgid: None,
                last_error: None,
                tool_names: Vec::new(),
                restarts: 0,
                generation: 0,
                active: 0,
                misses: 0,
                switches: 0,
                last_failure: None,
                failover_request: None,
            }),
            progress: Mutex::new(HashMap::new()),
            in_transit: Default::default(),
            calls: Mutex::new(HashMap::new()),
            call_recorded: Notify::new(),
            relist: Notify::new(),
            check: Notify::new(),
            registration: Mutex::new(()),
            stop: CancellationToken::new(),
        })
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, LinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn calls(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<rmcp::model::RequestId, Option<Arc<dyn crate::registry::ClientChannel>>>>
    {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn routes(&self) -> std::sync::MutexGuard<'_, ProgressRoutes> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The spec as reached through the active endpoint.
    pub fn active_spec(&self) -> ServerSpec {
        let active = self.state().active;
        self.spec.at_endpoint(active)
    }

    /// Records that the active endpoint failed and makes the next one (round robin) active.
    fn record_failure(&self, reason: String) {
        let mut state = self.state();
        let failed = state.active.min(self.endpoints.len() - 1);
        state.last_failure = Some(Failure {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            endpoint: self.endpoints[failed].describe(),
            reason,
        });
        state.active = (failed + 1) % self.endpoints.len();
        state.switches += 1;
        if state.active != failed {
            tracing::warn!(
                server = %self.name(),
                from = %self.endpoints[failed].describe(),
                to = %self.endpoints[state.active].describe(),
                "MCP server failing over to the next endpoint"
            );
        }
    }

    pub fn registration(&self) -> std::sync::MutexGuard<'_, ()> {
        self.registration.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops the supervisor and takes the tools out of the registry, for good.
    pub fn retire(&self, registry: &Registry) {
        let _registration = self.registration();
        self.stop.cancel();
        let _ = registry.replace_prefix(&self.prefix, Vec::new());
        let mut state = self.state();
        state.status = Status::Stopped;
        state.tool_names.clear();
    }

    /// Kills the stdio child's whole process group (the server and anything it started).
    pub fn kill_children(&self) {
        if let Some(pgid) = self.state().pgid.take() {
            kill_group(pgid);
        }
    }
}

#[cfg(unix)]
pub(crate) fn kill_group(pgid: u32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    const SIGKILL: i32 = 9;
    let Ok(pgid) = i32::try_from(pgid) else { return };
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals that process group; it touches no memory.
        unsafe {
            kill(-pgid, SIGKILL);
        }
    }
}

#[cfg(not(unix))]
pub(crate) fn kill_group(_pgid: u32) {}

/// A live session with an upstream.
pub(crate) struct Connection {
    service: RunningService<RoleClient, UpstreamClient>,
    pgid: Option<u32>,
    /// The stdio server process (killed if dropped).
    child: Option<tokio::process::Child>,
}

/// Kills (if still running) and waits for a child, briefly; tokio reaps it later otherwise.
async fn reap(mut child: tokio::process::Child) {
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
}

impl Connection {
    pub fn peer(&self) -> &Peer<RoleClient> {
        self.service.peer()
    }
}

/// Starts a stdio server so that it and its process group die with agentos (see `lifeline`).
#[cfg(target_os = "linux")]
async fn spawn(command: tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    super::lifeline::spawn(command).await
}

/// Elsewhere a server outlives an agentos that is killed without a chance to stop it.
#[cfg(not(target_os = "linux"))]
async fn spawn(mut command: tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    command.spawn()
}

/// Starts the server (or opens the HTTP session) and completes the MCP handshake.
pub(crate) async fn connect(link: &Arc<Link>) -> Result<Connection, UpstreamError> {
    let spec = &link.active_spec();
    let name = spec.name.clone();
    let handler = UpstreamClient::new(link);
    let handshake = |e: String| UpstreamError::Handshake {
        name: name.clone(),
        message: e,
    };
    if let Some(command_name) = &spec.command {
        let mut command = tokio::process::Command::new(command_name);
        command.args(&spec.args).envs(&spec.env).kill_on_drop(true);
        #[cfg(unix)]
        command.process_group(0);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        // Our own child handle (not rmcp's TokioChildProcess): its exit is noticed even when a
        // grandchild keeps the stdout pipe open, and it is reaped by us.
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        let mut child = spawn(command).await.map_err(|source| UpstreamError::Spawn {
            command: command_name.clone(),
            source,
        })?;
        let pgid = child.id();
        // Publish the group at once so a remove or shutdown during the handshake kills it.
        link.state().pgid = pgid;
        let (Some(stdout), Some(stdin)) = (child.stdout.take(), child.stdin.take()) else {
            link.kill_children();
            return Err(handshake("its stdin/stdout could not be opened".into()));
        };
        let transport = Watched::new(
            StdioTransport::new(stdout, stdin, ToolResults::default()),
            Arc::downgrade(link),
        );
        let service = match tokio::time::timeout(CONNECT_TIMEOUT, handler.serve(transport)).await {
            Ok(Ok(service)) => service,
            Ok(Err(e)) => {
                link.kill_children();
                reap(child).await;
                return Err(handshake(e.to_string()));
            }
            Err(_) => {
                link.kill_children();
                reap(child).await;
                return Err(UpstreamError::Timeout { name });
            }
        };
        Ok(Connection {
            service,
            pgid,
            child: Some(child),
        })
    } else {
        let url = spec.url.clone().unwrap_or_default();
        let mut config = StreamableHttpClientTransportConfig::with_uri(url)
            .custom_headers(spec.http_headers().map_err(|e| handshake(e.message))?);
        if let Some(token) = spec.bearer_token().map_err(|e| handshake(e.message))? {
            config = config.auth_header(token);
        }
        crate::tls::install_crypto_provider();
        let transport = Watched::new(StreamableHttpClientTransport::from_config(config), Arc::downgrade(link));
        let service = tokio::time::timeout(CONNECT_TIMEOUT, handler.serve(transport))
            .await
            .map_err(|_| UpstreamError::Timeout { name: name.clone() })?
            .map_err(|e| handshake(e.to_string()))?;
        Ok(Connection {
            service,
            pgid: None,
            child: None,
        })
    }
}

/// Lists every page of the server's tools and puts the allowed ones in the registry under
/// `mcp.<server>.`, replacing what was there. Returns the registry names.
pub(crate) async fn register_tools(
    registry: &Registry,
    link: &Arc<Link>,
    peer: &Peer<RoleClient>,
) -> Result<Vec<String>, UpstreamError> {
    let list_error = |message: String| UpstreamError::List {
        name: link.name().to_owned(),
        message,
    };
    let tools = tokio::time::timeout(CONNECT_TIMEOUT, peer.list_all_tools())
        .await
        .map_err(|_| list_error(format!("no answer within {}s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|e| list_error(e.to_string()))?;
    let filter = link.spec.filter().map_err(|e| list_error(e.message))?;
    let tools: Vec<_> = tools.into_iter().filter(|tool| filter.allows(&tool.name)).collect();
    let aliases: Vec<Arc<dyn Tool>> = if link.spec.transparent {
        tools
            .iter()
            .map(|tool| Arc::new(ProxyTool::alias(link.clone(), tool.clone())) as Arc<dyn Tool>)
            .collect()
    } else {
        Vec::new()
    };
    let proxies: Vec<Arc<dyn Tool>> = tools
        .into_iter()
        .map(|tool| Arc::new(ProxyTool::new(link.clone(), tool)) as Arc<dyn Tool>)
        .collect();
    let names: Vec<String> = proxies.iter().map(|t| t.spec().name.to_string()).collect();
    let _registration = link.registration();
    if link.stop.is_cancelled() {
        return Err(list_error("the server was removed".into()));
    }
    let left_out = registry.replace_prefix_with_aliases(&link.prefix, proxies, aliases)?;
    if !left_out.is_empty() {
        tracing::warn!(
            server = link.name(),
            names = ?left_out,
            "transparent server: these tools keep only their mcp.<server>. names, another tool has the plain name"
        );
    }
    let mut state = link.state();
    state.tool_names = names.clone();
    // A grace timer started before this registration is now stale.
    state.generation += 1;
    Ok(names)
}

/// Makes a fresh connection the one calls use. `agentos.mcp_server_add` publishes before it
/// answers, so a call made right after the answer never finds the server "restarting".
pub(crate) fn publish(link: &Link, connection: &Connection) {
    let peer = connection.service.peer().clone();
    let previous = {
        let mut state = link.state();
        state.status = Status::Up;
        state.last_error = None;
        state.misses = 0;
        state.peer.replace(peer.clone())
    };
    announce_lists(link, previous.as_ref(), &peer);
}

/// A new connection's resources and prompts may differ from what sessions listed before (the
/// server restarted, or it is another endpoint): say so for each kind either connection offers.
fn announce_lists(link: &Link, previous: Option<&Peer<RoleClient>>, current: &Peer<RoleClient>) {
    let offers = |peer: Option<&Peer<RoleClient>>, list: CatalogList| {
        peer.and_then(|peer| peer.peer_info()).is_some_and(|info| match list {
            CatalogList::Resources => info.capabilities.resources.is_some(),
            CatalogList::Prompts => info.capabilities.prompts.is_some(),
        })
    };
    for list in [CatalogList::Resources, CatalogList::Prompts] {
        if offers(previous, list) || offers(Some(current), list) {
            // Nobody listening is not an error.
            let _ = link.news.send(ProviderNews::ListChanged(list));
        }
    }
}

/// How a supervisor begins.
pub(crate) enum First {
    /// With a connection already made (by `agentos.mcp_server_add`), its tools registered.
    Connected(Box<Connection>),
    /// By connecting, as a configured server at start-up: the registry counts it as starting
    /// until the first attempt (every endpoint tried once) succeeded or failed.
    Starting(Starting),
}

/// Runs until the server is removed or agentos stops.
pub(crate) async fn supervise(registry: Arc<Registry>, link: Arc<Link>, first: First) {
    let name = link.name().to_owned();
    let mut backoff = FIRST_BACKOFF;
    let (mut first, mut starting) = match first {
        First::Connected(connection) => (Some(*connection), None),
        First::Starting(starting) => (None, Some(starting)),
    };
    loop {
        let connection = match first.take() {
            Some(connection) => Ok(connection),
            None => {
                let attempt = async {
                    let connection = connect(&link).await?;
                    register_tools(&registry, &link, connection.service.peer())
                        .await
                        .inspect_err(|_| link.kill_children())?;
                    Ok::<_, UpstreamError>(connection)
                };
                tokio::select! {
                    result = attempt => result,
                    _ = link.stop.cancelled() => {
                        link.kill_children();
                        return;
                    }
                }
            }
        };
        let (reason, forced) = match connection {
            Ok(connection) => {
                publish(&link, &connection);
                tracing::info!(server = %name, tools = link.state().tool_names.len(), "MCP server connected");
                drop(starting.take());
                backoff = FIRST_BACKOFF;
                let (reason, forced) = match run(&registry, &link, connection).await {
                    End::Stopped => return,
                    End::Lost(reason) => (reason, false),
                    End::FailOver(reason) => (reason, true),
                };
                let generation = {
                    let mut state = link.state();
                    state.status = Status::Restarting;
                    state.peer = None;
                    state.restarts += 1;
                    state.generation += 1;
                    state.last_error = Some(reason.clone());
                    state.generation
                };
                tracing::warn!(server = %name, %reason, "MCP server connection lost; restarting");
                spawn_grace_timer(registry.clone(), link.clone(), generation);
                (reason, forced)
            }
            Err(error) => {
                tracing::warn!(server = %name, %error, retry_in_ms = backoff.as_millis() as u64, "MCP server failed to connect");
                link.state().last_error = Some(error.to_string());
                (error.to_string(), false)
            }
        };
        link.record_failure(reason);
        // With standby endpoints, each is tried once before backing off.
        // A forced failover is no failure of the next endpoint: it is dialled at once.
        let pause = !forced && {
            let mut state = link.state();
            state.misses += 1;
            link.endpoints.len() == 1 || state.misses.is_multiple_of(link.endpoints.len())
        };
        if !pause {
            continue;
        }
        // Every endpoint failed once (logged above): start-up waits no longer for this server.
        drop(starting.take());
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => break,
                _ = link.wake.notified() => break,
                _ = link.failover.notified() => {
                    let Some(reason) = link.state().failover_request.take() else { continue };
                    link.record_failure(reason);
                    break;
                }
                _ = link.stop.cancelled() => return,
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Serves one connection until it closes, a failover is asked for, or the server is stopped.
async fn run(registry: &Registry, link: &Arc<Link>, connection: Connection) -> End {
    let Connection {
        service,
        pgid,
        mut child,
    } = connection;
    let peer = service.peer().clone();
    let cancel = service.cancellation_token();
    let mut waiting = std::pin::pin!(service.waiting());
    let is_http = link.active_spec().url.is_some();
    let mut health = tokio::time::interval(HEALTH_INTERVAL);
    health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    health.tick().await;
    // The crew health cycle: every endpoint kind is pinged now and then.
    let crew_secs = link.spec.health_interval_secs;
    let mut crew = tokio::time::interval(Duration::from_secs(crew_secs.max(1)));
    crew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    crew.tick().await;
    loop {
        tokio::select! {
            _ = async { health.tick().await }, if is_http => {
                if !alive(&peer).await {
                    close_dead(link, cancel, &mut waiting).await;
                    return End::Lost("no answer to a ping".into());
                }
            }
            _ = async { crew.tick().await }, if crew_secs > 0 => {
                if !alive(&peer).await {
                    close_dead(link, cancel, &mut waiting).await;
                    return End::Lost("health check: no answer to a ping".into());
                }
            }
            _ = link.check.notified() => {
                if !alive(&peer).await {
                    close_dead(link, cancel, &mut waiting).await;
                    return End::Lost("no answer to a ping after a transport error".into());
                }
            }
            _ = link.failover.notified() => {
                let Some(reason) = link.state().failover_request.take() else { continue };
                tracing::warn!(server = %link.name(), %reason, "failover requested");
                link.kill_children();
                link.state().peer = None;
                cancel.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut waiting).await;
                if let Some(child) = child.take() {
                    reap(child).await;
                }
                return End::FailOver(reason);
            }
            _ = &mut waiting => {
                // The server may have left children behind: end its whole group.
                if let Some(pgid) = pgid {
                    kill_group(pgid);
                }
                link.state().pgid = None;
                if let Some(child) = child.take() {
                    reap(child).await;
                }
                return End::Lost("the connection closed".into());
            }
            status = async { child.as_mut().expect("guarded").wait().await }, if child.is_some() => {
                tracing::warn!(server = %link.name(), ?status, "MCP server process exited");
                // Its children may hold the pipes open: end the whole group, then the session
                // (calls in flight then fail at once).
                if let Some(pgid) = pgid {
                    kill_group(pgid);
                }
                link.state().pgid = None;
                cancel.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut waiting).await;
                return End::Lost(match status {
                    Ok(status) => format!("the server process exited ({status})"),
                    Err(error) => format!("the server process was lost: {error}"),
                });
            }
            _ = link.relist.notified() => {
                match register_tools(registry, link, &peer).await {
                    Ok(names) => tracing::info!(server = %link.name(), tools = names.len(), "MCP server tool list changed"),
                    Err(error) => tracing::warn!(server = %link.name(), %error, "re-listing tools failed"),
                }
            }
            _ = link.stop.cancelled() => {
                link.kill_children();
                link.state().peer = None;
                if let Some(child) = child.take() {
                    reap(child).await;
                }
                cancel.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(5), &mut waiting).await;
                return End::Stopped;
            }
        }
    }
}

/// Whether the upstream answers a ping (an MCP error still proves it is there).
pub(crate) async fn alive(peer: &Peer<RoleClient>) -> bool {
    let ping = peer.send_request(ClientRequest::PingRequest(Default::default()));
    matches!(
        tokio::time::timeout(PING_TIMEOUT, ping).await,
        Ok(Ok(_)) | Ok(Err(ServiceError::McpError(_)))
    )
}

/// Ends a connection found dead: its calls in flight then fail with "closed the connection".
async fn close_dead<F: std::future::Future>(
    link: &Link,
    cancel: rmcp::service::RunningServiceCancellationToken,
    waiting: &mut std::pin::Pin<&mut F>,
) {
    tracing::warn!(server = %link.name(), "MCP server does not answer; reconnecting");
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), waiting.as_mut()).await;
    link.kill_children();
}

/// If the server is still down after its grace period, its tools leave the list.
fn spawn_grace_timer(registry: Arc<Registry>, link: Arc<Link>, generation: u64) {
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(link.spec.grace()) => {}
            _ = link.stop.cancelled() => return,
        }
        let _registration = link.registration();
        let still_down = {
            let state = link.state();
            state.generation == generation && state.status == Status::Restarting
        };
        if still_down && registry.replace_prefix(&link.prefix, Vec::new()).is_ok() {
            link.state().tool_names.clear();
            tracing::warn!(server = %link.name(), "MCP server still down; its tools are withdrawn until it returns");
        }
    });
}

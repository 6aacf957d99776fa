//! Shared helpers for integration tests: start the real `agentos` binary, connect real MCP
//! clients to it, and observe what the server sends.

#![allow(dead_code)]

pub mod database;
pub mod pty;
pub mod real_servers;
pub mod scenarios;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation, ProgressNotificationParam,
};
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub fn agentos_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agentos"))
}

/// Where agentos under test runs: the data directory, or the nearest ancestor that exists yet,
/// never the repository, whose `tools/servers` presets would join every server list.
pub fn working_dir(data_dir: &Path) -> &Path {
    data_dir.ancestors().find(|dir| dir.is_dir()).unwrap_or(data_dir)
}

/// Runs `agentos <args> --data-dir <data_dir>`, which must refuse to start, and returns what it
/// said on stderr.
pub fn refused_start(args: &[&str], data_dir: &Path) -> String {
    let output = std::process::Command::new(agentos_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    assert!(!output.status.success(), "agentos {args:?} started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A running `agentos serve`, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: String,
    pub log: Arc<Mutex<String>>,
    /// The owner's bearer token (`<data_dir>/owner-token`); `None` under `--no-auth`.
    pub owner_token: Option<String>,
}

impl Server {
    /// Starts `agentos serve --no-auth` on a free port with `data_dir` and any extra arguments:
    /// every request acts as the owner. Feature tests use this; authentication itself is tested
    /// with [`Server::start_secure`] in `tests/security_*.rs`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(data_dir, extra, &[])
    }

    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut args = vec!["--no-auth"];
        args.extend_from_slice(extra);
        Self::launch(data_dir, &args, env)
    }

    /// Starts `agentos serve` as shipped: every route but the public ones needs a token.
    pub fn start_secure(data_dir: &Path, extra: &[&str]) -> Self {
        Self::start_secure_with_env(data_dir, extra, &[])
    }

    pub fn start_secure_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut server = Self::launch(data_dir, extra, env);
        let token = std::fs::read_to_string(data_dir.join("owner-token")).expect("owner-token written at start");
        server.owner_token = Some(token.trim().to_owned());
        server
    }

    /// `agentos serve` as shipped, started by `wrapper` (a program and its arguments that run
    /// the command after them, such as `prlimit --nofile=256:256`).
    pub fn start_secure_wrapped(data_dir: &Path, extra: &[&str], wrapper: &[&str]) -> Self {
        let mut server = Self::launch_with(wrapper, data_dir, extra, &[]);
        let token = std::fs::read_to_string(data_dir.join("owner-token")).expect("owner-token written at start");
        server.owner_token = Some(token.trim().to_owned());
        server
    }

    fn launch(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        Self::launch_with(&[], data_dir, extra, env)
    }

    fn launch_with(wrapper: &[&str], data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(agentos_bin());
                command
            }
            None => Command::new(agentos_bin()),
        };
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .current_dir(working_dir(data_dir))
            .env("AGENTOS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // A flag, not the environment: programs this agentos starts (an `agentos mcp` it proxies)
        // must not inherit the database.
        if let Some(url) = database::for_data_dir(data_dir).filter(|_| !extra.contains(&"--database-url")) {
            command.args(["--database-url", &url]);
        }
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("start agentos serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // With `logs.format = "json"` the notice is the `message` of a JSON line.
                let message = match serde_json::from_str::<Value>(&line) {
                    Ok(object) => object["message"].as_str().unwrap_or_default().to_owned(),
                    Err(_) => line.clone(),
                };
                if let Some(addr) = message.strip_prefix("agentos listening on http://") {
                    let _ = addr_tx.send(addr.to_owned());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("agentos serve did not start; log:\n{}", log.lock().unwrap());
            }
        };
        Self {
            child,
            addr,
            log,
            owner_token: None,
        }
    }

    /// `agentos serve` as shipped, configured by `toml` (written beside `data_dir`, which is
    /// `<dir>/data`).
    pub fn start_secure_configured(dir: &Path, toml: &str) -> Self {
        let config = dir.join("agentos.toml");
        std::fs::write(&config, toml).expect("write the config file");
        Self::start_secure(&dir.join("data"), &["--config", config.to_str().expect("utf-8 path")])
    }

    /// Registers an agent with the owner's token (`agentos.agent_create` behind `POST
    /// /register`); returns its whole answer (`token`, `jti`, ...).
    pub async fn register_agent(&self, agent_id: &str, allowed_tools: &[&str]) -> Value {
        let response = http()
            .post(self.url("/register"))
            .bearer_auth(self.token())
            .json(&serde_json::json!({"agentId": agent_id, "name": agent_id, "allowedTools": allowed_tools}))
            .send()
            .await
            .expect("POST /register");
        assert_eq!(
            response.status(),
            reqwest::StatusCode::CREATED,
            "registering {agent_id}"
        );
        response.json().await.expect("a JSON answer")
    }

    /// A plain-form call as `token`: its status, headers and body.
    pub async fn plain(
        &self,
        token: &str,
        tool: &str,
        input: Value,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Value) {
        let response = http()
            .post(self.mcp_url())
            .bearer_auth(token)
            .json(&serde_json::json!({"tool": tool, "input": input}))
            .send()
            .await
            .expect("POST /mcp");
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.json().await.unwrap_or(Value::Null))
    }

    /// The owner's token; panics for a `--no-auth` server.
    pub fn token(&self) -> &str {
        self.owner_token.as_deref().expect("a server started with start_secure")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn mcp_url(&self) -> String {
        self.url("/mcp")
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a test client saw the server send, beside responses.
#[derive(Default)]
pub struct Observed {
    pub list_changed: Mutex<usize>,
    pub list_changed_signal: Notify,
    pub progress: Mutex<Vec<ProgressNotificationParam>>,
    pub progress_signal: Notify,
    /// `notifications/message` payloads (logging), in arrival order.
    pub logs: Mutex<Vec<Value>>,
    pub logs_signal: Notify,
    /// URIs of `notifications/resources/updated`, in arrival order.
    pub updated: Mutex<Vec<String>>,
    pub updated_signal: Notify,
    /// "resources" / "prompts" for each `notifications/{resources,prompts}/list_changed`.
    pub lists_changed: Mutex<Vec<&'static str>>,
    pub lists_changed_signal: Notify,
}

impl Observed {
    fn list_changed_of(&self, list: &'static str) {
        self.lists_changed.lock().unwrap().push(list);
        self.lists_changed_signal.notify_waiters();
    }
}

#[derive(Clone, Default)]
pub struct RecordingClient {
    pub observed: Arc<Observed>,
}

impl ClientHandler for RecordingClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("agentos-tests", "1.0.0"),
        )
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        *self.observed.list_changed.lock().unwrap() += 1;
        self.observed.list_changed_signal.notify_waiters();
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.observed.list_changed_of("resources");
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.observed.list_changed_of("prompts");
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.observed.progress.lock().unwrap().push(params);
        self.observed.progress_signal.notify_waiters();
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.observed.updated.lock().unwrap().push(params.uri);
        self.observed.updated_signal.notify_waiters();
    }

    #[allow(deprecated)]
    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.observed
            .logs
            .lock()
            .unwrap()
            .push(serde_json::to_value(params).unwrap());
        self.observed.logs_signal.notify_waiters();
    }
}

pub type Client = RunningService<RoleClient, RecordingClient>;

/// `agentos mcp` as a child process, spoken to by rmcp's client over stdio. The returned log
/// collects the server's stderr.
pub async fn stdio_client(data_dir: &Path, extra: &[&str]) -> (Client, Arc<Observed>, Arc<Mutex<String>>) {
    let mut command = tokio::process::Command::new(agentos_bin());
    command
        .arg("mcp")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .current_dir(working_dir(data_dir))
        .env("AGENTOS_LOG", "info");
    if let Some(url) = database::for_data_dir(data_dir) {
        command.args(["--database-url", &url]);
    }
    let (transport, stderr) = TokioChildProcess::builder(command)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start agentos mcp");
    let log = Arc::new(Mutex::new(String::new()));
    if let Some(stderr) = stderr {
        let sink = log.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncBufReadExt;
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    let handler = RecordingClient::default();
    let observed = handler.observed.clone();
    let client = match handler.serve(transport).await {
        Ok(client) => client,
        Err(error) => {
            // Give agentos a moment to finish writing why it stopped.
            eventually(std::time::Duration::from_secs(2), || {
                log.lock().unwrap().contains("Stack backtrace")
            })
            .await;
            panic!("initialize over stdio: {error}; agentos said:\n{}", log.lock().unwrap());
        }
    };
    (client, observed, log)
}

/// A plain HTTP client for tests (reqwest is built with rustls, which needs its provider).
pub fn http() -> reqwest::Client {
    agentos::tls::install_crypto_provider();
    reqwest::Client::new()
}

/// rmcp's streamable HTTP client connected to `url`.
pub async fn http_client(url: &str) -> (Client, Arc<Observed>) {
    http_client_with(StreamableHttpClientTransportConfig::with_uri(url.to_owned())).await
}

/// rmcp's streamable HTTP client connected to `url`, sending `token` as its bearer token.
pub async fn http_client_as(url: &str, token: &str) -> (Client, Arc<Observed>) {
    http_client_with(StreamableHttpClientTransportConfig::with_uri(url.to_owned()).auth_header(token.to_owned())).await
}

async fn http_client_with(config: StreamableHttpClientTransportConfig) -> (Client, Arc<Observed>) {
    agentos::tls::install_crypto_provider();
    let transport = StreamableHttpClientTransport::from_config(config);
    let handler = RecordingClient::default();
    let observed = handler.observed.clone();
    let client = handler.serve(transport).await.expect("initialize over HTTP");
    (client, observed)
}

/// A 2026-07-28 client of the MCP endpoint at `url` answering with `handler`: no session, it
/// discovers the server and then sends each request on its own.
pub async fn stateless_client<H: ClientHandler>(url: &str, handler: H) -> RunningService<RoleClient, H> {
    agentos::tls::install_crypto_provider();
    let transport =
        StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(url.to_owned()));
    let lifecycle = rmcp::ClientLifecycleMode::Discover {
        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
    };
    rmcp::ClientServiceExt::serve_with_lifecycle(handler, transport, lifecycle)
        .await
        .expect("discover agentos")
}

/// agentos's MCP handler for `caller`, served in this process on one end of an in-memory pipe;
/// the other end is returned for a client.
pub fn in_process_server(
    registry: &Arc<agentos::registry::Registry>,
    caller: agentos::registry::Caller,
) -> tokio::io::DuplexStream {
    let identity = agentos::adapters::mcp::RequestIdentity {
        caller: Arc::new(caller),
        name_style: agentos::registry::NameStyle::Native,
    };
    let handler = agentos::adapters::mcp::McpHandler::new(registry.clone(), identity);
    let (client_end, server_end) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        if let Ok(running) = handler.serve(server_end).await {
            let _ = running.waiting().await;
        }
    });
    client_end
}

/// A pre-2026 session with agentos's MCP handler in this process, as `caller`.
pub async fn in_process_session(
    registry: &Arc<agentos::registry::Registry>,
    caller: agentos::registry::Caller,
) -> (Client, Arc<Observed>) {
    let recording = RecordingClient::default();
    let observed = recording.observed.clone();
    let client = recording
        .serve(in_process_server(registry, caller))
        .await
        .expect("initialize");
    (client, observed)
}

pub fn params(name: &str, arguments: Value) -> CallToolRequestParams {
    let params = CallToolRequestParams::new(name.to_owned());
    match arguments {
        Value::Object(map) => params.with_arguments(map),
        _ => params,
    }
}

/// The names of every tool the client's session lists.
pub async fn tool_names(client: &Client) -> Vec<String> {
    let tools = client.peer().list_all_tools().await.expect("tools/list");
    tools.iter().map(|tool| tool.name.to_string()).collect()
}

/// What a client recorded (`observed.logs`, `observed.updated`, ...) once it holds at least
/// `count` items, within 20 s; panics naming `what` otherwise.
pub async fn recorded<T: Clone + std::fmt::Debug>(
    items: &Mutex<Vec<T>>,
    signal: &Notify,
    count: usize,
    what: &str,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let arrived = signal.notified();
        {
            let items = items.lock().unwrap();
            if items.len() >= count {
                return items.clone();
            }
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            panic!("fewer than {count} {what}: {:?}", items.lock().unwrap());
        }
    }
}

pub async fn call(client: &Client, name: &str, arguments: Value) -> CallToolResult {
    client
        .peer()
        .call_tool(params(name, arguments))
        .await
        .unwrap_or_else(|e| panic!("call {name}: {e}"))
}

/// The first text block of a result.
pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|block| match block {
            rmcp::model::ContentBlock::Text(text) => Some(text.text.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

pub fn structured(result: &CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "tool failed: {}", text_of(result));
    result.structured_content.clone().expect("structuredContent")
}

/// Waits until `condition` holds, checking every 20 ms, for at most `limit`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    poll(limit, || std::future::ready(condition().then_some(())))
        .await
        .is_some()
}

/// Asks `probe` every 20 ms until it answers `Some`, for at most `limit`; `None` past it. For
/// conditions that take a request to check.
pub async fn poll<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    mut probe: impl FnMut() -> F,
) -> Option<T> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return Some(found);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn json_value() -> Value {
    json!({"name": "agentos", "nested": {"list": [1, 2.5, "three", null, true]}, "unicode": "héllo ✓"})
}

/// A blocking GET returning the JSON body, for checks inside synchronous predicates.
pub fn get_json_blocking(addr: &str, path: &str) -> Value {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON from GET {path}: {e}: {response}"))
}

/// An agentos instance inside the test process, for checks that need two different agents
/// (identity and tokens arrive later; the registry pipeline is the same one every adapter uses).
pub async fn in_process_app(data_dir: &Path) -> agentos::app::App {
    let mut config = agentos::config::Config {
        data_dir: data_dir.to_owned(),
        ..agentos::config::Config::default()
    };
    config.store.database_url = database::for_data_dir(data_dir);
    agentos::app::App::build(config)
        .await
        .expect("build agentos in process")
}

/// `config` pointed at the store the suite runs against (see [`database`]).
pub fn on_test_store(mut config: agentos::config::Config) -> agentos::config::Config {
    config.store.database_url = database::for_data_dir(&config.data_dir);
    config
}

/// Calls a tool through the registry pipeline as the agent `agent_id` (allowed every tool; the
/// owner is the ops-admin it always is, so it is never rate-limited).
pub async fn call_as(
    app: &agentos::app::App,
    agent_id: &str,
    tool: &str,
    input: Value,
) -> Result<CallToolResult, agentos::registry::CallError> {
    let everything = agentos::registry::ToolPolicy::allow_all();
    let caller = if agent_id == agentos::registry::Caller::OWNER_ID {
        agentos::registry::Caller::owner(everything)
    } else {
        agentos::registry::Caller::agent(agent_id, everything, Vec::new())
    };
    let ctx = agentos::registry::CallContext::new(Arc::new(caller), "test", Duration::from_secs(30));
    app.registry.call(&ctx, tool, input).await
}

/// Registers `agent_id` (allowed every tool) with the in-process app's identity service, as the
/// owner would, so work that runs later on its behalf (schedules, approvals) finds it.
pub async fn register_in_process(app: &agentos::app::App, agent_id: &str) {
    let owner = agentos::registry::Caller::owner(agentos::registry::ToolPolicy::allow_all());
    let request = agentos::identity::RegisterRequest {
        agent_id: agent_id.to_owned(),
        name: agent_id.to_owned(),
        allowed_tools: Some(vec!["*".to_owned()]),
        ..Default::default()
    };
    app.identity
        .register_agent(&owner, request)
        .await
        .unwrap_or_else(|e| panic!("register {agent_id}: {e}"));
}

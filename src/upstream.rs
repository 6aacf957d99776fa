//! Clients to external MCP servers. Each connected server's tools join the registry as
//! `mcp.<server>.<tool>` with their schemas unchanged; calls go through the registry pipeline
//! and are forwarded over one shared connection per server.

mod proxy;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::registry::{RegisterError, Registry, Tool};
use proxy::{ProxyTool, UpstreamClient};

/// How long connecting and listing an upstream's tools may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// An MCP server started as a child process and spoken to over its stdin/stdout.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdioServerSpec {
    /// Name used in tool names (`mcp.<name>.<tool>`): 1-64 of `a-z`, `0-9`, `_`, `-`, starting with a letter or digit.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// The program to run, e.g. `npx` or `/usr/local/bin/my-server`.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables for it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory; defaults to agentos's own.
    pub cwd: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("server name `{0}` is invalid: use 1-64 of a-z, 0-9, `_` and `-`, starting with a letter or digit")]
    InvalidName(String),
    #[error("a server named `{0}` is already connected; remove it first")]
    Exists(String),
    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("server `{name}` did not complete the MCP handshake: {message}")]
    Handshake { name: String, message: String },
    #[error("server `{name}` did not answer within {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout { name: String },
    #[error("could not list the tools of `{name}`: {message}")]
    List { name: String, message: String },
    #[error(transparent)]
    Register(#[from] RegisterError),
}

pub fn valid_server_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=64).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

struct Connected {
    spec: StdioServerSpec,
    tool_names: Vec<String>,
    /// Owns the session; dropping it closes the connection and kills the child.
    _service: RunningService<RoleClient, UpstreamClient>,
}

/// What `agentos.mcp_servers_list` reports about one server.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServerSummary {
    pub name: String,
    pub command: String,
    pub args: Vec<String>,
    /// Registry names of its tools.
    pub tools: Vec<String>,
}

/// The connected upstream servers.
pub struct Upstreams {
    registry: Arc<Registry>,
    servers: Mutex<HashMap<String, Connected>>,
}

impl Upstreams {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            servers: Mutex::new(HashMap::new()),
        }
    }

    fn servers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Connected>> {
        self.servers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the server, lists all its tools and registers them; returns their registry names.
    pub async fn add_stdio(&self, spec: StdioServerSpec) -> Result<Vec<String>, UpstreamError> {
        if !valid_server_name(&spec.name) {
            return Err(UpstreamError::InvalidName(spec.name));
        }
        if self.servers().contains_key(&spec.name) {
            return Err(UpstreamError::Exists(spec.name));
        }
        let mut command = tokio::process::Command::new(&spec.command);
        command.args(&spec.args).envs(&spec.env).kill_on_drop(true);
        if let Some(cwd) = &spec.cwd {
            command.current_dir(cwd);
        }
        let transport = TokioChildProcess::builder(command)
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .map_err(|source| UpstreamError::Spawn {
                command: spec.command.clone(),
                source,
            })?
            .0;
        let name = spec.name.clone();
        let connect = async {
            let service = UpstreamClient
                .serve(transport)
                .await
                .map_err(|e| UpstreamError::Handshake {
                    name: name.clone(),
                    message: e.to_string(),
                })?;
            let tools = service.peer().list_all_tools().await.map_err(|e| UpstreamError::List {
                name: name.clone(),
                message: e.to_string(),
            })?;
            Ok::<_, UpstreamError>((service, tools))
        };
        let (service, tools) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| UpstreamError::Timeout { name: name.clone() })??;
        let prefix = format!("mcp.{name}.");
        let proxies: Vec<Arc<dyn Tool>> = tools
            .into_iter()
            .map(|tool| Arc::new(ProxyTool::new(&prefix, tool, service.peer().clone())) as Arc<dyn Tool>)
            .collect();
        let tool_names: Vec<String> = proxies.iter().map(|t| t.spec().name.to_string()).collect();
        {
            // Re-check under the lock: another add of the same name may have finished meanwhile.
            let mut servers = self.servers();
            if servers.contains_key(&name) {
                return Err(UpstreamError::Exists(name));
            }
            self.registry.replace_prefix(&prefix, proxies)?;
            servers.insert(
                name,
                Connected {
                    spec,
                    tool_names: tool_names.clone(),
                    _service: service,
                },
            );
        }
        Ok(tool_names)
    }

    /// Disconnects the server and removes its tools; false if no such server.
    pub fn remove(&self, name: &str) -> bool {
        let removed = self.servers().remove(name);
        match removed {
            Some(connected) => {
                let names: Vec<&str> = connected.tool_names.iter().map(String::as_str).collect();
                self.registry.unregister(&names);
                true
            }
            None => false,
        }
    }

    pub fn list(&self) -> Vec<ServerSummary> {
        let mut list: Vec<ServerSummary> = self
            .servers()
            .values()
            .map(|c| ServerSummary {
                name: c.spec.name.clone(),
                command: c.spec.command.clone(),
                args: c.spec.args.clone(),
                tools: c.tool_names.clone(),
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

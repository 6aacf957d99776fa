//! Clients to external MCP servers. Each connected server's tools join the registry as
//! `mcp.<server>.<tool>` with their schemas unchanged; calls go through the registry pipeline
//! and are forwarded over one shared connection per server, which a supervisor restarts when
//! it dies.

mod client;
mod crew;
#[cfg(target_os = "linux")]
mod lifeline;
mod proxy;
pub mod spec;
mod stdio_transport;
mod supervisor;
mod tool_names;
mod watched;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use schemars::JsonSchema;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::registry::{RegisterError, Registry};
pub use crew::{CrewAction, CrewError, CrewMember, FailoverOutcome, Health};
pub use spec::{ServerSpec, SpecError};
use supervisor::Link;
pub use supervisor::{Failure, Status};

/// How long connecting and listing an upstream's tools may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Spec(#[from] SpecError),
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

struct Managed {
    link: Arc<Link>,
    task: Option<JoinHandle<()>>,
}

/// What `agentos.mcp_servers_list` reports about one server.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServerSummary {
    pub name: String,
    /// stdio servers: the program and its arguments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// HTTP servers: the endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub status: Status,
    /// Process id of the running stdio server (also its process group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// How many times the connection was lost and restarted.
    pub restarts: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Registry names of its tools.
    pub tools: Vec<String>,
}

/// The upstream servers, connected or being restarted.
pub struct Upstreams {
    registry: Arc<Registry>,
    servers: Mutex<HashMap<String, Managed>>,
}

impl Upstreams {
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            servers: Mutex::new(HashMap::new()),
        }
    }

    fn servers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Managed>> {
        self.servers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves the name, or says it is taken.
    fn reserve(&self, link: &Arc<Link>) -> Result<(), UpstreamError> {
        let mut servers = self.servers();
        if servers.contains_key(link.name()) {
            return Err(UpstreamError::Exists(link.name().to_owned()));
        }
        servers.insert(
            link.name().to_owned(),
            Managed {
                link: link.clone(),
                task: None,
            },
        );
        proxy::register_resources(&self.registry, link);
        Ok(())
    }

    /// Connects every enabled server in the background (a slow or broken one delays nothing and
    /// stops no other; failures are logged and retried). Needs a Tokio runtime.
    pub fn start_all(&self, specs: Vec<ServerSpec>) -> Result<(), UpstreamError> {
        spec::validate_all(&specs)?;
        for spec in specs {
            let link = Link::new(spec);
            self.reserve(&link)?;
            if link.spec.enabled {
                // The first tool listing waits (briefly) until this server is connected or failed.
                let starting = self.registry.starting(link.name());
                let task = tokio::spawn(supervisor::supervise(
                    self.registry.clone(),
                    link.clone(),
                    supervisor::First::Starting(starting),
                ));
                if let Some(managed) = self.servers().get_mut(link.name()) {
                    managed.task = Some(task);
                }
            }
        }
        Ok(())
    }

    /// Connects the server now, lists all its tools and registers them; returns their registry
    /// names. It is then supervised like a configured one.
    pub async fn add(&self, mut spec: ServerSpec) -> Result<Vec<String>, UpstreamError> {
        spec.enabled = true;
        spec.validate()?;
        let link = Link::new(spec);
        self.reserve(&link)?;
        let first = async {
            let connection = supervisor::connect(&link).await?;
            // Inspect the peer before handing the connection to its supervisor.
            let names = match supervisor::register_tools(&self.registry, &link, connection.peer()).await {
                Ok(names) => names,
                Err(error) => {
                    link.kill_children();
                    return Err(error);
                }
            };
            Ok((connection, names))
        };
        let (connection, names) = match first.await {
            Ok(done) => done,
            Err(error) => {
                let mut servers = self.servers();
                if servers.get(link.name()).is_some_and(|m| Arc::ptr_eq(&m.link, &link)) {
                    servers.remove(link.name());
                }
                return Err(error);
            }
        };
        supervisor::publish(&link, &connection);
        let task = tokio::spawn(supervisor::supervise(
            self.registry.clone(),
            link.clone(),
            supervisor::First::Connected(Box::new(connection)),
        ));
        let mut servers = self.servers();
        match servers.get_mut(link.name()) {
            Some(managed) if Arc::ptr_eq(&managed.link, &link) => managed.task = Some(task),
            // Removed while connecting.
            _ => {
                link.retire(&self.registry);
                link.kill_children();
            }
        }
        Ok(names)
    }

    /// Disconnects the server (killing its process group) and removes its tools; false if no
    /// such server.
    pub fn remove(&self, name: &str) -> bool {
        let Some(managed) = self.servers().remove(name) else {
            return false;
        };
        managed.link.retire(&self.registry);
        managed.link.kill_children();
        true
    }

    /// Stops every server and waits (briefly) until their processes are reaped.
    pub async fn shutdown(&self) {
        let all: Vec<Managed> = self.servers().drain().map(|(_, m)| m).collect();
        for managed in &all {
            managed.link.stop.cancel();
            managed.link.kill_children();
        }
        for managed in all {
            if let Some(task) = managed.task {
                let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            }
        }
    }

    pub fn list(&self) -> Vec<ServerSummary> {
        let mut list: Vec<ServerSummary> = self
            .servers()
            .values()
            .map(|managed| {
                let spec = &managed.link.spec;
                let state = managed.link.state();
                ServerSummary {
                    name: spec.name.clone(),
                    command: spec.command.clone(),
                    args: spec.args.clone(),
                    url: spec.url.clone(),
                    status: state.status,
                    pid: state.pgid,
                    restarts: state.restarts,
                    last_error: state.last_error.clone(),
                    tools: state.tool_names.clone(),
                }
            })
            .collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }
}

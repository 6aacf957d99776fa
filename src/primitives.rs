//! The built-in `agentos.*` primitives, one file per family. Each family registers its tools
//! with the registry; state lives in the store, scoped to the calling agent.

mod data;
pub mod database;
pub mod events;
pub mod files;
pub mod knowledge;
mod mcp_servers;
pub mod memory;
pub mod network;
pub mod queue;
mod quota;
pub mod schedule;
pub mod secrets;
mod time;
mod tools;
mod voice;
pub mod workflow;

use std::sync::{Arc, Weak};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::registry::{CallContext, Registry, Tool, ToolFailure};
use crate::sealing::Sealer;
use crate::store::{Store, StoreError};
use crate::upstream::Upstreams;
pub use network::OwnListeners;

/// What primitives share: the store, the configuration, and a way back to the registry for the
/// tools that call or describe other tools.
#[derive(Clone)]
pub struct Services {
    pub store: Arc<dyn Store>,
    pub config: Arc<Config>,
    /// Weak: the registry owns the tools, so a strong reference would never be freed.
    pub registry: Weak<Registry>,
    /// Weak for the same reason: upstreams register tools that hold these services.
    pub upstreams: Weak<Upstreams>,
    /// Where agentos's own HTTP server listens, so the network tools stay off it.
    pub own_listeners: Arc<OwnListeners>,
    /// Seals secrets, and the sensitive inputs of schedules, at rest.
    pub sealer: Arc<Sealer>,
    /// Speech to text and text to speech; `None` when `[voice] enabled = false`.
    pub voice: Option<Arc<crate::voice::Voice>>,
}

/// Whose records a family tool works on: the caller's own, or, when an ops-admin names another
/// agent, that agent's (so an operator can see and stop what any agent left running).
pub(crate) fn subject<'a>(ctx: &'a CallContext, agent_id: Option<&'a str>) -> Result<&'a str, ToolFailure> {
    match agent_id {
        None => Ok(&ctx.caller.agent_id),
        Some(id) if id == &*ctx.caller.agent_id || ctx.caller.is_admin() => Ok(id),
        Some(_) => Err(ToolFailure::invalid_input(
            "`agentId` names another agent: only ops-admins may act on another agent's records; leave \
             it out to act on your own",
        )),
    }
}

impl Services {
    /// The registry, for tools that call other tools; fails only while agentos shuts down.
    pub fn registry(&self) -> Result<Arc<Registry>, ToolFailure> {
        self.registry
            .upgrade()
            .ok_or_else(|| ToolFailure::new("agentos is shutting down"))
    }
}

/// Every primitive family's tools, to register.
pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let mut tools = Vec::new();
    tools.extend(memory::tools(services));
    tools.extend(files::tools(services));
    tools.extend(network::tools(services));
    tools.extend(database::tools(services));
    tools.extend(events::tools(services));
    tools.extend(queue::tools(services));
    tools.extend(schedule::tools(services));
    tools.extend(workflow::tools(services));
    tools.extend(secrets::tools(services));
    tools.extend(knowledge::tools(services));
    tools.extend(quota::tools(services));
    tools.extend(time::tools());
    tools.extend(data::tools());
    tools.extend(tools::tools(services));
    tools.extend(mcp_servers::tools(services));
    tools.extend(voice::tools(services));
    tools
}

/// Starts the families' background work (firing schedules, expiring items) until `shutdown`.
/// Needs a Tokio runtime; call it once per process.
pub fn start_background(services: &Services, shutdown: CancellationToken) {
    memory::start(services, shutdown.clone());
    schedule::start(services, shutdown.clone());
    workflow::start(services, shutdown);
}

/// Checks a slash-separated name an agent chooses for its own things (an event topic, a queue):
/// 1-200 characters of letters, digits and `.` `_` `/` `-`. The error names the field and shows
/// an example.
pub(crate) fn check_channel_name(field: &str, name: &str, example: &str) -> Result<(), ToolFailure> {
    let valid = (1..=200).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ToolFailure::new(format!(
            "`{field}` must be 1-200 characters of letters, digits and `.` `_` `/` `-` (e.g. `{example}`)"
        )))
    }
}

/// Storage problems reach the model as a tool failure it can retry; details go to the log.
impl From<StoreError> for ToolFailure {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Refused(message) => ToolFailure::new(message),
            StoreError::Busy(_) => ToolFailure::busy(error.to_string()),
            error => {
                tracing::error!(%error, "store operation failed");
                ToolFailure::new(format!("agentos could not access its store ({error}); retry shortly"))
            }
        }
    }
}

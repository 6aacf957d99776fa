//! The built-in `agentos.*` primitives, one file per family. Each family registers its tools
//! with the registry; state lives in the store, scoped to the calling agent.

mod mcp_servers;
mod memory;
mod time;
mod tools;

use std::sync::{Arc, Weak};

use crate::config::LimitsConfig;
use crate::registry::{RegisterError, Registry, ToolFailure};
use crate::store::{MemoryStore, StoreError};
use crate::upstream::Upstreams;

/// What primitives share: the store, the limits, and a way back to the registry for the tools
/// that describe tools.
#[derive(Clone)]
pub struct Services {
    pub memory: Arc<dyn MemoryStore>,
    pub limits: LimitsConfig,
    /// Weak: the registry owns the tools, so a strong reference would never be freed.
    pub registry: Weak<Registry>,
    /// Weak for the same reason: upstreams register tools that hold these services.
    pub upstreams: Weak<Upstreams>,
}

/// Registers every primitive family.
pub fn register_all(registry: &Arc<Registry>, services: Services) -> Result<(), RegisterError> {
    let mut tools = Vec::new();
    tools.extend(memory::tools(&services));
    tools.extend(time::tools());
    tools.extend(tools::tools(&services));
    tools.extend(mcp_servers::tools(&services));
    registry.register(tools)
}

/// Storage problems reach the model as a tool failure it can retry; details go to the log.
impl From<StoreError> for ToolFailure {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "store operation failed");
        ToolFailure::new(format!("agentos could not access its store ({error}); retry shortly"))
    }
}

//! `[quotas]`: how much each agent may keep in the stored families (memory, events, queue,
//! knowledge, secrets). Files and the scratch database have their own caps in `[files]` and
//! `[database]`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const MIB: u64 = 1024 * 1024;

/// `[quotas]` in the config file. Every figure is per agent; a write that would pass one is
/// refused with an error naming the setting, and deleting frees the space at once.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QuotasConfig {
    /// Most bytes of keys and values one agent keeps in memory (default 32 MiB).
    #[schemars(range(min = 1))]
    pub memory_bytes: u64,
    /// Most memory keys one agent keeps (default 100000).
    #[schemars(range(min = 1))]
    pub memory_items: u64,
    /// Most bytes of topics and payloads one agent keeps in events, all topics together
    /// (default 32 MiB).
    #[schemars(range(min = 1))]
    pub events_bytes: u64,
    /// Most events one agent keeps, all topics together (default 100000).
    #[schemars(range(min = 1))]
    pub events_items: u64,
    /// Most bytes of queue names and items one agent keeps queued, all queues together,
    /// counting popped items not yet acknowledged (default 32 MiB).
    #[schemars(range(min = 1))]
    pub queue_bytes: u64,
    /// Most items one agent keeps queued, all queues together (default 100000).
    #[schemars(range(min = 1))]
    pub queue_items: u64,
    /// Most bytes of documents (text, titles, sources, metadata) one agent keeps in knowledge
    /// (default 32 MiB). The number of documents is `knowledge.max_documents_per_agent`.
    #[schemars(range(min = 1))]
    pub knowledge_bytes: u64,
    /// Most bytes of names and sealed values one agent keeps in secrets (default 1 MiB). The
    /// number of secrets is `secrets.max_secrets_per_agent`.
    #[schemars(range(min = 1))]
    pub secrets_bytes: u64,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        // Together with files (100 MiB) and the scratch database (100 MiB), about 330 MiB per
        // agent at most: a laptop with a few self-registered agents keeps its disk.
        Self {
            memory_bytes: 32 * MIB,
            memory_items: 100_000,
            events_bytes: 32 * MIB,
            events_items: 100_000,
            queue_bytes: 32 * MIB,
            queue_items: 100_000,
            knowledge_bytes: 32 * MIB,
            secrets_bytes: MIB,
        }
    }
}

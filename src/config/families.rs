//! The settings of the built-in primitive families: `[files]`, `[network]`, `[database]`,
//! `[events]`, `[queue]`, `[schedule]`, `[workflow]`, `[secrets]` and `[knowledge]`. They live
//! with the rest of the configuration so that `config` depends on no part that reads it.

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[files]` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// Most bytes all of one agent's files may hold together (default 100 MiB).
    pub quota_bytes: u64,
    /// Largest single file, in bytes (default 10 MiB).
    pub max_file_bytes: u64,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            quota_bytes: 100 * 1024 * 1024,
            max_file_bytes: 10 * 1024 * 1024,
        }
    }
}

/// `[network]` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Let the network tools reach loopback, private (RFC 1918, carrier-grade NAT, IPv6
    /// unique-local), link-local and other non-public addresses. Off by default so that agents
    /// cannot probe this machine or its network. Cloud-metadata addresses stay refused unless
    /// listed in `allowed_private_hosts`.
    pub allow_private_addresses: bool,
    /// Non-public hosts the network tools may reach even when `allow_private_addresses` is off:
    /// host names (`nas.lan`), IP addresses (`10.0.0.5`, `fd00::1`) or CIDR ranges
    /// (`192.168.1.0/24`), each on every port or, written `host:port` (`localhost:8080`,
    /// `[fd00::1]:443`), on that port only. agentos's own listening address is never reached,
    /// even with `allow_private_addresses`, unless listed here with its port.
    pub allowed_private_hosts: Vec<String>,
    /// Most redirects followed for one request; each hop is checked like the first URL.
    pub max_redirects: usize,
    /// Largest response body returned, in bytes; a longer one is cut off with `truncated: true`.
    pub max_response_bytes: usize,
    /// Largest request body accepted, in bytes.
    pub max_request_bytes: usize,
    /// Longest one request may take, in milliseconds, redirects and body included; also the
    /// largest `timeoutMs` a call may ask for.
    pub timeout_ms: u64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            allow_private_addresses: false,
            allowed_private_hosts: Vec::new(),
            max_redirects: 5,
            max_response_bytes: 5 * 1024 * 1024,
            max_request_bytes: 1024 * 1024,
            timeout_ms: 30_000,
        }
    }
}

/// `[database]` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Most rows one call returns; the rest are left out and `truncated` is set (default 1000).
    pub max_rows: usize,
    /// Most bytes of JSON one call returns; rows past it are left out like rows past `max_rows`
    /// (default 10 MiB).
    pub max_result_bytes: usize,
    /// Largest size of one agent's database file, in bytes (default 100 MiB).
    pub max_db_bytes: u64,
    /// How long one statement may run, in milliseconds, before it is stopped (default 5000).
    pub timeout_ms: u64,
    /// Longest SQL text accepted, in characters (default 100000).
    pub max_sql_chars: usize,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_rows: 1000,
            max_result_bytes: 10 * 1024 * 1024,
            max_db_bytes: 100 * 1024 * 1024,
            timeout_ms: 5000,
            max_sql_chars: 100_000,
        }
    }
}

/// `[events]` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Most events kept per topic; each publish beyond it drops the topic's oldest event.
    #[schemars(range(min = 1))]
    pub max_events_per_topic: usize,
    /// Largest event payload, in bytes of JSON.
    #[schemars(range(min = 1))]
    pub max_payload_bytes: usize,
    /// Longest wait a poll may ask for (`waitMs`), in milliseconds.
    pub max_wait_ms: u64,
    /// Most events one poll returns (`limit`).
    #[schemars(range(min = 1))]
    pub max_page: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            max_events_per_topic: 10_000,
            max_payload_bytes: 256 * 1024,
            max_wait_ms: 30_000,
            max_page: 1000,
        }
    }
}

/// `[queue]` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Largest item, in bytes of JSON.
    #[schemars(range(min = 1))]
    pub max_item_bytes: usize,
    /// Longest visibility timeout a pop may ask for (`visibilitySeconds`), in seconds.
    #[schemars(range(min = 1))]
    pub max_visibility_seconds: u64,
    /// Most items one pop may take (`max`).
    #[schemars(range(min = 1))]
    pub max_pop: usize,
    /// Most items one queue holds, counting popped items not yet acknowledged; pushes beyond
    /// it are refused.
    #[schemars(range(min = 1))]
    pub max_items_per_queue: usize,
    /// Longest delay a push may ask for (`delaySeconds`), in seconds.
    pub max_delay_seconds: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_item_bytes: 256 * 1024,
            max_visibility_seconds: 43_200,
            max_pop: 100,
            max_items_per_queue: 100_000,
            max_delay_seconds: 7 * 24 * 3600,
        }
    }
}

/// `[schedule]` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Shortest interval `everySeconds` may ask for, in seconds.
    pub min_interval_seconds: u64,
    /// Most schedules one agent may have; finished one-shot schedules count until cancelled.
    pub max_schedules_per_agent: usize,
    /// Runs kept in each schedule's history; older runs are forgotten.
    pub max_runs_kept: usize,
    /// How long one firing may run, in seconds, before it is abandoned with outcome `timeout`.
    pub run_timeout_secs: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            min_interval_seconds: 1,
            max_schedules_per_agent: 100,
            max_runs_kept: 100,
            run_timeout_secs: 60,
        }
    }
}

/// `[workflow]` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WorkflowConfig {
    /// Most steps one workflow may have. Steps of workflows started by its steps (nested
    /// workflows) count toward the same budget.
    pub max_steps: usize,
    /// Largest step result kept, in bytes of JSON; a larger result keeps only its beginning
    /// (later steps still receive the whole output through `$from`).
    pub max_result_bytes: usize,
    /// How deep workflows may nest (a step calling `agentos.workflow_run`); 1 forbids nesting.
    pub max_depth: usize,
    /// Finished runs kept per agent for `agentos.workflow_get`; older ones are forgotten.
    pub max_runs_kept: usize,
}

impl Default for WorkflowConfig {
    fn default() -> Self {
        Self {
            max_steps: 50,
            max_result_bytes: 64 * 1024,
            max_depth: 3,
            max_runs_kept: 1000,
        }
    }
}

/// `[secrets]` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// Largest secret value, in bytes.
    pub max_value_bytes: usize,
    /// Most secrets one agent may keep.
    pub max_secrets_per_agent: usize,
    /// Key file; default `<data_dir>/secrets.key`. Ignored when AGENTOS_SECRETS_KEY is set.
    /// It also seals the sensitive inputs of calls held for approval and of schedules.
    pub key_file: Option<PathBuf>,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        Self {
            max_value_bytes: 64 * 1024,
            max_secrets_per_agent: 1000,
            key_file: None,
        }
    }
}

/// `[knowledge]` in the config file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct KnowledgeConfig {
    /// Longest document accepted, in characters.
    pub max_document_chars: usize,
    /// Target size of a chunk, in characters; paragraphs are kept together up to this size.
    pub chunk_chars: usize,
    /// Most documents one agent may keep.
    pub max_documents_per_agent: usize,
}

impl Default for KnowledgeConfig {
    fn default() -> Self {
        Self {
            max_document_chars: 1_000_000,
            chunk_chars: 1200,
            max_documents_per_agent: 10_000,
        }
    }
}

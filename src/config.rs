//! Configuration: built-in defaults, overridden by an optional TOML file, overridden by
//! environment variables and command-line flags (the CLI resolves those two; see `main`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::registry::{NameStyle, ToolPolicy};

mod families;
mod oversight;
mod quotas;
mod skills;
mod studio;
mod voice;

use crate::store::Synchronous;
pub use families::{
    DatabaseConfig, EventsConfig, FilesConfig, KnowledgeConfig, NetworkConfig, QueueConfig, ScheduleConfig,
    SecretsConfig, WorkflowConfig,
};
pub use oversight::{
    ApprovalsConfig, AuditConfig, IdentityConfig, LogFormat, LogsConfig, MetricsConfig, RateLimit, RateLimitConfig,
    ResetOutbox, SelfRegistration, TracesConfig,
};
pub use quotas::QuotasConfig;
pub use skills::{SkillsConfig, TrustedKey};
pub use studio::StudioConfig;
pub use voice::VoiceConfig;
pub use voice::{DEFAULT_VOICE, ONNXRUNTIME_FILE, VOICES_DIR, WHISPER_FILE};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("config file `{path}` is invalid: {message}")]
    Parse { path: String, message: String },
    #[error("config file `{path}` refers to environment variable `{var}`, which is not set")]
    MissingVar { path: String, var: String },
    #[error("invalid setting `{setting}`: {message}")]
    Invalid { setting: &'static str, message: String },
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address `agentos serve` listens on.
    pub listen: SocketAddr,
    /// Where the SQLite database and keys live.
    pub data_dir: PathBuf,
    /// How tool names are spelled for clients that do not choose: `native` (`agentos.mem_set`)
    /// or `strict` (`agentos_mem_set`, for LLM APIs that allow only `^[a-zA-Z0-9_-]{1,64}$`).
    #[schemars(with = "String")]
    pub name_style: NameStyle,
    pub http: HttpConfig,
    pub access: AccessConfig,
    pub limits: LimitsConfig,
    pub store: StoreConfig,
    pub files: FilesConfig,
    pub network: NetworkConfig,
    pub database: DatabaseConfig,
    pub events: EventsConfig,
    pub queue: QueueConfig,
    pub schedule: ScheduleConfig,
    pub workflow: WorkflowConfig,
    pub secrets: SecretsConfig,
    pub knowledge: KnowledgeConfig,
    pub quotas: QuotasConfig,
    /// Published skills: their size, signatures and trusted publishers.
    pub skills: SkillsConfig,
    pub identity: IdentityConfig,
    pub rate_limits: RateLimitConfig,
    pub audit: AuditConfig,
    pub approvals: ApprovalsConfig,
    /// The studio's command language (`POST /api/studio/command`).
    pub studio: StudioConfig,
    /// Speech to text and text to speech (`agentos.voice_*`, `/api/voice/*`).
    pub voice: VoiceConfig,
    pub metrics: MetricsConfig,
    pub traces: TracesConfig,
    pub logs: LogsConfig,
    /// Upstream MCP servers whose tools are offered as `mcp.<name>.<tool>` (more can be added as
    /// one file each in `tools/servers/*.toml`, next to this file, or in the current directory
    /// when agentos runs without one).
    pub mcp_servers: Vec<crate::upstream::ServerSpec>,
    /// How long, in seconds from start, a client's first `tools/list` waits for the enabled MCP
    /// servers to connect (or fail), so clients that list only once see their tools. A server
    /// still connecting after this is logged and its tools follow with `list_changed`. 0: no wait.
    pub mcp_startup_wait_secs: f64,
    /// Most tools, resources, resource templates or prompts in one MCP list answer (1-10000); a
    /// client follows `nextCursor` for the rest.
    pub mcp_page_size: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `Host` header values accepted on /mcp (DNS-rebinding protection). Add your public host
    /// names when serving beyond loopback; `["*"]` turns the check off (not recommended).
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call /mcp (e.g. `https://app.example.com:443`). Empty: requests
    /// carrying an `Origin` header must come from a loopback origin.
    pub allowed_origins: Vec<String>,
    /// Largest accepted request body, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Browser origins allowed to call the REST routes cross-origin (CORS), e.g.
    /// `https://app.example.com`; `["*"]` allows any origin without credentials. Empty: no CORS.
    pub cors_origins: Vec<String>,
    /// Seconds a connection has to deliver a complete request head (request line and headers),
    /// counted from when it opens or, on a kept-alive connection, from the first byte of the next
    /// request. Past it the connection is closed without an answer.
    #[schemars(range(min = 1))]
    pub header_read_timeout_secs: u64,
    /// Seconds a request body has, from the end of its head, to arrive in full. Past it the
    /// request gets 408 and the connection is closed.
    #[schemars(range(min = 1))]
    pub body_read_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait, with no request in progress, for the next
    /// request to start. Past it the connection is closed. Responses still streaming (the SSE
    /// stream of `GET /mcp`) are in progress, never idle.
    #[schemars(range(min = 1))]
    pub idle_timeout_secs: u64,
    /// Most connections served at once. Past it a new connection is answered `503` with
    /// `Retry-After: 1` and closed. Lowered at start, and logged, when the open-file limit could
    /// not hold this many beside the files, database and upstream pipes agentos needs.
    #[schemars(range(min = 1))]
    pub max_connections: usize,
    /// Bytes of request bodies one caller (its agent when authenticated, else its address) may
    /// have in transit at once, counted by `Content-Length` when given and as they arrive
    /// otherwise. Past it a request is refused with `503` and `Retry-After` before its body is
    /// read. At least `max_body_bytes`.
    pub max_body_bytes_in_flight_per_caller: usize,
    /// Most MCP sessions open at once. Each stays bound to the agent that opened it until it
    /// ends; past this many, the least recently used session is closed (its next request gets
    /// 404 and the client initializes anew).
    #[schemars(range(min = 1))]
    pub max_mcp_sessions: usize,
    /// Answer MCP `tools/call`, `tools/list` and `ping` requests (in a session, or stateless
    /// 2026-07-28 ones) straight from the registry, with the checks of the MCP transport, instead
    /// of through the transport's per-request tasks and channels. Same answers, less work per
    /// call; anything else (streams, progress, batches, other methods) always takes the
    /// transport. Off only to compare the two.
    pub mcp_fast_path: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Tools the local owner may see and call (stdio clients and unauthenticated local HTTP):
    /// exact names, families such as `agentos.mem_*`, or `*`.
    #[schemars(with = "Vec<String>")]
    pub allowed_tools: ToolPolicy,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// How long one tool call may run, in seconds.
    pub call_timeout_secs: f64,
    /// Largest memory value, in bytes of JSON.
    pub max_value_bytes: usize,
    /// Largest page a listing returns.
    pub max_page_size: usize,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// `full` (survives power loss) or `normal` (survives a process crash; faster).
    #[schemars(with = "String")]
    pub synchronous: Synchronous,
    /// Writes that may wait for the writer (beyond the batch it is committing). Past this a
    /// write is refused at once as `busy` (HTTP 503 with `Retry-After`) rather than queued.
    #[schemars(range(min = 1))]
    pub max_pending_writes: usize,
    /// Reads that may wait for one of the reader connections, served in arrival order. Past
    /// this a read is refused at once as `busy`.
    #[schemars(range(min = 1))]
    pub max_waiting_reads: usize,
    /// Keep everything in a PostgreSQL database instead of the embedded SQLite file:
    /// `postgres://user:password@host:5432/database`. Replicas that share one database share
    /// every agent's data, identity, audit trail and approvals (README, "Scaling out"). Unset
    /// (the default): SQLite under `data_dir`. Also `--database-url` or `AGENTOS_DATABASE_URL`.
    /// `?sslmode=verify-full` connects over TLS and checks the server's certificate, against
    /// `&sslrootcert=PATH` (PEM) when given, else the system's trusted roots.
    pub database_url: Option<String>,
    /// Connections this replica keeps to PostgreSQL at most (default 32). The server's
    /// `max_connections` must cover every replica's pool.
    #[schemars(range(min = 1, max = 1000))]
    pub pool_size: usize,
}

impl Config {
    /// The store's waiting lines and the per-agent quotas it enforces.
    pub fn store_limits(&self) -> crate::store::StoreLimits {
        use crate::store::{Quota, Quotas};
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let quotas = &self.quotas;
        crate::store::StoreLimits {
            max_pending_writes: self.store.max_pending_writes,
            max_waiting_reads: self.store.max_waiting_reads,
            quotas: Quotas {
                memory: Quota {
                    max_items: quotas.memory_items,
                    max_bytes: quotas.memory_bytes,
                },
                events: Quota {
                    max_items: quotas.events_items,
                    max_bytes: quotas.events_bytes,
                },
                queue: Quota {
                    max_items: quotas.queue_items,
                    max_bytes: quotas.queue_bytes,
                },
                knowledge: Quota {
                    max_items: count(self.knowledge.max_documents_per_agent),
                    max_bytes: quotas.knowledge_bytes,
                },
                secrets: Quota {
                    max_items: count(self.secrets.max_secrets_per_agent),
                    max_bytes: quotas.secrets_bytes,
                },
            },
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7777)),
            data_dir: PathBuf::from("./agentos-data"),
            name_style: NameStyle::Native,
            http: HttpConfig::default(),
            access: AccessConfig::default(),
            limits: LimitsConfig::default(),
            store: StoreConfig::default(),
            files: Default::default(),
            network: Default::default(),
            database: Default::default(),
            events: Default::default(),
            queue: Default::default(),
            schedule: Default::default(),
            workflow: Default::default(),
            secrets: Default::default(),
            knowledge: Default::default(),
            quotas: Default::default(),
            skills: Default::default(),
            identity: Default::default(),
            rate_limits: Default::default(),
            audit: Default::default(),
            approvals: Default::default(),
            studio: Default::default(),
            voice: Default::default(),
            metrics: Default::default(),
            traces: Default::default(),
            logs: Default::default(),
            mcp_servers: Vec::new(),
            mcp_startup_wait_secs: crate::registry::DEFAULT_STARTUP_WAIT.as_secs_f64(),
            mcp_page_size: crate::registry::DEFAULT_PAGE_SIZE,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            allowed_origins: Vec::new(),
            max_body_bytes: 1024 * 1024,
            cors_origins: Vec::new(),
            // A client on a slow link sends a request head (well under 8 KiB) in far less
            // than 10 s; a connection that has sent nothing by then is holding a descriptor.
            header_read_timeout_secs: 10,
            // 1 MiB (the default body cap) in 30 s is ~35 KB/s, slower than any real client.
            body_read_timeout_secs: 30,
            // Below the 90 s after which pooling clients (reqwest, hyper) drop idle connections
            // themselves, and above the seconds between the calls of a busy agent.
            idle_timeout_secs: 60,
            max_connections: 1024,
            max_mcp_sessions: 50_000,
            mcp_fast_path: true,
            // Eight bodies of the default cap at once per caller.
            max_body_bytes_in_flight_per_caller: 8 * 1024 * 1024,
        }
    }
}

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            allowed_tools: ToolPolicy::allow_all(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            call_timeout_secs: 60.0,
            max_value_bytes: 1024 * 1024,
            max_page_size: 1000,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        let limits = crate::store::StoreLimits::default();
        Self {
            synchronous: Synchronous::Full,
            max_pending_writes: limits.max_pending_writes,
            max_waiting_reads: limits.max_waiting_reads,
            database_url: None,
            pool_size: crate::store::DEFAULT_POOL_SIZE,
        }
    }
}

impl Config {
    /// The key file that seals secrets and sensitive inputs kept for later runs.
    pub fn secrets_key_file(&self) -> PathBuf {
        self.secrets
            .key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secrets.key"))
    }

    /// Reads a TOML file, expanding `${VAR}` from the environment (for secrets kept out of it).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut document: toml::Value = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        expand_env_in(&mut document).map_err(|var| ConfigError::MissingVar {
            path: shown.clone(),
            var,
        })?;
        let config: Config = document.try_into().map_err(|e: toml::de::Error| ConfigError::Parse {
            path: shown,
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.skills.trusted().map_err(|message| ConfigError::Invalid {
            setting: "skills.trusted_keys",
            message,
        })?;
        let timeout = self.limits.call_timeout_secs;
        if !(timeout.is_finite() && timeout > 0.0 && timeout <= 86_400.0) {
            return Err(ConfigError::Invalid {
                setting: "limits.call_timeout_secs",
                message: format!("{timeout} is not between 0 and 86400 seconds"),
            });
        }
        let wait = self.mcp_startup_wait_secs;
        if !(wait.is_finite() && (0.0..=300.0).contains(&wait)) {
            return Err(ConfigError::Invalid {
                setting: "mcp_startup_wait_secs",
                message: format!("{wait} is not between 0 and 300 seconds"),
            });
        }
        if !(1..=10_000).contains(&self.mcp_page_size) {
            return Err(ConfigError::Invalid {
                setting: "mcp_page_size",
                message: format!("{} is not between 1 and 10000", self.mcp_page_size),
            });
        }
        if let Some(url) = &self.store.database_url
            && !crate::store::is_postgres_url(url)
        {
            return Err(ConfigError::Invalid {
                setting: "store.database_url",
                message: "must start with postgres:// or postgresql:// (leave it unset for the embedded SQLite store)"
                    .into(),
            });
        }
        if !(1..=1000).contains(&self.store.pool_size) {
            return Err(ConfigError::Invalid {
                setting: "store.pool_size",
                message: format!("{} is not between 1 and 1000", self.store.pool_size),
            });
        }
        if self.limits.max_page_size == 0 {
            return Err(ConfigError::Invalid {
                setting: "limits.max_page_size",
                message: "must be at least 1".into(),
            });
        }
        let must_be_positive: [(&'static str, u64); 48] = [
            ("http.max_mcp_sessions", self.http.max_mcp_sessions as u64),
            ("http.header_read_timeout_secs", self.http.header_read_timeout_secs),
            ("http.body_read_timeout_secs", self.http.body_read_timeout_secs),
            ("http.idle_timeout_secs", self.http.idle_timeout_secs),
            ("http.max_connections", self.http.max_connections as u64),
            ("store.max_pending_writes", self.store.max_pending_writes as u64),
            ("store.max_waiting_reads", self.store.max_waiting_reads as u64),
            ("files.quota_bytes", self.files.quota_bytes),
            ("files.max_file_bytes", self.files.max_file_bytes),
            ("network.max_response_bytes", self.network.max_response_bytes as u64),
            ("network.timeout_ms", self.network.timeout_ms),
            ("database.max_rows", self.database.max_rows as u64),
            ("database.max_result_bytes", self.database.max_result_bytes as u64),
            ("database.max_db_bytes", self.database.max_db_bytes),
            ("database.timeout_ms", self.database.timeout_ms),
            ("database.max_sql_chars", self.database.max_sql_chars as u64),
            ("events.max_events_per_topic", self.events.max_events_per_topic as u64),
            ("events.max_payload_bytes", self.events.max_payload_bytes as u64),
            ("events.max_page", self.events.max_page as u64),
            ("queue.max_item_bytes", self.queue.max_item_bytes as u64),
            ("queue.max_visibility_seconds", self.queue.max_visibility_seconds),
            ("queue.max_pop", self.queue.max_pop as u64),
            ("queue.max_items_per_queue", self.queue.max_items_per_queue as u64),
            ("schedule.min_interval_seconds", self.schedule.min_interval_seconds),
            ("schedule.run_timeout_secs", self.schedule.run_timeout_secs),
            ("workflow.max_steps", self.workflow.max_steps as u64),
            ("secrets.max_value_bytes", self.secrets.max_value_bytes as u64),
            ("knowledge.chunk_chars", self.knowledge.chunk_chars as u64),
            ("quotas.memory_bytes", self.quotas.memory_bytes),
            ("quotas.memory_items", self.quotas.memory_items),
            ("quotas.events_bytes", self.quotas.events_bytes),
            ("quotas.events_items", self.quotas.events_items),
            ("quotas.queue_bytes", self.quotas.queue_bytes),
            ("quotas.queue_items", self.quotas.queue_items),
            ("quotas.knowledge_bytes", self.quotas.knowledge_bytes),
            ("quotas.secrets_bytes", self.quotas.secrets_bytes),
            ("identity.token_ttl_days", self.identity.token_ttl_days.into()),
            ("identity.session_ttl_hours", self.identity.session_ttl_hours.into()),
            (
                "identity.reset_token_ttl_minutes",
                self.identity.reset_token_ttl_minutes.into(),
            ),
            ("rate_limits.mcp.per_minute", self.rate_limits.mcp.per_minute.into()),
            ("rate_limits.api.per_minute", self.rate_limits.api.per_minute.into()),
            ("rate_limits.auth.per_minute", self.rate_limits.auth.per_minute.into()),
            ("audit.retention_days", self.audit.retention_days.into()),
            ("approvals.wait_secs", self.approvals.wait_secs),
            ("approvals.expire_secs", self.approvals.expire_secs),
            ("studio.confirm_ttl_secs", self.studio.confirm_ttl_secs),
            ("traces.retention_hours", self.traces.retention_hours.into()),
            ("traces.max_traces", self.traces.max_traces),
        ];
        if let Some((setting, _)) = must_be_positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::Invalid {
                setting,
                message: "must be at least 1".into(),
            });
        }
        if self.studio.confirm_ttl_secs > 3600 {
            return Err(ConfigError::Invalid {
                setting: "studio.confirm_ttl_secs",
                message: format!("{} is more than 3600 seconds", self.studio.confirm_ttl_secs),
            });
        }
        if let Some((setting, message)) = self.voice.problem() {
            return Err(ConfigError::Invalid { setting, message });
        }
        crate::upstream::spec::validate_all(&self.mcp_servers).map_err(|e| ConfigError::Invalid {
            setting: "mcp_servers",
            message: e.to_string(),
        })?;
        if self.identity.issuer.trim().is_empty() {
            return Err(ConfigError::Invalid {
                setting: "identity.issuer",
                message: "must not be empty".into(),
            });
        }
        if !self.identity.signing_key.is_empty() && self.identity.signing_key.len() < 32 {
            return Err(ConfigError::Invalid {
                setting: "identity.signing_key",
                message: "must be at least 32 bytes (or empty to generate one)".into(),
            });
        }
        if self.http.max_body_bytes < 1024 {
            return Err(ConfigError::Invalid {
                setting: "http.max_body_bytes",
                message: "must be at least 1024".into(),
            });
        }
        if self.http.max_body_bytes_in_flight_per_caller < self.http.max_body_bytes {
            return Err(ConfigError::Invalid {
                setting: "http.max_body_bytes_in_flight_per_caller",
                message: format!(
                    "must be at least http.max_body_bytes ({}), or no body of the largest size could be read",
                    self.http.max_body_bytes
                ),
            });
        }
        let a_day = 86_400;
        let timeouts = [
            ("http.header_read_timeout_secs", self.http.header_read_timeout_secs),
            ("http.body_read_timeout_secs", self.http.body_read_timeout_secs),
            ("http.idle_timeout_secs", self.http.idle_timeout_secs),
        ];
        if let Some((setting, value)) = timeouts.iter().find(|(_, value)| *value > a_day) {
            return Err(ConfigError::Invalid {
                setting,
                message: format!("{value} is more than a day"),
            });
        }
        Ok(())
    }

    pub fn call_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.limits.call_timeout_secs)
    }

    /// How long the first tool listing waits for the MCP servers (validated: 0 to 300 s).
    pub fn mcp_startup_wait(&self) -> Duration {
        Duration::try_from_secs_f64(self.mcp_startup_wait_secs).unwrap_or(crate::registry::DEFAULT_STARTUP_WAIT)
    }
}

/// Expands `${NAME}` in every string value (never in comments or keys).
fn expand_env_in(value: &mut toml::Value) -> Result<(), String> {
    match value {
        toml::Value::String(text) => *text = expand_env(text)?,
        toml::Value::Array(items) => items.iter_mut().try_for_each(expand_env_in)?,
        toml::Value::Table(table) => table.iter_mut().try_for_each(|(_, v)| expand_env_in(v))?,
        _ => {}
    }
    Ok(())
}

/// Replaces each `${NAME}` with the environment variable's value; `$${` escapes a literal `${`.
/// Returns the name of the first variable that is not set.
fn expand_env(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let name = &after[..end];
        let value = std::env::var(name).map_err(|_| name.to_owned())?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_expand_and_missing_ones_are_named() {
        // SAFETY: test-only; no other test reads this variable.
        unsafe { std::env::set_var("AGENTOS_TEST_EXPAND", "s3cret") };
        assert_eq!(expand_env("a = \"${AGENTOS_TEST_EXPAND}\"").unwrap(), "a = \"s3cret\"");
        assert_eq!(expand_env("literal $${X}").unwrap(), "literal ${X}");
        assert_eq!(
            expand_env("${AGENTOS_TEST_UNSET_VAR}").unwrap_err(),
            "AGENTOS_TEST_UNSET_VAR"
        );
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        let mut config = Config::default();
        config.validate().unwrap();
        config.database.timeout_ms = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("database.timeout_ms"), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<Config>("listen_addr = \"x\"").unwrap_err();
        assert!(error.to_string().contains("listen_addr"), "{error}");
    }
}

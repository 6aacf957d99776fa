//! Settings of who may call (identity, rate limits, approvals) and of what is recorded about it
//! (audit, metrics, traces, logs): the `[identity]`, `[rate_limits]`, `[audit]`, `[approvals]`,
//! `[metrics]`, `[traces]` and `[logs]` sections.

use serde::{Deserialize, Serialize};

use crate::registry::ToolPolicy;

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// What `POST /register` without a token does (self-service registration; such agents get
    /// at most the built-in `agentos.*` primitives): `open` creates a working agent, `approval`
    /// creates it `pending` until an operator enables it (`agentos.agent_enable`), `closed`
    /// refuses with 403.
    pub self_registration: SelfRegistration,
    /// Deprecated: `false` is `self_registration = "closed"`.
    #[serde(skip_serializing)]
    pub open_registration: bool,
    /// Most self-service registrations one client address may make per hour (the anonymous
    /// `auth` rate limit applies too).
    #[schemars(range(min = 1))]
    pub registrations_per_address_per_hour: u32,
    /// Whether `POST /api/signup` creates accounts.
    pub open_signup: bool,
    /// Lifetime of bearer tokens, in days.
    pub token_ttl_days: u32,
    /// The JWT `iss` every token carries and must carry.
    pub issuer: String,
    /// Secret (at least 32 bytes) that signs tokens. Empty: a random key generated on first start
    /// into `<data_dir>/jwt.key` (mode 0600). Use `${VAR}` to take it from the environment.
    pub signing_key: String,
    /// Lifetime of a browser session, in hours.
    pub session_ttl_hours: u32,
    /// Mark the session cookie `Secure` (send it over HTTPS only). Set this when agentos is
    /// reached through a TLS-terminating proxy.
    pub secure_cookies: bool,
    /// Emails whose accounts are ops-admins: they see every agent's audit and approvals and may
    /// manage MCP servers. The owner (`<data_dir>/owner-token`) is always an ops-admin.
    pub admin_emails: Vec<String>,
    /// Where password-reset messages go: `log` (the server log) or `file` (`reset_outbox_file`).
    pub reset_outbox: ResetOutbox,
    /// JSON-lines file the `file` outbox appends to. Empty: `<data_dir>/outbox.jsonl`.
    pub reset_outbox_file: String,
    /// How long a password-reset token stays valid, in minutes.
    pub reset_token_ttl_minutes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResetOutbox {
    Log,
    File,
}

/// Rate limits per caller (agent, or client address for anonymous callers) and class, charged
/// by the registry's pipeline to every call from every door (each workflow step, schedule
/// firing and approved run counts). Ops-admins are not limited.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    pub enabled: bool,
    /// Calls from MCP clients (stdio and `/mcp`), the plain form, and the calls they cause
    /// (workflow steps, schedule firings); MCP listings too.
    pub mcp: RateLimit,
    /// REST routes (tool-backed or not) per agent, or per client address when anonymous.
    pub api: RateLimit,
    /// Sign-up, sign-in, password reset and registration per client address.
    pub auth: RateLimit,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests allowed at once after a quiet period.
    pub burst: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Record every tool call (time, caller, tool, input digest, outcome, latency, error).
    pub enabled: bool,
    /// Records older than this many days are deleted.
    pub retention_days: u32,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Count HTTP requests and tool calls. `false` leaves only what is read at scrape time
    /// (upstream health, sessions, pending approvals).
    pub enabled: bool,
    /// Whether `GET /metrics` (Prometheus text format) answers without a token. `false`: only
    /// ops-admins may scrape it.
    pub public: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// Record every call as a span tree (adapter, registry pipeline, tool, upstream).
    pub enabled: bool,
    /// Traces older than this many hours are deleted.
    pub retention_hours: u32,
    /// At most this many traces are kept; the oldest go first.
    pub max_traces: u64,
    /// Successful calls stored per second at most; past that, within the same second, only
    /// failed calls are stored (and exported). Keeps a flood of calls from costing a flood of
    /// writes. 0: store every call.
    pub max_ok_per_second: u32,
    /// OTLP/HTTP endpoint traces are also exported to (e.g. `http://127.0.0.1:4318`; agentos
    /// posts JSON to `<endpoint>/v1/traces`). Empty: no export.
    pub otlp_endpoint: String,
    /// Extra headers for the OTLP export, e.g. `{ Authorization = "Bearer ${OTLP_TOKEN}" }`.
    pub otlp_headers: std::collections::BTreeMap<String, String>,
    /// `service.name` of exported spans.
    pub service_name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// `pretty` (human-readable lines) or `json` (one JSON object per line, for log shippers).
    /// Logs always go to stderr; `AGENTOS_LOG` sets the level filter.
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// Tools that need a human's approval before they run: exact names or patterns such as
    /// `mcp.github.*`. Empty: none. A pattern that can only name built-in tools and matches none
    /// (a typo such as `agentos.mem_sett`) stops agentos from starting; an `mcp.*` or `skill.*`
    /// pattern that matches nothing yet is logged as a warning.
    #[schemars(with = "Vec<String>")]
    pub require: ToolPolicy,
    /// How long an MCP call waits for the decision (sending progress) before it returns the
    /// approval id to fetch the outcome later.
    pub wait_secs: u64,
    /// Pending approvals nobody decides within this many seconds expire.
    pub expire_secs: u64,
}

/// What self-service registration does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SelfRegistration {
    Open,
    Approval,
    Closed,
}

impl IdentityConfig {
    /// The registration mode in force, the deprecated `open_registration = false` included.
    pub fn registration(&self) -> SelfRegistration {
        if self.open_registration {
            self.self_registration
        } else {
            SelfRegistration::Closed
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            self_registration: SelfRegistration::Open,
            open_registration: true,
            registrations_per_address_per_hour: 10,
            open_signup: true,
            token_ttl_days: 90,
            issuer: "agentos".into(),
            signing_key: String::new(),
            session_ttl_hours: 24 * 7,
            secure_cookies: false,
            admin_emails: Vec::new(),
            reset_outbox: ResetOutbox::Log,
            reset_outbox_file: String::new(),
            reset_token_ttl_minutes: 30,
        }
    }
}

impl RateLimitConfig {
    /// The budgets in `LimitClass::ALL` order (mcp, api, auth).
    pub fn budgets(&self) -> [crate::registry::Budget; 3] {
        [self.mcp, self.api, self.auth].map(|limit| crate::registry::Budget {
            per_minute: limit.per_minute,
            burst: limit.burst,
        })
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            mcp: RateLimit {
                per_minute: 1200,
                burst: 200,
            },
            api: RateLimit {
                per_minute: 300,
                burst: 60,
            },
            auth: RateLimit {
                per_minute: 20,
                burst: 10,
            },
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            retention_days: 30,
        }
    }
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            public: true,
        }
    }
}

impl Default for TracesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            retention_hours: 24,
            max_traces: 100_000,
            max_ok_per_second: 100,
            otlp_endpoint: String::new(),
            otlp_headers: Default::default(),
            service_name: "agentos".into(),
        }
    }
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Pretty,
        }
    }
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            require: ToolPolicy::none(),
            wait_secs: 30,
            expire_secs: 24 * 3600,
        }
    }
}

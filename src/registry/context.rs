//! The call context: who is calling, which request this is, and how long and whether it may run.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use serde::{Deserialize, Serialize};

use super::limits::{LimitClass, Verdict};
use super::policy::ToolPolicy;
use super::trace::TraceLink;

/// What a caller is, beyond the tools its policy names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// An agent: calls the tools its policy allows.
    Agent,
    /// A person's account agent: also registers agents of its own and decides their approvals.
    Operator,
    /// Runs this agentos: sees every agent's audit and approvals, may use admin-only tools.
    OpsAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Operator => "operator",
            Role::OpsAdmin => "ops-admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "agent" => Some(Role::Agent),
            "operator" => Some(Role::Operator),
            "ops-admin" => Some(Role::OpsAdmin),
            _ => None,
        }
    }
}

/// The identity a call runs as. Every stored item belongs to `agent_id`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub agent_id: Arc<str>,
    pub role: Role,
    /// The account this agent belongs to: its own for an account's agent, the operator's for an
    /// agent an operator registered; `None` for self-registered agents and the local owner.
    pub account_id: Option<Arc<str>>,
    pub tools: ToolPolicy,
    /// Hosts the network primitives may reach for this caller; empty means any public host.
    pub allowed_domains: Arc<[String]>,
    /// Set when the agent acts through a skill's host call: the skill, and the further limits
    /// it runs under (its tools are already folded into `tools`).
    pub skill: Option<Arc<SkillScope>>,
}

/// The skill an agent's call is made through, and the network domains its manifest declares.
/// A host call may reach a host only when both the agent's `allowed_domains` and these allow
/// it; unlike an agent's list, an empty list here allows no host at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillScope {
    /// `<slug>@<version>`, as audit records and traces name it.
    pub name: Arc<str>,
    pub domains: Arc<[String]>,
}

impl Caller {
    /// The agent id of the machine's owner: `agentos mcp`, `serve --no-auth` and the holder of
    /// `<data_dir>/owner-token` run as this agent.
    pub const OWNER_ID: &'static str = "owner";
    /// The agent id of an unauthenticated HTTP caller: it sees the public catalog and is
    /// rate-limited by client address.
    pub const ANONYMOUS_ID: &'static str = "anonymous";
    /// Who agentos itself acts as in records, e.g. when it withdraws a disabled agent's approvals.
    pub const SYSTEM_ID: &'static str = "system";
    /// Agent ids nobody may register or act as: the ids the server uses for its own callers, and
    /// the words an operator would read as "the system" in an audit record or an approval.
    pub const RESERVED_IDS: &'static [&'static str] = &[
        Self::OWNER_ID,
        Self::ANONYMOUS_ID,
        Self::SYSTEM_ID,
        "admin",
        "administrator",
        "agentos",
        "all",
        "everyone",
        "nobody",
        "operator",
        "ops-admin",
        "public",
        "root",
        "scheduler",
        "server",
        "studio",
        "workflow",
    ];

    /// Whether `agent_id` belongs to the server itself: a reserved word or the `agent_…` ids
    /// that sign-up mints.
    pub fn is_reserved_id(agent_id: &str) -> bool {
        Self::RESERVED_IDS.contains(&agent_id) || agent_id.starts_with("agent_")
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::OpsAdmin
    }

    /// An unauthenticated caller allowed the given tools.
    pub fn anonymous(tools: ToolPolicy) -> Self {
        Self::agent(Self::ANONYMOUS_ID, tools, Vec::new())
    }

    pub fn is_anonymous(&self) -> bool {
        &*self.agent_id == Self::ANONYMOUS_ID
    }

    /// The local owner with the given tool policy (normally `*`).
    pub fn owner(tools: ToolPolicy) -> Self {
        Self {
            agent_id: Arc::from(Self::OWNER_ID),
            role: Role::OpsAdmin,
            account_id: None,
            tools,
            allowed_domains: Arc::from(Vec::new()),
            skill: None,
        }
    }

    /// A plain agent with the given tools and domains.
    pub fn agent(agent_id: &str, tools: ToolPolicy, allowed_domains: Vec<String>) -> Self {
        Self {
            agent_id: Arc::from(agent_id),
            role: Role::Agent,
            account_id: None,
            tools,
            allowed_domains: Arc::from(allowed_domains),
            skill: None,
        }
    }

    /// Whether this caller may act on behalf of (see the audit of, decide the approvals of)
    /// `agent_id`, which belongs to `account_id`: itself, its account's operator, or an admin.
    pub fn oversees(&self, agent_id: &str, account_id: Option<&str>) -> bool {
        self.is_admin()
            || &*self.agent_id == agent_id
            || (self.role == Role::Operator && account_id.is_some() && self.account_id.as_deref() == account_id)
    }
}

/// Finds the caller an agent acts as *now* (its current policy, or `None` once it is disabled
/// or deleted). Work that runs later on an agent's behalf (approved calls, schedules) resolves
/// its caller here instead of trusting a stored copy.
pub trait CallerDirectory: Send + Sync {
    fn lookup<'a>(&'a self, agent_id: &'a str) -> BoxFuture<'a, Option<Caller>>;
}

/// Receives progress of a long call; the MCP adapters forward it as notifications/progress.
pub trait ProgressSink: Send + Sync {
    fn progress(&self, progress: f64, total: Option<f64>, message: Option<String>) -> BoxFuture<'_, ()>;
}

/// Everything a tool may know about the call it is serving.
#[derive(Clone)]
pub struct CallContext {
    pub caller: Arc<Caller>,
    /// Ties log lines, traces and audit records of one call together.
    pub request_id: Arc<str>,
    pub deadline: Instant,
    /// Shared, not cloned: cloning a token takes a lock in its tree, and contexts are cloned on
    /// the call path (a traced call's inner context, nested calls).
    pub cancel: Arc<CancellationToken>,
    pub progress: Option<Arc<dyn ProgressSink>>,
    /// The caller's client, for requests a proxied server makes of it while serving the call.
    pub client_channel: Option<Arc<dyn super::ClientChannel>>,
    /// Where this call's spans go: a new trace named for the front door, or a position inside
    /// the trace of the call that made this one (a workflow step, a proxied tool's run).
    pub trace: TraceLink,
    /// Which rate-limit budget the call is charged to; nested calls inherit it.
    pub limit_class: LimitClass,
    /// The client's address, for front doors that have one: anonymous callers are limited by it.
    pub client: Option<IpAddr>,
    /// Where the first charge of this request leaves its verdict, for front doors that report
    /// it (HTTP's `X-RateLimit-*` headers). Shared with nested calls, which leave theirs alone.
    pub rate_report: Option<Arc<OnceLock<Verdict>>>,
}

impl CallContext {
    pub fn new(caller: Arc<Caller>, request_id: impl Into<Arc<str>>, timeout: Duration) -> Self {
        Self {
            caller,
            request_id: request_id.into(),
            deadline: Instant::now() + timeout,
            cancel: Arc::new(CancellationToken::new()),
            progress: None,
            client_channel: None,
            trace: TraceLink::start("call"),
            limit_class: LimitClass::default(),
            client: None,
            rate_report: None,
        }
    }

    /// Charges the call to `class`'s budget (the default is [`LimitClass::Mcp`]).
    pub fn with_limit_class(mut self, class: LimitClass) -> Self {
        self.limit_class = class;
        self
    }

    /// The client's address (anonymous callers are limited by it).
    pub fn with_client(mut self, client: Option<IpAddr>) -> Self {
        self.client = client;
        self
    }

    /// Asks the pipeline to leave its rate-limit verdict in the returned slot.
    pub fn reporting_rate(&mut self) -> Arc<OnceLock<Verdict>> {
        let slot = Arc::new(OnceLock::new());
        self.rate_report = Some(slot.clone());
        slot
    }

    /// Names the front door the call came through (`mcp.http`, `rest GET /api/audit`, `schedule`):
    /// the root span of its trace.
    pub fn with_front_door(mut self, name: impl Into<super::trace::SpanName>) -> Self {
        if let TraceLink::Start { front_door, .. } = &mut self.trace {
            *front_door = name.into();
        }
        self
    }

    pub fn with_cancel(mut self, cancel: CancellationToken) -> Self {
        self.cancel = Arc::new(cancel);
        self
    }

    pub fn with_progress(mut self, sink: Arc<dyn ProgressSink>) -> Self {
        self.progress = Some(sink);
        self
    }

    pub fn with_client_channel(mut self, channel: Arc<dyn super::ClientChannel>) -> Self {
        self.client_channel = Some(channel);
        self
    }

    /// Reports progress if the client asked for it; a no-op otherwise.
    pub async fn report_progress(&self, progress: f64, total: Option<f64>, message: Option<String>) {
        if let Some(sink) = &self.progress {
            sink.progress(progress, total, message).await;
        }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

impl std::fmt::Debug for CallContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("caller", &self.caller.agent_id)
            .field("request_id", &self.request_id)
            .field("remaining", &self.remaining())
            .finish()
    }
}

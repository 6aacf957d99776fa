//! The tool model: what a tool is (its spec) and the one trait every tool implements.

use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::model::{CallToolResult, JsonObject, ToolAnnotations};
use serde::Serialize;
use serde_json::Value;

use super::context::CallContext;

/// Where a tool comes from; reported in traces and metrics and used by policy later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A built-in `agentos.*` primitive.
    Primitive,
    /// A capability of an installed skill.
    Skill,
    /// A tool of a proxied MCP server.
    Mcp,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Primitive => "primitive",
            Origin::Skill => "skill",
            Origin::Mcp => "mcp",
        }
    }
}

/// Behaviour hints shown to clients; they are hints, never a security boundary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hints {
    pub read_only: bool,
    pub destructive: bool,
    pub idempotent: bool,
    pub open_world: bool,
}

impl Hints {
    pub const READ_ONLY: Hints = Hints {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
    pub const WRITE: Hints = Hints {
        read_only: false,
        destructive: false,
        idempotent: true,
        open_world: false,
    };
    pub const DESTRUCTIVE: Hints = Hints {
        read_only: false,
        destructive: true,
        idempotent: true,
        open_world: false,
    };
}

/// The immutable description of a tool: everything a client sees before calling it.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    pub name: Arc<str>,
    pub title: Option<String>,
    pub description: String,
    pub input_schema: Arc<JsonObject>,
    pub output_schema: Option<Arc<JsonObject>>,
    /// `None` for proxied tools whose upstream gave no annotations: we pass on what we got.
    pub annotations: Option<Hints>,
    pub origin: Origin,
    /// Who may see and call it, beside the caller's tool policy.
    pub audience: Audience,
}

/// Who may see and call a tool. To a caller outside its audience a tool looks exactly like an
/// unknown one, in listings and calls alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Audience {
    /// Callers whose tool policy names it.
    #[default]
    ByPolicy,
    /// Ops-admins whose policy names it: the tool changes this agentos itself (starts programs,
    /// say).
    AdminsOnly,
    /// Operators and ops-admins whose policy names it: the tool acts on other agents (creates,
    /// disables, revokes), and on those the caller oversees only.
    Operators,
    /// Every caller, whatever its policy: the tool only answers about the caller's own records
    /// and those of agents it oversees. For what an agent must always be able to reach, like the
    /// outcome of its own call that was held for approval.
    Everyone,
}

impl Audience {
    /// Whether `caller` is in this audience for the tool named `name`.
    pub fn admits(self, caller: &super::Caller, name: &str) -> bool {
        match self {
            Audience::ByPolicy => caller.tools.allows(name),
            Audience::AdminsOnly => caller.is_admin() && caller.tools.allows(name),
            Audience::Operators => caller.role >= super::Role::Operator && caller.tools.allows(name),
            Audience::Everyone => true,
        }
    }
}

impl ToolSpec {
    /// The MCP form of this spec under the given public name.
    pub fn to_mcp(&self, public_name: &str) -> rmcp::model::Tool {
        let mut tool = rmcp::model::Tool::default();
        tool.name = public_name.to_owned().into();
        tool.title = self.title.clone();
        tool.description = Some(self.description.clone().into());
        tool.input_schema = self.input_schema.clone();
        tool.output_schema = self.output_schema.clone();
        tool.annotations = self.annotations.map(|hints| {
            let mut annotations = ToolAnnotations::new()
                .read_only(hints.read_only)
                .destructive(hints.destructive)
                .idempotent(hints.idempotent)
                .open_world(hints.open_world);
            annotations.title = self.title.clone();
            annotations
        });
        tool
    }
}

/// What kind of failure a tool reports, so each front door can render it fittingly (an HTTP
/// status, say) without reading the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailureKind {
    /// The tool ran and could not do it.
    #[default]
    Failed,
    /// What the call names (a server, a record) does not exist for this caller.
    NotFound,
    /// The caller may use the tool but not for this.
    Forbidden,
    /// The arguments passed the schema but make no sense together.
    InvalidInput,
    /// The call needs a human's approval that has not been given yet; it runs once approved.
    Pending,
    /// A human denied the approval this call needed.
    Denied,
    /// What the call would create exists already.
    Conflict,
    /// agentos is overloaded (its store's queues are full); nothing was done. Retry shortly.
    Busy,
    /// The caller's rate limit refused the call; nothing ran. Retry after the delay given.
    RateLimited,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Failed => "failed",
            FailureKind::NotFound => "not_found",
            FailureKind::Forbidden => "forbidden",
            FailureKind::InvalidInput => "invalid_input",
            FailureKind::Pending => "approval_pending",
            FailureKind::Denied => "approval_denied",
            FailureKind::Conflict => "conflict",
            FailureKind::Busy => "busy",
            FailureKind::RateLimited => "rate_limited",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Failed,
            Self::NotFound,
            Self::Forbidden,
            Self::InvalidInput,
            Self::Pending,
            Self::Denied,
            Self::Conflict,
            Self::Busy,
            Self::RateLimited,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

/// A tool's own failure: the tool ran and could not do what was asked. It reaches the client as a
/// result with `isError: true`, so the message must tell a model what to change.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ToolFailure {
    pub message: String,
    pub kind: FailureKind,
}

impl ToolFailure {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind: FailureKind::Failed,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(message).with_kind(FailureKind::NotFound)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(message).with_kind(FailureKind::Forbidden)
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(message).with_kind(FailureKind::InvalidInput)
    }

    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(message).with_kind(FailureKind::Busy)
    }

    pub fn with_kind(mut self, kind: FailureKind) -> Self {
        self.kind = kind;
        self
    }
}

/// What a tool produces: an MCP result, so proxied results pass through without re-encoding.
pub type ToolResult = Result<CallToolResult, ToolFailure>;

/// One tool. Object-safe: the registry holds `Arc<dyn Tool>`.
pub trait Tool: Send + Sync + 'static {
    fn spec(&self) -> &ToolSpec;
    fn call<'a>(&'a self, input: Value, ctx: &'a CallContext) -> BoxFuture<'a, ToolResult>;
    /// For a tool that is another name of a tool (a transparent server's own tool name): the
    /// name tool policies judge it by, so the alias is allowed exactly when the tool is.
    fn alias_of(&self) -> Option<&str> {
        None
    }
}

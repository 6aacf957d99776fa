//! Why the registry refused or abandoned a call (as opposed to a tool's own failure).

use std::time::Duration;

use super::FailureKind;
use super::limits::Refusal;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// No such tool, or one the caller may not use: the two are indistinguishable on purpose.
    #[error("unknown tool `{0}`; call agentos.tools_search to find available tools")]
    UnknownTool(String),
    /// No such resource or prompt, or one the caller may not use; the message names it.
    #[error("{0}")]
    NotFound(String),
    #[error("invalid arguments for `{tool}`: {message}")]
    InvalidArguments { tool: String, message: String },
    #[error("the call to `{0}` was cancelled")]
    Cancelled(String),
    #[error("the call to `{tool}` did not finish within {}s; retry later or with less work", timeout.as_secs_f64())]
    DeadlineExceeded { tool: String, timeout: Duration },
    /// The caller spent its budget of `class` calls; nothing ran.
    #[error(
        "rate limited: too many {} calls; retry after {} s (the budget is {} calls at once, refilled over time)",
        .0.class.as_str(), .0.retry_after_secs(), .0.limit
    )]
    RateLimited(Refusal),
    /// A resource read or prompt get failed after it was resolved (its provider failed, or a
    /// human must approve it first). Tool calls report these as `isError` results instead.
    #[error("{message}")]
    Failed {
        kind: FailureKind,
        message: String,
        /// The approval a pending read or get waits for.
        approval_id: Option<String>,
    },
}

impl CallError {
    /// A short machine-readable code, used in plain-form and REST error bodies and in metrics.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::UnknownTool(_) => "unknown_tool",
            CallError::NotFound(_) => "not_found",
            CallError::InvalidArguments { .. } => "invalid_arguments",
            CallError::Cancelled(_) => "cancelled",
            CallError::DeadlineExceeded { .. } => "timeout",
            CallError::RateLimited(_) => "rate_limited",
            CallError::Failed { kind, .. } => kind.as_str(),
        }
    }
}

/// Why a tool could not be added to the registry.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RegisterError {
    #[error("a tool named `{0}` is already registered")]
    Duplicate(String),
    #[error("tool name `{0}` is invalid: use 1-128 characters from [A-Za-z0-9_.-]")]
    InvalidName(String),
    #[error("the input schema of `{tool}` is not a valid JSON Schema: {message}")]
    InvalidSchema { tool: String, message: String },
}

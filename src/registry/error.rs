//! Why the registry refused or abandoned a call (as opposed to a tool's own failure).

use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    /// No such tool, or one the caller may not use: the two are indistinguishable on purpose.
    #[error("unknown tool `{0}`; call agentos.tools_search to find available tools")]
    UnknownTool(String),
    #[error("invalid arguments for `{tool}`: {message}")]
    InvalidArguments { tool: String, message: String },
    #[error("the call to `{0}` was cancelled")]
    Cancelled(String),
    #[error("the call to `{tool}` did not finish within {}s; retry later or with less work", timeout.as_secs_f64())]
    DeadlineExceeded { tool: String, timeout: Duration },
}

impl CallError {
    /// A short machine-readable code, used in plain-form and REST error bodies and in metrics.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::UnknownTool(_) => "unknown_tool",
            CallError::InvalidArguments { .. } => "invalid_arguments",
            CallError::Cancelled(_) => "cancelled",
            CallError::DeadlineExceeded { .. } => "timeout",
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

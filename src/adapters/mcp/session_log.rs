//! `logging/setLevel` for one MCP session: the level its client asked for, and a
//! `notifications/message` for each of the session's calls at or above that level (`info` when a
//! call answered, `warning` when it was refused before running, `error` when the tool failed).
// Logging is deprecated by the 2026-07-28 revision (SEP-2577), but 2025-11-25 and earlier, which
// clients still speak, define it.
#![allow(deprecated)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

pub(super) use rmcp::model::SetLevelRequestParams;
use rmcp::model::{CallToolResult, LoggingLevel, LoggingMessageNotificationParam};
use rmcp::{Peer, RoleServer};
use serde_json::json;

use crate::registry::{CallError, result_text};

/// Name of the logger in agentos's own messages.
const LOGGER: &str = "agentos";

/// The session's level, 0 until the client sets one (then nothing is sent), else its rank + 1.
/// An atomic, so a call in a session without logging costs one load.
#[derive(Clone, Default)]
pub(super) struct SessionLog(Arc<AtomicU8>);

fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

impl SessionLog {
    /// `logging/setLevel`: from now on, messages at this level and above.
    pub(super) fn set(&self, request: SetLevelRequestParams) {
        self.set_level(request.level);
    }

    fn set_level(&self, level: LoggingLevel) {
        self.0.store(rank(level) + 1, Ordering::Relaxed);
    }

    /// Whether a proxied server's message at `level` goes on to the session: yes, unless the
    /// session asked for a higher level.
    pub(super) fn passes(&self, level: LoggingLevel) -> bool {
        self.at_least(level, true)
    }

    /// Whether agentos's own message at `level` goes to the session: only once it set a level.
    fn admits(&self, level: LoggingLevel) -> bool {
        self.at_least(level, false)
    }

    fn at_least(&self, level: LoggingLevel, when_unset: bool) -> bool {
        match self.0.load(Ordering::Relaxed) {
            0 => when_unset,
            set => rank(level) + 1 >= set,
        }
    }

    /// Tells the client how a call ended, if its level asks for that.
    pub(super) async fn call_ended(
        &self,
        peer: &Peer<RoleServer>,
        tool: &str,
        request_id: &str,
        took: Duration,
        called: &Result<CallToolResult, CallError>,
    ) {
        let (level, outcome) = match called {
            Ok(result) if result.is_error == Some(true) => (LoggingLevel::Error, "error"),
            Ok(_) => (LoggingLevel::Info, "ok"),
            Err(_) => (LoggingLevel::Warning, "refused"),
        };
        // The message's words are made only for a session that will hear them.
        if !self.admits(level) {
            return;
        }
        let message = match called {
            Ok(result) if result.is_error == Some(true) => Some(result_text(result)),
            Ok(_) => None,
            Err(error) => Some(error.to_string()),
        };
        let mut data = json!({
            "tool": tool,
            "outcome": outcome,
            "latencyMs": took.as_secs_f64() * 1000.0,
            "requestId": request_id,
        });
        if let Some(message) = message {
            data["message"] = json!(message);
        }
        let param = LoggingMessageNotificationParam::new(level, data).with_logger(LOGGER);
        if let Err(error) = peer.notify_logging_message(param).await {
            tracing::debug!(%error, "could not deliver a log message to the session");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_admitted_until_a_level_is_set_then_that_level_and_above() {
        let log = SessionLog::default();
        assert!(!log.admits(LoggingLevel::Emergency));
        log.set_level(LoggingLevel::Warning);
        assert!(!log.admits(LoggingLevel::Info));
        assert!(log.admits(LoggingLevel::Warning) && log.admits(LoggingLevel::Error));
        log.set_level(LoggingLevel::Debug);
        assert!(log.admits(LoggingLevel::Info));
    }
}

//! The client behind a call, as a tool's server may reach it while serving the call: a proxied
//! MCP server asking the caller's client to sample an LLM, elicit input from its user or list
//! its roots, and the log messages it sends about the call. The MCP front doors give each call
//! one; calls from doors without a client to ask (the plain form, REST, schedules) have none,
//! and such requests are refused with a clear error.
// Roots and logging are deprecated by the 2026-07-28 revision (SEP-2577), but 2025-11-25 and
// earlier, which upstream servers speak, define them.
#![allow(deprecated)]

use futures::future::BoxFuture;
use rmcp::model::{
    CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult, ErrorData, ListRootsResult,
    LoggingMessageNotificationParam,
};

pub trait ClientChannel: Send + Sync + 'static {
    /// `sampling/createMessage`, answered by the caller's client (or refused if it cannot).
    fn sample(&self, params: CreateMessageRequestParams) -> BoxFuture<'_, Result<CreateMessageResult, ErrorData>>;
    /// `elicitation/create`, answered by the caller's client (or refused if it cannot).
    fn elicit(&self, params: ElicitRequestParams) -> BoxFuture<'_, Result<ElicitResult, ErrorData>>;
    /// `roots/list`, answered by the caller's client (or refused if it cannot).
    fn roots(&self) -> BoxFuture<'_, Result<ListRootsResult, ErrorData>>;
    /// A log message about the call, passed on unless the session asked for a higher level.
    fn log(&self, params: LoggingMessageNotificationParam) -> BoxFuture<'_, ()>;
}

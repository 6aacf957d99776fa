//! MCP over stdio (`agentos mcp`): stdout carries protocol only; the process ends when stdin closes.

use std::sync::Arc;

use rmcp::ServiceExt;

use super::mcp::{McpHandler, RequestIdentity};
use crate::registry::Registry;

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("the MCP client did not complete initialization: {0}")]
    Initialize(Box<rmcp::service::ServerInitializeError>),
    #[error("the stdio session ended abnormally: {0}")]
    Session(#[from] tokio::task::JoinError),
}

/// Serves one MCP session on stdin/stdout until the client closes stdin.
pub async fn serve(registry: Arc<Registry>, identity: RequestIdentity) -> Result<(), StdioError> {
    let handler = McpHandler::new(registry, identity);
    let running = match pipe_stdio() {
        Some(pipes) => handler.serve(pipes).await,
        None => handler.serve(rmcp::transport::stdio()).await,
    }
    .map_err(|e| StdioError::Initialize(Box::new(e)))?;
    let reason = running.waiting().await?;
    tracing::info!(?reason, "stdio session ended");
    Ok(())
}

/// stdin and stdout as non-blocking pipes driven by the reactor, when they are pipes (as when a
/// client such as Claude Desktop starts us). Tokio's own stdin/stdout hand every read and write
/// to a blocking thread, which costs a thread hop per message; `None` falls back to them (a
/// terminal, a file, a socket).
#[cfg(unix)]
fn pipe_stdio() -> Option<(tokio::net::unix::pipe::Receiver, tokio::net::unix::pipe::Sender)> {
    use std::os::fd::AsFd;
    let input = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let output = std::io::stdout().as_fd().try_clone_to_owned().ok()?;
    let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(input).ok()?;
    let sender = tokio::net::unix::pipe::Sender::from_owned_fd(output).ok()?;
    Some((receiver, sender))
}

#[cfg(not(unix))]
fn pipe_stdio() -> Option<(tokio::io::Stdin, tokio::io::Stdout)> {
    None
}

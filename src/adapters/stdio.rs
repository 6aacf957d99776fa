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
    let running = handler
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| StdioError::Initialize(Box::new(e)))?;
    let reason = running.waiting().await?;
    tracing::info!(?reason, "stdio session ended");
    Ok(())
}

//! MCP over stdio (`agentos mcp`): stdout carries protocol only; the process ends when stdin closes.

#[cfg(unix)]
mod polled;
mod tool_calls;

use std::sync::Arc;

use rmcp::ServiceExt;
use tokio::io::{AsyncRead, AsyncWrite};

use super::mcp::{McpHandler, RequestIdentity};
use crate::registry::Registry;

#[derive(Debug, thiserror::Error)]
pub enum StdioError {
    #[error("cannot use stdin/stdout: {0}")]
    Open(#[source] std::io::Error),
    #[error("the MCP client did not complete initialization: {0}")]
    Initialize(Box<rmcp::service::ServerInitializeError>),
    #[error("the stdio session ended abnormally: {0}")]
    Session(#[from] tokio::task::JoinError),
}

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Serves one MCP session on stdin/stdout until the client closes stdin.
pub async fn serve(registry: Arc<Registry>, identity: RequestIdentity) -> Result<(), StdioError> {
    let handler = McpHandler::new(registry, identity);
    let (reader, writer, kind) = stdio().map_err(StdioError::Open)?;
    tracing::debug!(kind, "serving MCP over stdio; waiting for the client");
    let running = handler
        .serve(crate::jsonrpc_lines::JsonLines::new(
            reader,
            writer,
            tool_calls::ToolCalls,
        ))
        .await
        .map_err(|e| StdioError::Initialize(Box::new(e)))?;
    let reason = running.waiting().await?;
    tracing::info!(?reason, "stdio session ended");
    Ok(())
}

/// stdin and stdout as async streams, and which kind they are.
///
/// When both are pipes (as when a client such as Claude Desktop starts us) they are driven by the
/// reactor, with no thread hop per message. Anything else (a FIFO with a terminal as stdout, a
/// socket, a terminal, a file) is served by one thread each way that waits for readiness before
/// every read and write (see `polled`). Both kinds are checked before either is touched:
/// `tokio::net::unix::pipe` makes a descriptor non-blocking, and a stdin switched to
/// non-blocking and then read the blocking way failed at once with EAGAIN.
#[cfg(unix)]
fn stdio() -> std::io::Result<(Reader, Writer, &'static str)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileTypeExt;
    let input = std::io::stdin().as_fd().try_clone_to_owned()?;
    let output = std::io::stdout().as_fd().try_clone_to_owned()?;
    let is_pipe = |fd: &std::os::fd::OwnedFd| {
        std::fs::File::from(fd.try_clone()?)
            .metadata()
            .map(|meta| meta.file_type().is_fifo())
    };
    if is_pipe(&input)? && is_pipe(&output)? {
        use tokio::net::unix::pipe;
        // A pipe opened the wrong way round (read-only stdout, say) is refused here; the polled
        // streams below cope with the descriptor whatever its flags now are.
        let reactor = pipe::Sender::from_owned_fd(output.try_clone()?)
            .and_then(|sender| Ok((pipe::Receiver::from_owned_fd(input.try_clone()?)?, sender)));
        if let Ok((receiver, sender)) = reactor {
            return Ok((Box::new(receiver), Box::new(sender), "pipes"));
        }
    }
    let reader = polled::PolledReader::spawn(input)?;
    let writer = polled::PolledWriter::spawn(output)?;
    Ok((Box::new(reader), Box::new(writer), "polled"))
}

#[cfg(not(unix))]
fn stdio() -> std::io::Result<(Reader, Writer, &'static str)> {
    Ok((Box::new(tokio::io::stdin()), Box::new(tokio::io::stdout()), "std"))
}

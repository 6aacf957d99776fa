//! Newline-delimited JSON-RPC over a byte stream, as agentos speaks it on stdio at both ends (to
//! its MCP clients and to upstream servers): rmcp's own transport writes, and each line is read
//! by a [`Shortcut`] first (one kind of message, parsed straight into rmcp's type), then, if the
//! shortcut passes, by rmcp's codec exactly as rmcp's transport reads it.
//!
//! rmcp reads every message as an untagged enum whose variants are tried in turn, each failure
//! building a formatted error: the most common message of each direction (a `tools/call` to
//! agentos, its answer from an upstream) cost a quarter of agentos's work per call that way.

use rmcp::model::ErrorData;
use rmcp::service::{RxJsonRpcMessage, ServiceRole, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::{
    AsyncRwTransport, DEFAULT_MAX_LINE_LENGTH, JsonRpcMessageCodec, JsonRpcMessageCodecError,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

/// Reads one kind of message straight into rmcp's type; everything else is left to rmcp.
pub(crate) trait Shortcut<Role: ServiceRole>: Send {
    /// The message on `line`, if it is this shortcut's kind and reads exactly as rmcp would read
    /// it; `None` leaves the line to rmcp's codec.
    fn read(&mut self, line: &[u8]) -> Option<RxJsonRpcMessage<Role>>;
    /// Sees every message before it is written.
    fn sending(&mut self, _message: &TxJsonRpcMessage<Role>) {}
    /// Sees every message rmcp's codec read.
    fn read_by_rmcp(&mut self, _message: &RxJsonRpcMessage<Role>) {}
}

pub(crate) struct JsonLines<Role: ServiceRole, S, R, W: AsyncWrite> {
    read: BufReader<R>,
    /// The line being read: kept across cancelled reads (receive runs inside rmcp's `select!`).
    line: Vec<u8>,
    /// Skipping the rest of a line that exceeded the limit.
    discarding: bool,
    /// Writes, and the answers rmcp's transport owes a peer for messages it cannot read.
    writer: AsyncRwTransport<Role, tokio::io::Empty, W>,
    /// rmcp's reading of a message, for everything the shortcut does not read.
    codec: JsonRpcMessageCodec<RxJsonRpcMessage<Role>>,
    pub(crate) shortcut: S,
}

impl<Role, S, R, W> JsonLines<Role, S, R, W>
where
    Role: ServiceRole,
    S: Shortcut<Role>,
    R: AsyncRead + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    pub(crate) fn new(read: R, write: W, shortcut: S) -> Self {
        Self {
            read: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            writer: AsyncRwTransport::new(tokio::io::empty(), write),
            codec: JsonRpcMessageCodec::default(),
            shortcut,
        }
    }

    /// Reads until a whole line is in `self.line`; false at the end of the stream.
    async fn read_line(&mut self) -> std::io::Result<bool> {
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                return Ok(false);
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |at| at + 1);
            if !self.discarding {
                if self.line.len() + take > DEFAULT_MAX_LINE_LENGTH {
                    tracing::error!(
                        max_line_length = DEFAULT_MAX_LINE_LENGTH,
                        "a message exceeded the maximum line length; discarding it"
                    );
                    self.line.clear();
                    self.discarding = true;
                } else {
                    self.line.extend_from_slice(&available[..take]);
                }
            }
            self.read.consume(take);
            if newline.is_some() {
                if std::mem::take(&mut self.discarding) {
                    continue;
                }
                return Ok(true);
            }
        }
    }
}

impl<Role, S, R, W> Transport<Role> for JsonLines<Role, S, R, W>
where
    Role: ServiceRole,
    S: Shortcut<Role>,
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn send(&mut self, item: TxJsonRpcMessage<Role>) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.shortcut.sending(&item);
        self.writer.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<Role>> {
        loop {
            match self.read_line().await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(error) => {
                    tracing::error!(%error, "could not read from the peer");
                    return None;
                }
            }
            let line = std::mem::take(&mut self.line);
            if let Some(message) = self.shortcut.read(&line) {
                self.line = recycle(line);
                return Some(message);
            }
            let mut buffer = BytesMut::from(&line[..]);
            self.line = recycle(line);
            if !buffer.ends_with(b"\n") {
                buffer.extend_from_slice(b"\n");
            }
            match self.codec.decode(&mut buffer) {
                Ok(Some(message)) => {
                    self.shortcut.read_by_rmcp(&message);
                    return Some(message);
                }
                // Blank lines and notifications rmcp ignores.
                Ok(None) => continue,
                Err(JsonRpcMessageCodecError::Serde(error))
                    if matches!(
                        error.classify(),
                        serde_json::error::Category::Data | serde_json::error::Category::Io
                    ) =>
                {
                    // Well-formed JSON that is no MCP message: the peer is told, as rmcp does.
                    tracing::debug!(%error, "a message is not a valid MCP message");
                    let refusal =
                        TxJsonRpcMessage::<Role>::error(ErrorData::invalid_request("Invalid request", None), None);
                    if self.writer.send(refusal).await.is_err() {
                        return None;
                    }
                }
                Err(error) => {
                    // Unparsable input has no id to answer; answering it could start an error storm.
                    tracing::debug!(%error, "ignoring an unparsable message");
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.writer.close().await
    }
}

/// The line buffer emptied, its capacity kept for the next line.
fn recycle(mut line: Vec<u8>) -> Vec<u8> {
    line.clear();
    line
}

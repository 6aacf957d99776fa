//! The stdio transport to an upstream server: newline-delimited JSON-RPC, written by rmcp's own
//! transport, read here so that the answer to a `tools/call` is parsed straight as a tool result.
//! rmcp reads every result as "any result", an untagged enum whose variants are tried in turn,
//! each failure building a formatted error: a tenth of agentos's work per proxied call. Every
//! other message, and any answer that does not read as a plain tool result, is parsed by rmcp's
//! codec exactly as before.

use std::collections::HashSet;

use rmcp::RoleClient;
use rmcp::model::{
    CallToolResult, ClientNotification, ClientRequest, ErrorData, JsonRpcMessage, JsonRpcResponse, JsonRpcVersion2_0,
    RequestId, ResultType, ServerResult,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::{
    AsyncRwTransport, DEFAULT_MAX_LINE_LENGTH, JsonRpcMessageCodec, JsonRpcMessageCodecError,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

pub(crate) struct StdioTransport<R, W: AsyncWrite> {
    read: BufReader<R>,
    /// The line being read: kept across cancelled reads (receive runs inside rmcp's `select!`).
    line: Vec<u8>,
    /// Skipping the rest of a line that exceeded the limit.
    discarding: bool,
    /// Writes, and the answers rmcp's transport owes a server for messages it cannot read.
    writer: AsyncRwTransport<RoleClient, tokio::io::Empty, W>,
    /// rmcp's reading of a message, for everything not read here.
    codec: JsonRpcMessageCodec<RxJsonRpcMessage<RoleClient>>,
    /// Ids of `tools/call` requests sent and not yet answered or cancelled.
    tool_calls: HashSet<RequestId>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Send + Unpin + 'static> StdioTransport<R, W> {
    pub(crate) fn new(read: R, write: W) -> Self {
        Self {
            read: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            writer: AsyncRwTransport::new_client(tokio::io::empty(), write),
            codec: JsonRpcMessageCodec::default(),
            tool_calls: HashSet::new(),
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
                        "an upstream message exceeded the maximum line length; discarding it"
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

    /// The answer to one of our `tools/call` requests, read as a tool result; None for anything
    /// else (or an answer that is not a plain, complete tool result).
    fn tool_result(&mut self, line: &[u8]) -> Option<RxJsonRpcMessage<RoleClient>> {
        #[derive(Deserialize)]
        struct Envelope<'a> {
            id: Option<RequestId>,
            #[serde(borrow)]
            result: Option<&'a RawValue>,
        }
        if self.tool_calls.is_empty() {
            return None;
        }
        let envelope: Envelope = serde_json::from_slice(line).ok()?;
        let id = envelope.id?;
        let raw = envelope.result?;
        if !self.tool_calls.contains(&id) {
            return None;
        }
        let result: CallToolResult = serde_json::from_str(raw.get()).ok()?;
        // Any other kind (input required, a task) is left to rmcp's reading.
        if result
            .result_type
            .as_ref()
            .is_some_and(|kind| *kind != ResultType::COMPLETE)
        {
            return None;
        }
        self.tool_calls.remove(&id);
        Some(JsonRpcMessage::Response(JsonRpcResponse {
            jsonrpc: JsonRpcVersion2_0,
            id,
            result: ServerResult::CallToolResult(result),
        }))
    }
}

impl<R, W> Transport<RoleClient> for StdioTransport<R, W>
where
    R: AsyncRead + Send + Unpin,
    W: AsyncWrite + Send + Unpin + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        match &item {
            JsonRpcMessage::Request(request) if matches!(request.request, ClientRequest::CallToolRequest(_)) => {
                self.tool_calls.insert(request.id.clone());
            }
            JsonRpcMessage::Notification(notification) => {
                if let ClientNotification::CancelledNotification(cancelled) = &notification.notification
                    && let Some(id) = &cancelled.params.request_id
                {
                    self.tool_calls.remove(id);
                }
            }
            _ => {}
        }
        self.writer.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleClient>> {
        loop {
            match self.read_line().await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(error) => {
                    tracing::error!(%error, "could not read from the upstream server");
                    return None;
                }
            }
            let line = std::mem::take(&mut self.line);
            if let Some(message) = self.tool_result(&line) {
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
                    if let JsonRpcMessage::Response(response) = &message {
                        self.tool_calls.remove(&response.id);
                    } else if let JsonRpcMessage::Error(error) = &message
                        && let Some(id) = &error.id
                    {
                        self.tool_calls.remove(id);
                    }
                    return Some(message);
                }
                // Blank lines and notifications rmcp ignores.
                Ok(None) => continue,
                Err(JsonRpcMessageCodecError::Serde(error))
                    if matches!(error.classify(), serde_json::error::Category::Data) =>
                {
                    // Well-formed JSON that is no MCP message: the server is told, as rmcp does.
                    tracing::debug!(%error, "an upstream message is not a valid MCP message");
                    let refusal = TxJsonRpcMessage::<RoleClient>::error(
                        ErrorData::invalid_request("Invalid request", None),
                        None,
                    );
                    if self.writer.send(refusal).await.is_err() {
                        return None;
                    }
                }
                Err(error) => {
                    // Unparsable input has no id to answer; answering it could start an error storm.
                    tracing::debug!(%error, "ignoring an unparsable upstream message");
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

#[cfg(test)]
mod tests {
    use rmcp::model::{CallToolRequest, CallToolRequestParams, JsonRpcRequest};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, DuplexStream};

    use super::*;

    /// The transport, the server's end of its reading side, and what it writes.
    fn transport() -> (
        StdioTransport<DuplexStream, DuplexStream>,
        DuplexStream,
        BufReader<DuplexStream>,
    ) {
        let (ours_in, server_out) = tokio::io::duplex(1 << 16);
        let (ours_out, server_in) = tokio::io::duplex(1 << 16);
        (
            StdioTransport::new(ours_in, ours_out),
            server_out,
            BufReader::new(server_in),
        )
    }

    async fn call_tool(transport: &mut StdioTransport<DuplexStream, DuplexStream>, id: i64) {
        let request = CallToolRequest::new(CallToolRequestParams::new("echo"));
        let message = JsonRpcMessage::Request(JsonRpcRequest::new(
            RequestId::Number(id),
            ClientRequest::CallToolRequest(request),
        ));
        transport.send(message).await.unwrap();
    }

    const ANSWER: &str = r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"Echo: hi"}],"structuredContent":{"a":[1,2]},"isError":false,"_meta":{"k":"v"}}}"#;

    #[tokio::test]
    async fn a_tool_answer_reads_as_rmcp_reads_it() {
        let (mut transport, mut server, _written) = transport();
        call_tool(&mut transport, 7).await;
        // Split across writes, with a carriage return: the line is whole before it is read.
        let (first, rest) = ANSWER.split_at(20);
        server.write_all(first.as_bytes()).await.unwrap();
        server.write_all(rest.as_bytes()).await.unwrap();
        server.write_all(b"\r\n").await.unwrap();
        let fast = transport.receive().await.unwrap();
        let rmcp: RxJsonRpcMessage<RoleClient> = serde_json::from_str(ANSWER).unwrap();
        assert_eq!(
            serde_json::to_value(&fast).unwrap(),
            serde_json::to_value(&rmcp).unwrap()
        );
        assert!(transport.tool_calls.is_empty(), "answered calls are forgotten");

        // The same line for a call not made (or already answered) goes through rmcp's reading.
        server.write_all(ANSWER.as_bytes()).await.unwrap();
        server.write_all(b"\n").await.unwrap();
        let slow = transport.receive().await.unwrap();
        assert_eq!(
            serde_json::to_value(&slow).unwrap(),
            serde_json::to_value(&rmcp).unwrap()
        );
    }

    #[tokio::test]
    async fn unreadable_lines_are_skipped_and_malformed_messages_refused() {
        let (mut transport, mut server, mut written) = transport();
        let long = format!("{}\n", "x".repeat(DEFAULT_MAX_LINE_LENGTH + 10));
        server.write_all(b"not json\n\n").await.unwrap();
        let oversized = tokio::spawn(async move {
            server.write_all(long.as_bytes()).await.unwrap();
            server.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":3}\n").await.unwrap();
            server.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n").await.unwrap();
            server
        });
        // Not JSON, an empty line and an oversized line are skipped; JSON that is no message
        // is answered with Invalid Request; the notification after them arrives.
        let next = transport.receive().await.unwrap();
        assert!(matches!(next, JsonRpcMessage::Notification(_)), "{next:?}");
        let mut refusal = String::new();
        written.read_line(&mut refusal).await.unwrap();
        assert!(refusal.contains("\"code\":-32600"), "{refusal}");
        drop(oversized.await.unwrap());
        assert!(
            transport.receive().await.is_none(),
            "the end of the stream ends the transport"
        );
    }

    #[tokio::test]
    async fn a_cancelled_call_is_forgotten_and_errors_end_calls() {
        let (mut transport, mut server, _written) = transport();
        call_tool(&mut transport, 1).await;
        call_tool(&mut transport, 2).await;
        let cancel = rmcp::model::CancelledNotification::new(rmcp::model::CancelledNotificationParam::new(
            Some(RequestId::Number(1)),
            None,
        ));
        transport
            .send(JsonRpcMessage::Notification(rmcp::model::JsonRpcNotification {
                jsonrpc: JsonRpcVersion2_0,
                notification: ClientNotification::CancelledNotification(cancel),
            }))
            .await
            .unwrap();
        assert_eq!(transport.tool_calls.len(), 1);
        server
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32602,\"message\":\"bad\"}}\n")
            .await
            .unwrap();
        let answer = transport.receive().await.unwrap();
        assert!(matches!(answer, JsonRpcMessage::Error(_)), "{answer:?}");
        assert!(transport.tool_calls.is_empty());
    }
}

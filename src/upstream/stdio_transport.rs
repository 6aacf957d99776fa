//! The stdio transport to an upstream server ([`crate::jsonrpc_lines`]), whose shortcut reads
//! the answer to one of our `tools/call` requests straight as a tool result. Every other message,
//! and any answer that does not read as a plain, complete tool result, is read by rmcp's codec.

use std::collections::HashSet;

use rmcp::RoleClient;
use rmcp::model::{
    CallToolResult, ClientNotification, ClientRequest, JsonRpcMessage, JsonRpcResponse, JsonRpcVersion2_0, RequestId,
    ResultType, ServerResult,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::jsonrpc_lines::{JsonLines, Shortcut};

pub(crate) type StdioTransport<R, W> = JsonLines<RoleClient, ToolResults, R, W>;

/// The `tools/call` requests sent and not yet answered or cancelled, by id: their answers are
/// the lines read here.
#[derive(Default)]
pub(crate) struct ToolResults {
    tool_calls: HashSet<RequestId>,
}

impl Shortcut<RoleClient> for ToolResults {
    fn read(&mut self, line: &[u8]) -> Option<RxJsonRpcMessage<RoleClient>> {
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

    fn sending(&mut self, message: &TxJsonRpcMessage<RoleClient>) {
        match message {
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
    }

    fn read_by_rmcp(&mut self, message: &RxJsonRpcMessage<RoleClient>) {
        match message {
            JsonRpcMessage::Response(response) => {
                self.tool_calls.remove(&response.id);
            }
            JsonRpcMessage::Error(error) => {
                if let Some(id) = &error.id {
                    self.tool_calls.remove(id);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{CallToolRequest, CallToolRequestParams, JsonRpcRequest};
    use rmcp::transport::Transport;
    use rmcp::transport::async_rw::DEFAULT_MAX_LINE_LENGTH;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

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
            StdioTransport::new(ours_in, ours_out, ToolResults::default()),
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
        assert!(transport.shortcut.tool_calls.is_empty(), "answered calls are forgotten");

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
        assert_eq!(transport.shortcut.tool_calls.len(), 1);
        server
            .write_all(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32602,\"message\":\"bad\"}}\n")
            .await
            .unwrap();
        let answer = transport.receive().await.unwrap();
        assert!(matches!(answer, JsonRpcMessage::Error(_)), "{answer:?}");
        assert!(transport.shortcut.tool_calls.is_empty());
    }
}

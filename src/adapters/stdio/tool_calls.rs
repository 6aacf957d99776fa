//! The stdio front door's shortcut ([`crate::jsonrpc_lines`]): a client's `tools/call` is read
//! straight into the request rmcp's codec would make of it. Everything else goes to the codec.

use rmcp::RoleServer;
use rmcp::model::{CallToolRequest, ClientRequest, JsonRpcMessage, JsonRpcRequest};
use rmcp::service::RxJsonRpcMessage;

use crate::adapters::mcp::envelope::{Envelope, tool_call_params};
use crate::jsonrpc_lines::Shortcut;

pub(super) struct ToolCalls;

impl Shortcut<RoleServer> for ToolCalls {
    fn read(&mut self, line: &[u8]) -> Option<RxJsonRpcMessage<RoleServer>> {
        let envelope = Envelope::read(line)?;
        if envelope.method()? != "tools/call" {
            return None;
        }
        let id = envelope.id?;
        let (params, meta) = tool_call_params(envelope.params?)?;
        let mut request = CallToolRequest::new(params);
        if let Some(meta) = meta {
            request.extensions.insert(meta);
        }
        Some(JsonRpcMessage::Request(JsonRpcRequest::new(
            id,
            ClientRequest::CallToolRequest(request),
        )))
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::GetMeta;

    use super::*;

    /// Lines the shortcut reads, each compared with rmcp's reading of it.
    const READ_HERE: &[&str] = &[
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"agentos.time_now"}}"#,
        r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"x","arguments":{"n":1.5,"big":18446744073709551615,"s":"\u00e9"}}}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":{},"_meta":{"progressToken":"p","k":[1]}},"extra":true}"#,
        r#"{"id":3,"params":{"name":"x","extra":{},"requestState":"s","inputResponses":{}},"method":"tools/call","jsonrpc":"2.0"}"#,
        "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}\r\n",
    ];

    /// Lines left to rmcp's codec.
    const LEFT_TO_RMCP: &[&str] = &[
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
        r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}]"#,
        "not json",
    ];

    #[test]
    fn a_tool_call_reads_as_rmcp_reads_it() {
        for line in READ_HERE {
            let here = ToolCalls
                .read(line.as_bytes())
                .unwrap_or_else(|| panic!("read here: {line}"));
            let rmcp: RxJsonRpcMessage<RoleServer> = serde_json::from_str(line).unwrap();
            assert_eq!(
                serde_json::to_value(&here).unwrap(),
                serde_json::to_value(&rmcp).unwrap(),
                "{line}"
            );
            let (JsonRpcMessage::Request(here), JsonRpcMessage::Request(rmcp)) = (here, rmcp) else {
                panic!("requests: {line}");
            };
            assert_eq!(here.request.get_meta(), rmcp.request.get_meta(), "{line}");
        }
    }

    #[test]
    fn everything_else_is_left_to_rmcp() {
        for line in LEFT_TO_RMCP {
            assert!(ToolCalls.read(line.as_bytes()).is_none(), "{line}");
        }
    }
}

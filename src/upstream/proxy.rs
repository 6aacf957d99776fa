//! A proxied tool: the upstream's spec under our name, and a call forwarded over the shared
//! upstream connection.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::{CallToolRequestParams, JsonObject};
use rmcp::{ClientHandler, Peer, RoleClient};
use serde_json::Value;

use crate::registry::{CallContext, Hints, Origin, Tool, ToolFailure, ToolResult, ToolSpec};

/// Our side of an upstream session.
#[derive(Debug, Clone, Default)]
pub struct UpstreamClient;

impl ClientHandler for UpstreamClient {}

pub struct ProxyTool {
    spec: ToolSpec,
    upstream_name: String,
    peer: Peer<RoleClient>,
}

impl ProxyTool {
    pub fn new(prefix: &str, tool: rmcp::model::Tool, peer: Peer<RoleClient>) -> Self {
        let annotations = tool.annotations.as_ref().map(|a| Hints {
            read_only: a.read_only_hint.unwrap_or(false),
            destructive: a.destructive_hint.unwrap_or(true),
            idempotent: a.idempotent_hint.unwrap_or(false),
            open_world: a.open_world_hint.unwrap_or(true),
        });
        let spec = ToolSpec {
            name: Arc::from(format!("{prefix}{}", tool.name)),
            title: tool
                .title
                .clone()
                .or_else(|| tool.annotations.as_ref().and_then(|a| a.title.clone())),
            description: tool.description.as_deref().unwrap_or_default().to_owned(),
            input_schema: tool.input_schema.clone(),
            output_schema: tool.output_schema.clone(),
            annotations,
            origin: Origin::Mcp,
        };
        Self {
            spec,
            upstream_name: tool.name.to_string(),
            peer,
        }
    }
}

impl Tool for ProxyTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, input: Value, _ctx: &'a CallContext) -> BoxFuture<'a, ToolResult> {
        async move {
            let mut params = CallToolRequestParams::new(self.upstream_name.clone());
            if let Value::Object(arguments) = input {
                params = params.with_arguments(JsonObject::from_iter(arguments));
            }
            // Dropping this future (caller cancelled, deadline passed) sends
            // notifications/cancelled upstream.
            self.peer
                .call_tool(params)
                .await
                .map_err(|error| ToolFailure::new(format!("the upstream server failed: {error}")))
        }
        .boxed()
    }
}

//! What an operation resolved to, for the caller asking: a tool entry, or the provider that owns
//! a resource or prompt. The pipeline's stages read its names and origin; its last stage runs it.
//! A resource read or prompt get produces a [`CallToolResult`] like a tool call (contents as
//! embedded resources, a prompt as structured content), so that audit, traces, approvals and
//! their stored results handle the three alike; [`into_resource`] and [`into_prompt`] turn it
//! back for the MCP adapters.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, GetPromptResult, JsonObject, ReadResourceResult};
use serde_json::Value;

use super::catalog::Entry;
use super::operation::Operation;
use super::redact::Redaction;
use super::resources::{
    ResourceError, ResourceProvider, may_use_prompts, may_use_resources, split_prompt_name, split_uri,
};
use super::{CallContext, Caller, FailureKind, Origin, Registry, ToolFailure, ToolResult};

pub(super) enum Kind {
    Tool(Arc<Entry>),
    Resource {
        provider: Arc<dyn ResourceProvider>,
        server: Arc<str>,
        original: String,
    },
    Prompt {
        provider: Arc<dyn ResourceProvider>,
        original: String,
    },
}

pub(super) struct Target {
    /// The name in audit records, traces and approval rules.
    pub record: Arc<str>,
    /// The name metrics count it under: the tool or prompt, or `mcp.<server>.resources` for
    /// every resource of a server (URIs are unbounded; series must not be).
    pub series: Arc<str>,
    /// What approvals store to run it again later ([`Operation::encode`]).
    pub encoded: String,
    pub origin: Origin,
    pub kind: Kind,
}

impl Registry {
    /// Resolves `op` as `caller` may see it; `None` for what does not exist or is not allowed
    /// (the two look the same).
    pub(super) fn resolve_target(&self, caller: &Caller, op: &Operation<'_>) -> Option<Target> {
        match *op {
            Operation::Tool(name) => {
                let entry = self.resolve_for(caller, name)?;
                let name = entry.name().clone();
                Some(Target {
                    record: name.clone(),
                    series: name.clone(),
                    encoded: name.to_string(),
                    origin: entry.tool.spec().origin,
                    kind: Kind::Tool(entry),
                })
            }
            Operation::Resource(uri) => {
                let (server, original) = split_uri(uri)?;
                if !may_use_resources(caller, server) {
                    return None;
                }
                let provider = self.provider(server)?;
                Some(Target {
                    record: Arc::from(op.record_name()),
                    series: Arc::from(format!("mcp.{server}.resources")),
                    encoded: op.encode(),
                    origin: Origin::Mcp,
                    kind: Kind::Resource {
                        provider,
                        server: Arc::from(server),
                        original: original.to_owned(),
                    },
                })
            }
            Operation::Prompt(name) => {
                let (server, original) = split_prompt_name(name)?;
                if !may_use_prompts(caller, server) {
                    return None;
                }
                let provider = self.provider(server)?;
                let name: Arc<str> = Arc::from(name);
                Some(Target {
                    record: name.clone(),
                    series: name,
                    encoded: op.encode(),
                    origin: Origin::Mcp,
                    kind: Kind::Prompt {
                        provider,
                        original: original.to_owned(),
                    },
                })
            }
        }
    }
}

impl Target {
    /// Checks the input: a tool's against its schema; a resource read takes none; a prompt's
    /// arguments are an object of strings.
    pub(super) fn validate(&self, input: &Value) -> Result<(), String> {
        match &self.kind {
            Kind::Tool(entry) => super::pipeline::validate(entry, input),
            Kind::Resource { .. } => match input {
                Value::Object(map) if map.is_empty() => Ok(()),
                _ => Err("a resource read takes no arguments".into()),
            },
            Kind::Prompt { .. } => match input {
                Value::Object(map) => match map.iter().find(|(_, value)| !value.is_string()) {
                    Some((name, _)) => Err(format!("prompt argument `{name}` must be a string")),
                    None => Ok(()),
                },
                _ => Err("prompt arguments must be an object of strings".into()),
            },
        }
    }

    /// The last stage: runs the tool, or asks the provider.
    pub(super) async fn invoke(&self, input: Value, ctx: &CallContext) -> ToolResult {
        match &self.kind {
            Kind::Tool(entry) => entry.tool.call(input, ctx).await,
            Kind::Resource {
                provider,
                server,
                original,
            } => {
                let read = provider
                    .read_resource(original.clone())
                    .await
                    .map_err(provider_failure)?;
                Ok(resource_result(server, read))
            }
            Kind::Prompt { provider, original } => {
                let arguments = match input {
                    Value::Object(map) if !map.is_empty() => Some(map),
                    _ => None,
                };
                let prompt = provider
                    .get_prompt(original.clone(), arguments)
                    .await
                    .map_err(provider_failure)?;
                let mut result = CallToolResult::success(Vec::new());
                result.structured_content = Some(serde_json::to_value(prompt).unwrap_or(Value::Null));
                Ok(result)
            }
        }
    }

    /// How records of this operation are redacted: a tool's own marks and the key-name rule;
    /// the key-name rule alone for resources and prompts, which have no schemas to mark.
    pub(super) fn redaction(&self) -> Arc<Redaction> {
        match &self.kind {
            Kind::Tool(entry) => entry.redaction.clone(),
            _ => Redaction::by_name(),
        }
    }

    /// The tool's own counters, for tools.
    pub(super) fn entry(&self) -> Option<&Arc<Entry>> {
        match &self.kind {
            Kind::Tool(entry) => Some(entry),
            _ => None,
        }
    }
}

fn provider_failure(error: ResourceError) -> ToolFailure {
    match error {
        ResourceError::NotFound(message) => ToolFailure::not_found(message),
        ResourceError::Failed(message) => ToolFailure::new(message),
    }
}

/// A read's contents as embedded resources, their URIs namespaced like the one asked for.
fn resource_result(server: &str, read: ReadResourceResult) -> CallToolResult {
    let content = read
        .contents
        .into_iter()
        .map(|mut contents| {
            super::resources::rename_contents(server, &mut contents);
            ContentBlock::resource(contents)
        })
        .collect();
    CallToolResult::success(content)
}

/// A resource read's result back in MCP's own shape.
pub(super) fn into_resource(result: CallToolResult) -> ReadResourceResult {
    let contents = result
        .content
        .into_iter()
        .filter_map(|block| match block {
            ContentBlock::Resource(embedded) => Some(embedded.resource),
            _ => None,
        })
        .collect();
    ReadResourceResult::new(contents)
}

/// A prompt get's result back in MCP's own shape; `None` if the stored result is not one.
pub(super) fn into_prompt(result: CallToolResult) -> Option<GetPromptResult> {
    serde_json::from_value(result.structured_content?).ok()
}

/// The arguments of a prompt get as pipeline input.
pub(super) fn prompt_input(arguments: Option<JsonObject>) -> Value {
    Value::Object(arguments.unwrap_or_default())
}

/// What a failed resource read or prompt get reports: its kind and message.
pub(super) fn failure_of(result: &CallToolResult) -> (FailureKind, String) {
    (
        super::failure_kind(result).unwrap_or_default(),
        super::result_text(result),
    )
}

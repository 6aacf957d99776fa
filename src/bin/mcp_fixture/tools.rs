//! The fixture's tools: the names, schemas and results the conformance suite's tools-*,
//! elicitation-*, json-schema-2020-12 and server-sse-polling scenarios check.

use std::{sync::Arc, time::Duration};

use rmcp::{
    ErrorData as McpError, RoleServer,
    model::{
        CallToolResult, ClientCapabilities, ClientResult, ContentBlock, CreateMessageRequestParams, ElicitRequest,
        ElicitRequestParams, JsonObject, ProgressNotificationParam, ResourceContents, Role, SamplingMessage,
        SamplingMessageContentBlock, ServerRequest, Tool,
    },
    service::RequestContext,
};
use serde_json::{Value, json};

use crate::{catalog, streams::RECONNECTION_TOOL};

pub const JSON_SCHEMA_TOOL: &str = "json_schema_2020_12_tool";

/// Pause between the steps of the logging and progress tools, so clients see the
/// notifications arrive one by one during the call.
pub const STEP: Duration = Duration::from_millis(50);

/// Name and description of each tool; their arguments are in [`input_schema`].
const TOOLS: &[(&str, &str)] = &[
    ("test_simple_text", "Returns a simple text response"),
    ("test_image_content", "Returns an image (a 1x1 PNG)"),
    ("test_audio_content", "Returns audio (a short WAV)"),
    ("test_embedded_resource", "Returns an embedded text resource"),
    (
        "test_multiple_content_types",
        "Returns text, an image and an embedded resource",
    ),
    (
        "test_tool_with_logging",
        "Sends three info log notifications while it runs",
    ),
    ("test_error_handling", "Always fails with isError: true"),
    (
        "test_tool_with_progress",
        "Reports progress 0, 50 and 100 of 100 when given a progress token",
    ),
    (
        "test_sampling",
        "Asks the client's LLM to answer a prompt (sampling/createMessage)",
    ),
    (
        "test_elicitation",
        "Asks the user for a username and an email (elicitation/create)",
    ),
    (
        "test_elicitation_sep1034_defaults",
        "Elicits fields of every primitive type, each with a default (SEP-1034)",
    ),
    (
        "test_elicitation_sep1330_enums",
        "Elicits the five kinds of enum field (SEP-1330)",
    ),
    (JSON_SCHEMA_TOOL, "Tool with JSON Schema 2020-12 features"),
    (
        RECONNECTION_TOOL,
        "Closes its SSE stream mid-call and answers once the client reconnects (SEP-1699)",
    ),
];

pub fn list() -> Vec<Tool> {
    TOOLS
        .iter()
        .map(|(name, description)| Tool::new(*name, *description, Arc::new(input_schema(name))))
        .collect()
}

fn input_schema(tool: &str) -> JsonObject {
    let schema = match tool {
        "test_sampling" => string_args(&[("prompt", "The prompt to send to the LLM")]),
        "test_elicitation" => string_args(&[("message", "The message to show the user")]),
        JSON_SCHEMA_TOOL => json_schema_2020_12(),
        _ => json!({ "type": "object", "properties": {} }),
    };
    match schema {
        Value::Object(schema) => schema,
        _ => JsonObject::new(),
    }
}

/// An object schema whose properties are all required strings.
fn string_args(properties: &[(&str, &str)]) -> Value {
    let names: Vec<&str> = properties.iter().map(|(name, _)| *name).collect();
    let properties: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(name, description)| {
            let schema = json!({ "type": "string", "description": description });
            (name.to_string(), schema)
        })
        .collect();
    json!({ "type": "object", "properties": properties, "required": names })
}

fn json_schema_2020_12() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "$defs": {
            "address": {
                "type": "object",
                "properties": {
                    "street": { "type": "string" },
                    "city": { "type": "string" }
                }
            }
        },
        "properties": {
            "name": { "type": "string" },
            "address": { "$ref": "#/$defs/address" }
        },
        "additionalProperties": false
    })
}

pub fn text(text: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(text)])
}

pub fn failure(text: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// The tools whose result depends on nothing but their name.
pub fn fixed_result(name: &str) -> Option<CallToolResult> {
    let content = match name {
        "test_simple_text" => {
            vec![ContentBlock::text("This is a simple text response for testing.")]
        }
        "test_image_content" => vec![ContentBlock::image(catalog::PNG_BASE64, "image/png")],
        "test_audio_content" => vec![ContentBlock::audio(catalog::WAV_BASE64, "audio/wav")],
        "test_embedded_resource" => vec![ContentBlock::resource(
            ResourceContents::text("This is an embedded resource content.", "test://embedded-resource")
                .with_mime_type("text/plain"),
        )],
        "test_multiple_content_types" => vec![
            ContentBlock::text("Multiple content types test:"),
            ContentBlock::image(catalog::PNG_BASE64, "image/png"),
            ContentBlock::resource(
                ResourceContents::text(
                    json!({ "test": "data", "value": 123 }).to_string(),
                    "test://mixed-content-resource",
                )
                .with_mime_type("application/json"),
            ),
        ],
        "test_error_handling" => {
            return Some(failure("This tool intentionally returns an error for testing"));
        }
        _ => return None,
    };
    Some(CallToolResult::success(content))
}

/// A required string argument of a tool call.
pub fn string_arg<'a>(arguments: &'a JsonObject, name: &str) -> Result<&'a str, McpError> {
    arguments
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| McpError::invalid_params(format!("missing string argument {name}"), None))
}

fn client_capabilities(context: &RequestContext<RoleServer>) -> ClientCapabilities {
    context.client_capabilities().unwrap_or_default()
}

pub async fn progress(context: &RequestContext<RoleServer>) -> CallToolResult {
    let token = context.meta.get_progress_token();
    for (step, value) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if step > 0 {
            tokio::time::sleep(STEP).await;
        }
        let Some(token) = &token else { continue };
        let notification = ProgressNotificationParam::new(token.clone(), value).with_total(100.0);
        if let Err(error) = context.peer.notify_progress(notification).await {
            tracing::warn!(%error, "could not send a progress notification");
        }
    }
    text("Progress tool completed (0, 50, 100 of 100)")
}

pub async fn sampling(context: &RequestContext<RoleServer>, prompt: &str) -> CallToolResult {
    if client_capabilities(context).sampling.is_none() {
        return failure("The client does not support sampling");
    }
    let message = SamplingMessage::new(Role::User, SamplingMessageContentBlock::text(prompt));
    let request = CreateMessageRequestParams::new(vec![message], 100);
    match context.peer.create_message(request).await {
        Ok(result) => {
            let answer: Vec<String> = result
                .message
                .content
                .into_vec()
                .iter()
                .filter_map(|block| block.as_text().map(|text| text.text.clone()))
                .collect();
            text(format!("LLM response: {}", answer.join("\n")))
        }
        Err(error) => failure(format!("Sampling failed: {error}")),
    }
}

/// The outcome of an elicitation, or why there is none.
pub async fn elicit(
    context: &RequestContext<RoleServer>,
    message: &str,
    schema: Value,
) -> Result<(String, Value), String> {
    if client_capabilities(context).elicitation.is_none() {
        return Err("The client does not support elicitation".into());
    }
    // rmcp's typed `create_elicitation` sits behind its `elicitation` feature; the request type
    // itself does not, so it is built from JSON and sent as a plain server request.
    let params: ElicitRequestParams = serde_json::from_value(json!({ "message": message, "requestedSchema": schema }))
        .map_err(|error| format!("invalid elicitation schema: {error}"))?;
    let request = ServerRequest::ElicitRequest(ElicitRequest::new(params));
    match context.peer.send_request(request).await {
        Ok(ClientResult::ElicitResult(result)) => {
            let action = serde_json::to_value(result.action)
                .ok()
                .and_then(|action| action.as_str().map(str::to_owned))
                .unwrap_or_default();
            Ok((action, result.content.unwrap_or(Value::Null)))
        }
        Ok(_) => Err("The client answered elicitation/create with another result".into()),
        Err(error) => Err(format!("Elicitation failed: {error}")),
    }
}

pub fn elicitation_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "username": { "type": "string", "description": "User's response" },
            "email": { "type": "string", "description": "User's email address" }
        },
        "required": ["username", "email"]
    })
}

/// SEP-1034: a default for every primitive type.
pub fn defaults_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": { "type": "string", "description": "Name", "default": "John Doe" },
            "age": { "type": "integer", "description": "Age", "default": 30 },
            "score": { "type": "number", "description": "Score", "default": 95.5 },
            "status": {
                "type": "string",
                "description": "Status",
                "enum": ["active", "inactive", "pending"],
                "default": "active"
            },
            "verified": { "type": "boolean", "description": "Verified", "default": true }
        }
    })
}

/// SEP-1330: the five kinds of enum field.
pub fn enums_schema() -> Value {
    let titled = |prefix: &str, titles: [&str; 3]| -> Vec<Value> {
        titles
            .iter()
            .enumerate()
            .map(|(i, title)| json!({ "const": format!("{prefix}{}", i + 1), "title": title }))
            .collect()
    };
    json!({
        "type": "object",
        "properties": {
            "untitledSingle": { "type": "string", "enum": ["option1", "option2", "option3"] },
            "titledSingle": {
                "type": "string",
                "oneOf": titled("value", ["First Option", "Second Option", "Third Option"])
            },
            "legacyEnum": {
                "type": "string",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"]
            },
            "untitledMulti": {
                "type": "array",
                "items": { "type": "string", "enum": ["option1", "option2", "option3"] }
            },
            "titledMulti": {
                "type": "array",
                "items": {
                    "anyOf": titled("value", ["First Choice", "Second Choice", "Third Choice"])
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rmcp's typed elicitation schema must keep every keyword the suite checks.
    #[test]
    fn elicitation_schemas_survive_rmcp_types() {
        for schema in [elicitation_schema(), defaults_schema(), enums_schema()] {
            let params: ElicitRequestParams =
                serde_json::from_value(json!({ "message": "m", "requestedSchema": schema })).expect("schema parses");
            let sent = serde_json::to_value(&params).expect("serializes");
            assert_eq!(sent["requestedSchema"], schema);
        }
    }
}

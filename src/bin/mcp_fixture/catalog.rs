//! The fixture's resources, resource templates, prompts and completions: the exact names and
//! contents the conformance suite's resources-*, prompts-* and completion scenarios ask for.

use rmcp::{
    ErrorData as McpError,
    model::{
        CompletionInfo, ContentBlock, GetPromptResult, JsonObject, Prompt, PromptArgument, PromptMessage, Reference,
        Resource, ResourceContents, ResourceTemplate, Role,
    },
};

/// A 1x1 red PNG, base64-encoded.
pub const PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4z8AAAAMBAQD3A0FDAAAAAElFTkSuQmCC";
/// Eight samples of silence as an 8 kHz 8-bit mono WAV, base64-encoded.
pub const WAV_BASE64: &str = "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

const STATIC_TEXT: &str = "test://static-text";
const STATIC_BINARY: &str = "test://static-binary";
const WATCHED: &str = "test://watched-resource";
const TEMPLATE: &str = "test://template/{id}/data";

pub fn resources() -> Vec<Resource> {
    vec![
        Resource::new(STATIC_TEXT, "static-text")
            .with_description("A static text resource")
            .with_mime_type("text/plain"),
        Resource::new(STATIC_BINARY, "static-binary")
            .with_description("A static binary resource (a 1x1 PNG)")
            .with_mime_type("image/png"),
        Resource::new(WATCHED, "watched-resource")
            .with_description("A resource clients may subscribe to")
            .with_mime_type("text/plain"),
    ]
}

pub fn resource_templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(TEMPLATE, "template-data")
            .with_description("Data for the id in the URI")
            .with_mime_type("application/json"),
    ]
}

pub fn read_resource(uri: &str) -> Result<ResourceContents, McpError> {
    let contents = match uri {
        STATIC_TEXT => {
            ResourceContents::text("This is the content of the static text resource.", uri).with_mime_type("text/plain")
        }
        STATIC_BINARY => ResourceContents::blob(PNG_BASE64, uri).with_mime_type("image/png"),
        WATCHED => {
            ResourceContents::text("This is the content of the watched resource.", uri).with_mime_type("text/plain")
        }
        _ => {
            let id =
                template_id(uri).ok_or_else(|| McpError::resource_not_found(format!("no resource {uri}"), None))?;
            let data = serde_json::json!({
                "id": id,
                "templateTest": true,
                "data": format!("Data for ID: {id}"),
            });
            ResourceContents::text(data.to_string(), uri).with_mime_type("application/json")
        }
    };
    Ok(contents)
}

/// The `{id}` of a URI matching `test://template/{id}/data`.
fn template_id(uri: &str) -> Option<&str> {
    let id = uri.strip_prefix("test://template/")?.strip_suffix("/data")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

pub fn prompts() -> Vec<Prompt> {
    let required = |name: &str, description: &str| {
        PromptArgument::new(name)
            .with_description(description)
            .with_required(true)
    };
    vec![
        Prompt::new("test_simple_prompt", Some("A simple prompt without arguments"), None),
        Prompt::new(
            "test_prompt_with_arguments",
            Some("A prompt with two required arguments"),
            Some(vec![
                required("arg1", "First test argument"),
                required("arg2", "Second test argument"),
            ]),
        ),
        Prompt::new(
            "test_prompt_with_embedded_resource",
            Some("A prompt that embeds a resource"),
            Some(vec![required("resourceUri", "URI of the resource to embed")]),
        ),
        Prompt::new("test_prompt_with_image", Some("A prompt with an image"), None),
    ]
}

pub fn get_prompt(name: &str, arguments: &JsonObject) -> Result<GetPromptResult, McpError> {
    let user = |content: ContentBlock| PromptMessage::new(Role::User, content);
    let messages = match name {
        "test_simple_prompt" => vec![user(ContentBlock::text("This is a simple prompt for testing."))],
        "test_prompt_with_arguments" => {
            let (arg1, arg2) = (argument(arguments, "arg1")?, argument(arguments, "arg2")?);
            vec![user(ContentBlock::text(format!(
                "Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
            )))]
        }
        "test_prompt_with_embedded_resource" => {
            let uri = argument(arguments, "resourceUri")?;
            let resource =
                ResourceContents::text("Embedded resource content for testing.", uri).with_mime_type("text/plain");
            vec![
                user(ContentBlock::resource(resource)),
                user(ContentBlock::text("Please process the embedded resource above.")),
            ]
        }
        "test_prompt_with_image" => vec![
            user(ContentBlock::image(PNG_BASE64, "image/png")),
            user(ContentBlock::text("Please analyze the image above.")),
        ],
        _ => return Err(McpError::invalid_params(format!("no prompt {name}"), None)),
    };
    Ok(GetPromptResult::new(messages))
}

/// A required string argument of a prompt.
fn argument<'a>(arguments: &'a JsonObject, name: &str) -> Result<&'a str, McpError> {
    arguments
        .get(name)
        .and_then(|value| value.as_str())
        .ok_or_else(|| McpError::invalid_params(format!("missing string argument {name}"), None))
}

/// Suggestions for a prompt or template argument, filtered by what the user typed so far.
pub fn complete(reference: &Reference, argument: &str, typed: &str) -> CompletionInfo {
    let candidates: &[&str] = match (reference, argument) {
        (Reference::Prompt(prompt), "arg1" | "arg2") if prompt.name == "test_prompt_with_arguments" => {
            &["paris", "park", "party", "test", "testValue1", "testValue2"]
        }
        (Reference::Resource(template), "id") if template.uri == TEMPLATE => &["1", "2", "123"],
        _ => &[],
    };
    let values: Vec<String> = candidates
        .iter()
        .filter(|candidate| candidate.starts_with(typed))
        .map(|candidate| candidate.to_string())
        .collect();
    CompletionInfo::with_all_values(values).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_ids_are_one_path_segment() {
        assert_eq!(template_id("test://template/123/data"), Some("123"));
        assert_eq!(template_id("test://template//data"), None);
        assert_eq!(template_id("test://template/1/2/data"), None);
        assert_eq!(template_id("test://static-text"), None);
    }
}

//! What a published capability offers as a tool: its name, description, hints and JSON Schemas,
//! worked out from the component when the skill is published and stored with its version, so
//! listing an agent's tools never needs the component compiled.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One capability as its tool is listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitySpec {
    /// The exported function's name (kebab-case).
    pub name: String,
    pub description: String,
    pub read_only: bool,
    /// One property per parameter (camelCase), from the WIT types.
    pub input_schema: Value,
    /// Always an object (MCP's `outputSchema` must be one): a record result as it is, any
    /// other result under `result` (see `wrapped`).
    pub output_schema: Value,
    /// The capability's value is answered as `{"result": value}`.
    pub wrapped: bool,
}

impl CapabilitySpec {
    /// Builds the listed form of a capability whose result has the JSON Schema `result`.
    pub fn new(name: &str, description: &str, read_only: bool, input_schema: Value, result: Value) -> Self {
        let is_object = result.get("type").and_then(Value::as_str) == Some("object");
        let (output_schema, wrapped) = if is_object {
            (result, false)
        } else {
            (
                json!({"type": "object", "properties": {"result": result}, "required": ["result"]}),
                true,
            )
        };
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            read_only,
            input_schema,
            output_schema,
            wrapped,
        }
    }

    /// `skill.<slug>.<capability>`.
    pub fn tool_name(&self, slug: &str) -> String {
        format!("skill.{slug}.{}", self.name)
    }

    /// The capability's value as the tool answers it.
    pub fn answer(&self, value: Value) -> Value {
        if self.wrapped {
            json!({ "result": value })
        } else {
            value
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_objects_go_unwrapped() {
        let record = json!({"type": "object", "properties": {"title": {"type": "string"}}});
        let spec = CapabilitySpec::new("read-page", "Reads.", true, json!({"type": "object"}), record.clone());
        assert!(!spec.wrapped);
        assert_eq!(spec.output_schema, record);
        assert_eq!(spec.answer(json!({"title": "x"})), json!({"title": "x"}));
        assert_eq!(spec.tool_name("page-links"), "skill.page-links.read-page");

        let text = CapabilitySpec::new(
            "shout",
            "Shouts.",
            true,
            json!({"type": "object"}),
            json!({"type": "string"}),
        );
        assert!(text.wrapped);
        assert_eq!(text.answer(json!("HI")), json!({"result": "HI"}));
        assert_eq!(text.output_schema["required"], json!(["result"]));
    }
}

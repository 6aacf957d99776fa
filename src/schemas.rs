//! The published JSON Schemas: every tool's input and output, the config file and the skill
//! manifest. They are generated from the Rust types; `tests/suite/schemas.rs` fails when the
//! committed copies are stale.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::Config;
use crate::registry::{Caller, Registry, ToolPolicy};

/// `schemas/tools/<tool name>.json` for every tool in the registry, keyed by file name.
pub fn tool_schemas(registry: &Registry) -> BTreeMap<String, Value> {
    registry
        .list_for(&Caller::owner(ToolPolicy::allow_all()))
        .iter()
        .map(|entry| {
            let spec = entry.tool.spec();
            let document = json!({
                "name": &*spec.name,
                "title": spec.title,
                "description": spec.description,
                "annotations": entry.listing.annotations,
                "inputSchema": &*spec.input_schema,
                "outputSchema": spec.output_schema.as_deref(),
            });
            (format!("{}.json", spec.name), document)
        })
        .collect()
}

/// The schema of `agentos.toml`.
pub fn config_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(Config)).unwrap_or(Value::Null)
}

/// The JSON Schema of a skill's manifest, `skill.toml` (TOML read as JSON).
pub fn skill_manifest_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(crate::skills::Manifest)).unwrap_or(Value::Null)
}

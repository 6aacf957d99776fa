//! The committed JSON Schemas in `schemas/` match what the code generates. Run with
//! `AGENTOS_UPDATE_SCHEMAS=1` to regenerate them after changing a tool or the config.

use std::path::Path;

use agentos::app::App;
use agentos::config::Config;

fn check_or_write(path: &Path, generated: &serde_json::Value, update: bool, stale: &mut Vec<String>) {
    let text = format!("{}\n", serde_json::to_string_pretty(generated).unwrap());
    if update {
        std::fs::write(path, &text).unwrap();
    } else if std::fs::read_to_string(path).ok().as_deref() != Some(text.as_str()) {
        stale.push(path.display().to_string());
    }
}

#[test]
fn committed_schemas_are_current() {
    let update = std::env::var_os("AGENTOS_UPDATE_SCHEMAS").is_some();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: data.path().to_owned(),
        ..Config::default()
    };
    let app = futures::executor::block_on(App::build(config)).unwrap();
    let tools = agentos::schemas::tool_schemas(&app.registry);
    assert!(!tools.is_empty());
    let mut stale = Vec::new();
    let tool_dir = root.join("tools");
    std::fs::create_dir_all(&tool_dir).unwrap();
    for (file, schema) in &tools {
        check_or_write(&tool_dir.join(file), schema, update, &mut stale);
    }
    for existing in std::fs::read_dir(&tool_dir).unwrap() {
        let name = existing.unwrap().file_name().to_string_lossy().into_owned();
        if !tools.contains_key(&name) {
            if update {
                std::fs::remove_file(tool_dir.join(&name)).unwrap();
            } else {
                stale.push(format!("schemas/tools/{name} (no such tool any more)"));
            }
        }
    }
    check_or_write(
        &root.join("config.json"),
        &agentos::schemas::config_schema(),
        update,
        &mut stale,
    );
    check_or_write(
        &root.join("skill-manifest.json"),
        &agentos::schemas::skill_manifest_schema(),
        update,
        &mut stale,
    );
    assert!(
        stale.is_empty(),
        "stale schemas: {stale:?}; run `AGENTOS_UPDATE_SCHEMAS=1 cargo test --test schemas` and commit the result"
    );
}

/// Some MCP clients (the official conformance suite among them) reject boolean subschemas in
/// tool listings; every schema agentos publishes uses object subschemas only.
#[test]
fn published_schemas_have_no_boolean_subschemas() {
    fn walk(value: &serde_json::Value, path: &str, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, child) in map {
                    let in_schema_map = matches!(key.as_str(), "properties" | "$defs" | "patternProperties");
                    if in_schema_map && let serde_json::Value::Object(children) = child {
                        for (name, sub) in children {
                            if sub.is_boolean() {
                                found.push(format!("{path}/{key}/{name}"));
                            }
                        }
                    }
                    if matches!(key.as_str(), "items" | "not") && child.is_boolean() {
                        found.push(format!("{path}/{key}"));
                    }
                    walk(child, &format!("{path}/{key}"), found);
                }
            }
            serde_json::Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}/{index}"), found);
                }
            }
            _ => {}
        }
    }
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: data.path().to_owned(),
        ..Config::default()
    };
    let app = futures::executor::block_on(App::build(config)).unwrap();
    let mut found = Vec::new();
    for (file, schema) in agentos::schemas::tool_schemas(&app.registry) {
        walk(&schema["inputSchema"], &format!("{file}:inputSchema"), &mut found);
        walk(&schema["outputSchema"], &format!("{file}:outputSchema"), &mut found);
    }
    assert!(found.is_empty(), "boolean subschemas: {found:?}");
}

/// agentos compiles its own tools' input schemas on their first call, not at start (see
/// `registry::catalog::Entry`): this is where a schema that does not compile is caught.
#[test]
fn every_primitive_schema_compiles() {
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: data.path().to_owned(),
        ..Config::default()
    };
    let app = futures::executor::block_on(App::build(config)).unwrap();
    let owner = agentos::registry::Caller::owner(agentos::registry::ToolPolicy::allow_all());
    let mut compiled = 0;
    for entry in app.registry.list_for(&owner) {
        let spec = entry.tool.spec();
        if spec.origin != agentos::registry::Origin::Primitive {
            continue;
        }
        if let Err(error) = entry.validator() {
            panic!("the input schema of {} does not compile: {error}", spec.name);
        }
        compiled += 1;
    }
    assert!(compiled > 50, "only {compiled} built-in tools were listed");
}

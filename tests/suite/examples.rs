//! Every file in `examples/` is loaded, so none can drift from what agentos accepts.

use std::path::Path;

use agentos::config::Config;

#[test]
fn every_example_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => {
                let config = Config::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                // The sample states every setting with its default, so it documents them all.
                let stated = serde_json::to_value(&config).unwrap();
                let defaults = serde_json::to_value(Config::default()).unwrap();
                assert_eq!(stated, defaults, "{} states every default exactly", path.display());
                let written: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let expected = toml::Value::try_from(Config::default()).unwrap();
                assert_eq!(written, expected, "{} lists every setting", path.display());
            }
            Some("json") => {
                let text = std::fs::read_to_string(&path).unwrap();
                let value: serde_json::Value = serde_json::from_str(&text).unwrap();
                let server = &value["mcpServers"]["agentos"];
                assert_eq!(server["args"][0], "mcp", "{} runs `agentos mcp`", path.display());
            }
            _ => continue,
        }
        checked += 1;
    }
    assert!(checked >= 2, "found the example files");
}

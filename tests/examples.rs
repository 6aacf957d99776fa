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
                let defaults = Config::default();
                assert_eq!(config.listen, defaults.listen, "{} states the defaults", path.display());
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

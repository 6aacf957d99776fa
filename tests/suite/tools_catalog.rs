//! Every file in `tools/` is loaded, like those in `examples/`: each server preset is a valid
//! server that is disabled, so agentos started from a checkout connects nothing.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use agentos::upstream::{ServerSpec, spec};
use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;
use serde_json::json;

use crate::common::{self, RecordingClient, structured};

fn tools_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools")
}

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, found);
        } else {
            found.push(path);
        }
    }
}

#[test]
fn every_tools_file_loads_and_every_server_is_disabled() {
    let root = tools_dir();
    let servers = root.join("servers");
    let mut files = Vec::new();
    files_under(&root, &mut files);
    let mut presets = 0;
    for path in &files {
        let shown = path.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{shown}: {e}"));
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") if path.parent() == Some(servers.as_path()) => {
                let preset: ServerSpec = toml::from_str(&text).unwrap_or_else(|e| panic!("{shown}: {e}"));
                preset.validate().unwrap_or_else(|e| panic!("{shown}: {e}"));
                assert!(!preset.enabled, "{shown} ships disabled (enabled = false)");
                let stem = path.file_stem().unwrap().to_str().unwrap();
                assert_eq!(preset.name, stem, "{shown} is named after its file");
                presets += 1;
            }
            Some("md") => assert!(!text.trim().is_empty(), "{shown} says something"),
            // The skill toolchain's pins (scripts/install-test-deps): JSON, no download URLs.
            Some("json") if path.parent() == Some(root.join("skills").as_path()) => {
                let pins: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{shown}: {e}"));
                assert!(pins.is_object(), "{shown}");
                assert!(!text.contains("\"resolved\""), "{shown} records no download URLs");
            }
            // The Python skill toolchain's pins: exact versions, no index URLs.
            Some("txt") if path.parent() == Some(root.join("skills").as_path()) => {
                let pins: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .collect();
                assert!(!pins.is_empty(), "{shown} pins something");
                for pin in pins {
                    assert!(pin.contains("=="), "{shown}: `{pin}` pins an exact version");
                    assert!(
                        !pin.starts_with('-') && !pin.contains("://"),
                        "{shown}: `{pin}` names no index"
                    );
                }
            }
            // A bundled skill: its manifest is valid and named after its directory.
            Some("toml") if path.file_name().is_some_and(|name| name == "skill.toml") => {
                let manifest = agentos::skills::Manifest::parse(&text).unwrap_or_else(|e| panic!("{shown}: {e}"));
                let dir = path.parent().and_then(|d| d.file_name()).and_then(|d| d.to_str());
                assert_eq!(
                    Some(manifest.slug.as_str()),
                    dir,
                    "{shown} is named after its directory"
                );
            }
            Some("js" | "wit" | "py" | "c" | "h") => assert!(!text.trim().is_empty(), "{shown} has content"),
            _ => panic!("{shown}: no test checks this kind of file yet; add one to this test"),
        }
    }
    assert!(presets >= 4, "found the server presets: {files:?}");
    // And as agentos reads them at start: all of them, unique names, each valid.
    let loaded = spec::load_dir(&servers).unwrap();
    assert_eq!(loaded.len(), presets);
    spec::validate_all(&loaded).unwrap();
    assert!(loaded.iter().any(|s| s.url.is_some() && s.bearer_token_env.is_some()));
}

/// `agentos mcp` started in the repository (no config file: it reads `./tools/servers`) lists
/// the presets as disabled, offers none of their tools and starts no program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_from_the_repository_it_connects_nothing() {
    let data = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(common::agentos_bin());
    command
        .args(["mcp", "--data-dir"])
        .arg(data.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("AGENTOS_CONFIG");
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .expect("start agentos mcp");
    let agentos = transport.id().expect("running");
    let client = RecordingClient::default().serve(transport).await.expect("initialize");

    let listed = structured(&common::call(&client, "agentos.mcp_servers_list", json!({})).await);
    let servers = listed["servers"].as_array().expect("servers");
    assert!(servers.len() >= 4, "the presets are known: {listed}");
    for server in servers {
        assert_eq!(server["status"], "disabled", "{server}");
        assert!(server.get("pid").is_none(), "{server}");
    }
    let tools = client.peer().list_all_tools().await.unwrap();
    assert!(
        !tools.iter().any(|t| t.name.starts_with("mcp.")),
        "no upstream tools: {:?}",
        tools.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>()
    );
    assert!(children_of(agentos).is_empty(), "started: {:?}", children_of(agentos));
    let _ = client.cancel().await;
}

/// Processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<String> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, after)) = stat.rsplit_once(')') else {
            continue;
        };
        if after.split_whitespace().nth(1) == Some(pid.to_string().as_str()) {
            children.push(stat.trim().to_owned());
        }
    }
    children
}

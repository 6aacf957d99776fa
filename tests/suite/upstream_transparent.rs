//! A transparent upstream (`transparent = true`): the project's conformance fixture
//! (`src/bin/mcp_fixture`) behind the real binary has its tools, prompts and resources under
//! their own names as well as under `mcp.fixture.*` and `agentos+mcp://fixture/`, and policies
//! judge the plain names as the namespaced ones.

use std::path::Path;

use rmcp::model::{CallToolRequestParams, GetPromptRequestParams, ReadResourceRequestParams, ResourceContents};
use serde_json::json;

use crate::common::{self, call, text_of};

fn write_config(dir: &Path, transparent: bool) -> String {
    let path = dir.join("agentos.toml");
    std::fs::write(
        &path,
        format!(
            "[[mcp_servers]]\nname = \"fixture\"\ncommand = {:?}\nargs = [\"stdio\"]\ntransparent = {transparent}\n",
            env!("CARGO_BIN_EXE_mcp_fixture")
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_transparent_server_keeps_its_own_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), true);
    let (client, _, _) = common::stdio_client(&dir.path().join("data"), &["--config", &config]).await;
    let peer = client.peer();

    let names: Vec<String> = peer
        .list_all_tools()
        .await
        .unwrap()
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(names.contains(&"test_simple_text".to_owned()), "{names:?}");
    assert!(names.contains(&"mcp.fixture.test_simple_text".to_owned()), "{names:?}");
    let plain = call(&client, "test_simple_text", json!({})).await;
    let namespaced = call(&client, "mcp.fixture.test_simple_text", json!({})).await;
    assert_eq!(text_of(&plain), text_of(&namespaced));
    assert_ne!(plain.is_error, Some(true), "{plain:?}");

    let resources: Vec<String> = peer
        .list_all_resources()
        .await
        .unwrap()
        .iter()
        .map(|r| r.uri.clone())
        .collect();
    assert!(resources.contains(&"test://static-text".to_owned()), "{resources:?}");
    assert!(
        resources.contains(&"agentos+mcp://fixture/test://static-text".to_owned()),
        "{resources:?}"
    );
    let read = peer
        .read_resource(ReadResourceRequestParams::new("test://static-text"))
        .await
        .unwrap();
    match &read.contents[0] {
        ResourceContents::TextResourceContents { uri, .. } => assert_eq!(uri, "test://static-text"),
        other => panic!("text expected: {other:?}"),
    }
    let prompts: Vec<String> = peer
        .list_all_prompts()
        .await
        .unwrap()
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert!(prompts.contains(&"test_simple_prompt".to_owned()), "{prompts:?}");
    let prompt = peer
        .get_prompt(GetPromptRequestParams::new("test_simple_prompt"))
        .await
        .unwrap();
    assert!(!prompt.messages.is_empty());
    client.cancel().await.unwrap();

    // The plain names are allowed exactly when the namespaced ones are.
    let limited_dir = tempfile::tempdir().unwrap();
    let limited_config = write_config(limited_dir.path(), true);
    let (limited, _, _) = common::stdio_client(
        &limited_dir.path().join("data"),
        &[
            "--config",
            &limited_config,
            "--allow-tools",
            "agentos.*,mcp.fixture.test_simple_text",
        ],
    )
    .await;
    let names = common::tool_names(&limited).await;
    assert!(names.contains(&"test_simple_text".to_owned()), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n == "test_image_content" || n == "mcp.fixture.test_image_content"),
        "{names:?}"
    );
    let refused = limited
        .peer()
        .call_tool(CallToolRequestParams::new("test_image_content"))
        .await;
    assert!(
        format!("{refused:?}").contains("unknown tool"),
        "looks unknown: {refused:?}"
    );
    assert!(limited.peer().list_all_resources().await.unwrap().is_empty());
    limited.cancel().await.unwrap();
}

#[tokio::test]
async fn without_transparent_only_namespaced_names_exist() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), false);
    let (client, _, _) = common::stdio_client(&dir.path().join("data"), &["--config", &config]).await;
    let names = common::tool_names(&client).await;
    assert!(names.contains(&"mcp.fixture.test_simple_text".to_owned()), "{names:?}");
    assert!(!names.contains(&"test_simple_text".to_owned()), "{names:?}");
    let resources = client.peer().list_all_resources().await.unwrap();
    assert!(resources.iter().all(|r| r.uri.starts_with("agentos+mcp://fixture/")));
    client.cancel().await.unwrap();
}

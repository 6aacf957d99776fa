//! Scenarios every MCP front door must pass identically (adapter parity): each takes a connected
//! client and checks one behaviour end to end.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Client, Observed, agentos_bin, call, eventually, json_value, params, structured, text_of};

pub const PRIMITIVES: [&str; 6] = [
    "agentos.mem_delete",
    "agentos.mem_get",
    "agentos.mem_list",
    "agentos.mem_set",
    "agentos.time_now",
    "agentos.tools_search",
];

pub async fn tool_names(client: &Client) -> Vec<String> {
    client
        .peer()
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

pub async fn lists_described_tools(client: &Client) {
    let info = client.peer().peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().map(|s| s.name.as_str()), Some("agentos"));
    assert!(info.capabilities.tools.as_ref().and_then(|t| t.list_changed) == Some(true));
    let tools = client.peer().list_all_tools().await.expect("tools/list");
    for name in PRIMITIVES {
        let tool = tools
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} listed"));
        assert!(
            tool.description.as_deref().is_some_and(|d| d.len() > 40),
            "{name} has a real description"
        );
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&json!("object")),
            "{name} input schema"
        );
        assert!(tool.output_schema.is_some(), "{name} has an output schema");
        assert!(tool.annotations.is_some(), "{name} has annotations");
    }
}

pub async fn memory_round_trips(client: &Client, key: &str) {
    let value = json_value();
    let set = structured(&call(client, "agentos.mem_set", json!({"key": key, "value": value})).await);
    assert_eq!(set["key"], key);
    let got = call(client, "agentos.mem_get", json!({"key": key})).await;
    let body = structured(&got);
    assert_eq!(body["found"], true);
    assert_eq!(body["value"], value);
    // The text content carries the same JSON for clients that read only text.
    let text: Value = serde_json::from_str(&text_of(&got)).expect("text content is JSON");
    assert_eq!(text, body);
}

pub async fn value_is_still_there(client: &Client, key: &str) {
    let body = structured(&call(client, "agentos.mem_get", json!({"key": key})).await);
    assert_eq!(body["found"], true, "value survived the restart");
    assert_eq!(body["value"], json_value());
}

pub async fn invalid_arguments_name_the_field(client: &Client) {
    let missing = call(client, "agentos.mem_set", json!({"value": 1})).await;
    assert_eq!(missing.is_error, Some(true));
    let text = text_of(&missing);
    assert!(
        text.contains("`key`") && text.contains("missing"),
        "names the missing field: {text}"
    );

    let wrong_type = call(client, "agentos.mem_list", json!({"limit": "ten"})).await;
    assert_eq!(wrong_type.is_error, Some(true));
    let text = text_of(&wrong_type);
    assert!(text.contains("`limit`"), "names the bad field: {text}");

    let extra = call(client, "agentos.mem_get", json!({"key": "k", "colour": "red"})).await;
    assert!(
        text_of(&extra).contains("`colour`"),
        "names the unexpected field: {}",
        text_of(&extra)
    );
}

pub async fn unknown_tool_error(client: &Client, name: &str) -> String {
    match client.peer().call_tool(params(name, json!({}))).await {
        Ok(result) => panic!("calling unknown tool {name} returned {result:?}"),
        Err(error) => error.to_string(),
    }
}

pub async fn unknown_tool_is_an_error(client: &Client) {
    let error = unknown_tool_error(client, "agentos.no_such_tool").await;
    assert!(error.contains("unknown tool"), "{error}");
}

/// Starts a 30 s call, waits for its first progress report, then drops it (rmcp then sends
/// notifications/cancelled). `stopped` must turn true soon after: the server really stopped it.
pub async fn slow_call_is_cancelled(client: &Client, observed: &Arc<Observed>, stopped: impl Fn() -> bool) {
    let peer = client.peer().clone();
    let task = tokio::spawn(async move {
        peer.call_tool(params("agentos.time_sleep", json!({"seconds": 30})))
            .await
    });
    let progressed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if !observed.progress.lock().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(progressed.is_ok(), "progress notifications arrive during the slow call");
    assert!(!stopped(), "the call is still running before the cancel");
    task.abort();
    assert!(
        eventually(Duration::from_secs(5), &stopped).await,
        "the server stopped the cancelled call"
    );
}

/// Adds a server at run time (agentos itself, over stdio) and checks that the change reaches
/// this client as notifications/tools/list_changed, and again when it is removed.
pub async fn runtime_tools_reach_the_client(client: &Client, observed: &Arc<Observed>, upstream_dir: &std::path::Path) {
    let before = *observed.list_changed.lock().unwrap();
    let added = call(
        client,
        "agentos.mcp_server_add",
        json!({
            "name": "inner",
            "command": agentos_bin(),
            "args": ["mcp", "--data-dir", upstream_dir, "--allow-tools", "agentos.time_now"],
        }),
    )
    .await;
    let added = structured(&added);
    assert_eq!(added["tools"], json!(["mcp.inner.agentos.time_now"]));
    let notified = eventually(Duration::from_secs(10), || {
        *observed.list_changed.lock().unwrap() > before
    })
    .await;
    assert!(notified, "list_changed arrived after the add");
    assert!(
        tool_names(client)
            .await
            .contains(&"mcp.inner.agentos.time_now".to_owned())
    );
    let now = structured(&call(client, "mcp.inner.agentos.time_now", json!({})).await);
    assert!(
        now["iso"].as_str().is_some_and(|s| s.ends_with('Z')),
        "proxied call works: {now}"
    );

    let after_add = *observed.list_changed.lock().unwrap();
    let removed = structured(&call(client, "agentos.mcp_server_remove", json!({"name": "inner"})).await);
    assert_eq!(removed["removed"], true);
    let notified = eventually(Duration::from_secs(10), || {
        *observed.list_changed.lock().unwrap() > after_add
    })
    .await;
    assert!(notified, "list_changed arrived after the remove");
    assert!(!tool_names(client).await.iter().any(|n| n.starts_with("mcp.inner.")));
}

/// A caller allowed only `agentos.mem_*` sees only those, and a denied tool answers exactly like
/// one that does not exist.
pub async fn denied_tools_look_unknown(client: &Client) {
    let names = tool_names(client).await;
    assert!(!names.is_empty());
    assert!(
        names.iter().all(|n| n.starts_with("agentos.mem_")),
        "only memory tools are visible: {names:?}"
    );
    let denied = unknown_tool_error(client, "agentos.time_now").await;
    let unknown = unknown_tool_error(client, "agentos.time_nox").await;
    assert_eq!(denied.replace("time_now", "NAME"), unknown.replace("time_nox", "NAME"));
    structured(&call(client, "agentos.mem_set", json!({"key": "allowed", "value": true})).await);
}

/// With strict names every listed name matches `^[a-zA-Z0-9_-]{1,64}$` and calls by it work.
pub async fn strict_names_work(client: &Client) {
    let names = tool_names(client).await;
    for name in &names {
        assert!(
            (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{name} is strict"
        );
    }
    assert!(names.contains(&"agentos_mem_set".to_owned()), "{names:?}");
    structured(&call(client, "agentos_mem_set", json!({"key": "strict", "value": 1})).await);
    let got = structured(&call(client, "agentos_mem_get", json!({"key": "strict"})).await);
    assert_eq!(got["value"], 1);
}

pub async fn tools_search_finds_memory(client: &Client) {
    let found = structured(&call(client, "agentos.tools_search", json!({"query": "remember a value"})).await);
    let first = found["tools"][0]["name"].as_str().unwrap_or_default().to_owned();
    assert_eq!(first, "agentos.mem_set", "{found}");
}

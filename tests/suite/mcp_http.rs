//! `agentos serve` driven by rmcp's streamable HTTP client, and the plain JSON form of /mcp.

use crate::common;

use std::time::Duration;

use crate::common::{Server, scenarios};
use rmcp::model::{ClientConfig, ServerNotification, SubscriptionFilter};
use serde_json::{Value, json};

async fn plain(server: &Server, body: Value) -> (u16, Value) {
    let response = common::http().post(server.mcp_url()).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = common::http().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn lists_tools_and_round_trips_memory_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    scenarios::lists_described_tools(&client).await;
    scenarios::memory_round_trips(&client, "http/key").await;
    client.cancel().await.unwrap();
    drop(server);

    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    scenarios::value_is_still_there(&client, "http/key").await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_calls_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    scenarios::invalid_arguments_name_the_field(&client).await;
    scenarios::unknown_tool_is_an_error(&client).await;
    scenarios::tools_search_finds_memory(&client).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_cancelled_slow_call_stops() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (client, observed) = common::http_client(&server.mcp_url()).await;
    let addr = server.addr.clone();
    let in_flight = move || {
        common::get_json_blocking(&addr, "/health")["inFlight"]
            .as_u64()
            .unwrap()
    };
    scenarios::slow_call_is_cancelled(&client, &observed, || in_flight() == 0).await;
    assert!(
        server.log().contains("tool call cancelled by the client"),
        "{}",
        server.log()
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn tools_added_at_run_time_reach_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (client, observed) = common::http_client(&server.mcp_url()).await;
    scenarios::runtime_tools_reach_the_client(&client, &observed, upstream.path()).await;
    client.cancel().await.unwrap();
}

/// 2026-07-28 clients have no session: list changes reach them through subscriptions/listen.
#[tokio::test]
async fn stateless_2026_clients_get_list_changes_through_their_subscription() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let client = common::stateless_client(&server.mcp_url(), ClientConfig::default()).await;
    let tools = client.peer().list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "agentos.time_now"));
    let now = client
        .peer()
        .call_tool(common::params("agentos.time_now", json!({})))
        .await
        .unwrap();
    assert!(common::structured(&now)["unixMs"].as_i64().is_some());

    let mut subscription = client
        .peer()
        .listen(SubscriptionFilter::builder().tools_list_changed().build())
        .await
        .expect("subscriptions/listen");
    let (status, added) = plain(
        &server,
        json!({"tool": "agentos.mcp_server_add", "input": {
            "name": "inner", "command": common::agentos_bin(),
            "args": ["mcp", "--data-dir", upstream.path(), "--allow-tools", "agentos.time_now"]}}),
    )
    .await;
    assert_eq!(status, 200, "{added}");
    let notification = tokio::time::timeout(Duration::from_secs(10), subscription.next())
        .await
        .expect("a notification within 10 s")
        .expect("subscription open")
        .expect("a notification");
    assert!(
        matches!(notification, ServerNotification::ToolListChangedNotification(_)),
        "{notification:?}"
    );
    subscription.cancel().await.unwrap();
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_restricted_caller_sees_only_what_it_may_call() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--allow-tools", "agentos.mem_*"]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    scenarios::denied_tools_look_unknown(&client).await;
    client.cancel().await.unwrap();

    // The same over the plain form and GET /tools.
    let (denied_status, denied) = plain(&server, json!({"tool": "agentos.time_now"})).await;
    let (unknown_status, unknown) = plain(&server, json!({"tool": "agentos.time_nox"})).await;
    assert_eq!((denied_status, unknown_status), (404, 404));
    assert_eq!(
        denied["error"].as_str().unwrap().replace("time_now", "NAME"),
        unknown["error"].as_str().unwrap().replace("time_nox", "NAME")
    );
    let (_, listed) = get_json(&server.url("/tools")).await;
    let names: Vec<&str> = listed["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("agentos.mem_")), "{names:?}");
}

#[tokio::test]
async fn strict_names_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&format!("{}?names=strict", server.mcp_url())).await;
    scenarios::strict_names_work(&client).await;
    client.cancel().await.unwrap();
    // Another client on the same server keeps native names.
    let (native, _) = common::http_client(&server.mcp_url()).await;
    assert!(
        scenarios::tool_names(&native)
            .await
            .contains(&"agentos.mem_set".to_owned())
    );
    native.cancel().await.unwrap();
    let (status, body) = get_json(&server.url("/tools?names=bogus")).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn plain_form_calls_tools() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);

    let (status, body) = plain(
        &server,
        json!({"tool": "agentos.mem_set", "input": {"key": "p", "value": [1, 2]}}),
    )
    .await;
    assert_eq!((status, &body["success"]), (200, &json!(true)), "{body}");
    assert_eq!(body["result"]["created"], true);
    let (status, body) = plain(&server, json!({"tool": "agentos.mem_get", "arguments": {"key": "p"}})).await;
    assert_eq!(status, 200);
    assert_eq!(body["result"]["value"], json!([1, 2]));
    // Strict spellings resolve too.
    let (status, body) = plain(&server, json!({"tool": "agentos_mem_get", "input": {"key": "p"}})).await;
    assert_eq!((status, &body["result"]["value"]), (200, &json!([1, 2])));

    let (status, body) = plain(&server, json!({"tool": "agentos.mem_get", "input": {}})).await;
    assert_eq!((status, &body["success"]), (400, &json!(false)));
    assert!(body["error"].as_str().unwrap().contains("`key`"), "{body}");

    let (status, body) = plain(&server, json!({"tool": "agentos.nothing"})).await;
    assert_eq!((status, &body["success"]), (404, &json!(false)), "{body}");

    let (status, body) = plain(
        &server,
        json!({"tool": "agentos.mem_get", "input": {"key": "p"}, "arguments": {}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = plain(&server, json!({"tool": 7})).await;
    assert_eq!(status, 400, "{body}");

    let big = "x".repeat(600);
    let (status, body) = plain(&server, json!({"tool": "agentos.mem_get", "input": {"key": big}})).await;
    assert_eq!(status, 400, "schema limits apply: {body}");

    // The server hint qualifies a bare name as mcp.<server>.<tool>.
    let (status, body) = plain(&server, json!({"tool": "echo", "server": "everything"})).await;
    assert_eq!(status, 404);
    assert!(
        body["error"].as_str().unwrap().contains("mcp.everything.echo"),
        "{body}"
    );
}

#[tokio::test]
async fn health_and_tool_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, health) = get_json(&server.url("/health")).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert!(health["timestamp"].as_str().unwrap().ends_with('Z'));
    let (status, tools) = get_json(&server.url("/tools")).await;
    assert_eq!(status, 200);
    let tools = tools["tools"].as_array().unwrap();
    assert_eq!(health["tools"].as_u64().unwrap() as usize, tools.len());
    assert!(tools.len() >= 32, "at least 32 built-in tools, found {}", tools.len());
    for tool in tools {
        assert!(
            tool["name"].is_string() && tool["description"].is_string() && tool["inputSchema"].is_object(),
            "{tool}"
        );
    }
    let (status, body) = get_json(&server.url("/nowhere")).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}

#[tokio::test]
async fn dns_rebinding_is_refused_and_hosts_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = common::http();
    for path in ["/mcp", "/health", "/tools"] {
        let response = http
            .get(server.url(path))
            .header("host", "evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 403, "{path} with a foreign Host");
    }
    let response = http
        .post(server.mcp_url())
        .header("origin", "https://evil.example")
        .json(&json!({"tool": "agentos.time_now"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 403, "foreign Origin");
    let response = http
        .post(server.mcp_url())
        .header("origin", "http://localhost:3000")
        .json(&json!({"tool": "agentos.time_now"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "loopback Origin");
    drop(server);

    let server = Server::start(dir.path(), &["--allowed-hosts", "agents.example.com"]);
    let response = http
        .get(server.url("/health"))
        .header("host", "agents.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "a configured host is served");
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let huge = json!({"tool": "agentos.mem_set", "input": {"key": "k", "value": "x".repeat(2 * 1024 * 1024)}});
    let response = common::http().post(server.mcp_url()).json(&huge).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let (status, _) = get_json(&server.url("/health")).await;
    assert_eq!(status, 200);
}

/// Limits come from the config file; a tool's own failure is a 422 with a message saying what to change.
#[tokio::test]
async fn config_limits_apply_and_tool_failures_are_422() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(&config, "[limits]\nmax_value_bytes = 1024\n").unwrap();
    let server = Server::start(dir.path(), &["--config", config.to_str().unwrap()]);
    let (status, body) = plain(
        &server,
        json!({"tool": "agentos.mem_set", "input": {"key": "k", "value": "x".repeat(2000)}}),
    )
    .await;
    assert_eq!((status, &body["success"]), (422, &json!(false)), "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("1024") && error.contains("split"),
        "says the limit and what to do: {error}"
    );
    let (status, _) = plain(
        &server,
        json!({"tool": "agentos.mem_set", "input": {"key": "k", "value": "small"}}),
    )
    .await;
    assert_eq!(status, 200);
}

#[test]
fn a_bad_config_file_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(&config, "listen_address = \"0.0.0.0:1\"\n").unwrap();
    let stderr = common::refused_start(&["serve", "--config", config.to_str().unwrap()], dir.path());
    assert!(stderr.contains("listen_address"), "names the unknown key: {stderr}");
}

#[tokio::test]
async fn ending_a_session_answers_204() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = common::http();
    let response = http
        .post(server.mcp_url())
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = response.bytes().await;
    let deleted = http
        .delete(server.mcp_url())
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
}

/// The REST routes for MCP servers are adapters over the `agentos.mcp_server*` tools.
#[tokio::test]
async fn mcp_servers_are_managed_over_rest() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = common::http();
    let added = http
        .post(server.url("/api/mcp/servers"))
        .json(&json!({"name": "inner", "command": common::agentos_bin(),
            "args": ["mcp", "--data-dir", upstream.path(), "--allow-tools", "agentos.time_now"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status().as_u16(), 200);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["tools"], json!(["mcp.inner.agentos.time_now"]), "{added}");
    let (status, listed) = get_json(&server.url("/api/mcp/servers")).await;
    assert_eq!(status, 200);
    assert_eq!(listed["servers"][0]["name"], "inner", "{listed}");
    let bad = http
        .post(server.url("/api/mcp/servers"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let removed: Value = http
        .delete(server.url("/api/mcp/servers/inner"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(removed["removed"], true, "{removed}");
    let (_, listed) = get_json(&server.url("/api/mcp/servers")).await;
    assert_eq!(listed["servers"], json!([]));
}

//! Structured logs with the real binary: with `logs.format = "json"` every stderr line is a JSON
//! object, and a request's `X-Request-Id` is in its log lines, echoed in the response and stored
//! as the `requestId` of the audit records of the tool calls it made (plain form, REST, MCP).

use crate::common;

use std::time::Duration;

use crate::common::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn start_json(dir: &std::path::Path) -> Server {
    let config = dir.join("agentos.toml");
    std::fs::write(&config, "[logs]\nformat = \"json\"\n[rate_limits]\nenabled = false\n").unwrap();
    // Per-request lines ("request served") are debug: at info they would cost every request a write.
    Server::start_secure_with_env(
        &dir.join("data"),
        &["--config", config.to_str().unwrap()],
        &[("AGENTOS_LOG", "info,agentos::adapters::http::request=debug")],
    )
}

/// The audit records the owner sees, newest first.
async fn audit(server: &Server) -> Vec<Value> {
    let response = common::http()
        .get(server.url("/api/audit?limit=100"))
        .bearer_auth(server.token())
        .header("x-request-id", "audit-read")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["records"].as_array().cloned().unwrap_or_default()
}

/// Posts a JSON-RPC message to `/mcp` with a request id; returns the response's session header.
async fn rpc(server: &Server, session: Option<&str>, request_id: &str, body: Value) -> Option<String> {
    let mut request = common::http()
        .post(server.mcp_url())
        .bearer_auth(server.token())
        .header("accept", "application/json, text/event-stream")
        .header("x-request-id", request_id)
        .json(&body);
    if let Some(session) = session {
        request = request
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn json_logs_and_audit_records_share_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_json(dir.path());

    // The plain form.
    let response = common::http()
        .post(server.mcp_url())
        .bearer_auth(server.token())
        .header("x-request-id", "abc123")
        .json(&json!({"tool": "agentos.time_now", "input": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-request-id"], "abc123");

    // A REST route over a tool.
    let response = common::http()
        .get(server.url("/api/approvals"))
        .bearer_auth(server.token())
        .header("x-request-id", "rest456")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // MCP over HTTP: the call carries the HTTP request's id, not the JSON-RPC id.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let session = rpc(&server, None, "init", init).await.expect("a session id");
    rpc(
        &server,
        Some(&session),
        "note",
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "agentos.time_now", "arguments": {}}});
    rpc(&server, Some(&session), "mcp789", call).await;

    // A fresh id when none (or a malformed one) is sent.
    let response = common::http()
        .get(server.url("/health"))
        .header("x-request-id", "bad id")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"].len(), 32);

    // The audit writer flushes in batches, about every second.
    let mut by_id = std::collections::HashMap::new();
    for _ in 0..100 {
        by_id = audit(&server)
            .await
            .into_iter()
            .map(|r| {
                (
                    r["requestId"].as_str().unwrap_or_default().to_owned(),
                    r["tool"].clone(),
                )
            })
            .collect();
        if ["abc123", "rest456", "mcp789"].iter().all(|id| by_id.contains_key(*id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(by_id.get("abc123"), Some(&json!("agentos.time_now")), "{by_id:?}");
    assert_eq!(
        by_id.get("rest456"),
        Some(&json!("agentos.approvals_list")),
        "{by_id:?}"
    );
    assert_eq!(by_id.get("mcp789"), Some(&json!("agentos.time_now")), "{by_id:?}");

    let log = server.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.len() > 3, "{log}");
    let tagged = |id: &str| lines.iter().any(|line| line["span"]["request_id"] == id);
    assert!(tagged("abc123") && tagged("rest456") && tagged("mcp789"), "{log}");
}

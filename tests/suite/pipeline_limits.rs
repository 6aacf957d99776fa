//! Rate limits live in the registry's pipeline (issue 10): a limited agent hits the same budget
//! over stdio, over MCP streamable HTTP, over the plain form and through the steps of a
//! workflow, and gets the documented error at each door: 429 with `Retry-After` and
//! `X-RateLimit-*` over HTTP, an `isError` result of kind `rate_limited` with the delay over
//! MCP, a failed step in a workflow. Anonymous HTTP callers are limited by client address.
//!
//! Budgets refill at one call a minute here, so nothing refills while a test runs.

use crate::common;

use reqwest::StatusCode;
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

use crate::common::Server;

const ONE_A_MINUTE: &str = "[rate_limits]\nmcp = { per_minute = 1, burst = 3 }\napi = { per_minute = 1, burst = 2 }\n";

fn rate_limited(result: &CallToolResult) -> bool {
    let meta = result.meta.as_ref().map(|meta| &meta.0);
    result.is_error == Some(true)
        && meta.and_then(|m| m.get("agentos/failure")) == Some(&json!("rate_limited"))
        && meta
            .and_then(|m| m.get("agentos/retryAfterSecs"))
            .and_then(Value::as_u64)
            .is_some_and(|secs| secs >= 1)
        && common::text_of(result).contains("retry after")
}

#[tokio::test]
async fn the_plain_form_answers_429_with_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), ONE_A_MINUTE);
    let agent = server.register_agent("plain", &["agentos.*"]).await;
    let token = agent["token"].as_str().unwrap();
    for remaining in ["2", "1", "0"] {
        let (status, headers, body) = server.plain(token, "agentos.time_now", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(headers["x-ratelimit-limit"], "3");
        assert_eq!(headers["x-ratelimit-remaining"], remaining);
    }
    let (status, headers, body) = server.plain(token, "agentos.time_now", json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["code"], "rate_limited", "{body}");
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    // An unknown tool is charged like any call: probing names costs budget too.
    let (status, _, _) = server.plain(token, "agentos.no_such_tool", json!({})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn mcp_over_http_gets_an_error_result_with_the_delay() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), ONE_A_MINUTE);
    let agent = server.register_agent("remote", &["agentos.*"]).await;
    let (client, _) = common::http_client_as(&server.mcp_url(), agent["token"].as_str().unwrap()).await;
    for _ in 0..3 {
        let result = common::call(&client, "agentos.time_now", json!({})).await;
        assert_ne!(result.is_error, Some(true), "{result:?}");
    }
    let refused = common::call(&client, "agentos.time_now", json!({})).await;
    assert!(rate_limited(&refused), "{refused:?}");
    // Listings are charged to the same budget; refused, they are a JSON-RPC error.
    let listing = client.peer().list_tools(None).await;
    let error = listing.expect_err("a listing past the budget is refused").to_string();
    assert!(error.contains("rate limited"), "{error}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn mcp_over_stdio_is_limited_like_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), ONE_A_MINUTE);
    let agent = server.register_agent("local", &["agentos.*"]).await;
    let config = dir.path().join("agentos.toml");
    let (client, _, _) = common::stdio_client(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--token",
            agent["token"].as_str().unwrap(),
        ],
    )
    .await;
    for _ in 0..3 {
        let result = common::call(&client, "agentos.time_now", json!({})).await;
        assert_ne!(result.is_error, Some(true), "{result:?}");
    }
    let refused = common::call(&client, "agentos.time_now", json!({})).await;
    assert!(rate_limited(&refused), "{refused:?}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn every_workflow_step_is_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), ONE_A_MINUTE);
    let agent = server.register_agent("flow", &["agentos.*"]).await;
    let token = agent["token"].as_str().unwrap();
    let steps: Vec<Value> = (0..4).map(|_| json!({"tool": "agentos.time_now"})).collect();
    let (status, _, body) = server
        .plain(token, "agentos.workflow_run", json!({ "steps": steps }))
        .await;
    // The run is one call and its first two steps two more; the third step finds the budget
    // spent and stops the workflow.
    assert_eq!(status, StatusCode::OK, "{body}");
    let result = &body["result"];
    assert_eq!(result["status"], "failed", "{result}");
    let statuses: Vec<&str> = result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| step["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "succeeded", "failed", "skipped"], "{result}");
    let error = result["steps"][2]["error"].as_str().unwrap();
    assert!(error.contains("rate limited"), "{error}");
    let (status, _, _) = server.plain(token, "agentos.time_now", json!({})).await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "the budget is spent for every door"
    );
}

#[tokio::test]
async fn anonymous_callers_are_limited_by_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), ONE_A_MINUTE);
    let from = |address: &str| {
        agentos::tls::install_crypto_provider();
        reqwest::Client::builder()
            .local_address(address.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let (first, second) = (from("127.0.0.1"), from("127.0.0.2"));
    for _ in 0..2 {
        let response = first.get(server.url("/tools")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let refused = first.get(server.url("/tools")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let other = second.get(server.url("/tools")).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::OK, "another address has its own budget");
    // A token holder is charged to its agent, not to the address.
    let owner = first
        .get(server.url("/tools"))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(owner.status(), StatusCode::OK);
}

//! Limits that keep one caller from hurting the others, against the real `agentos serve`.
//!
//! Attacks tried, and the outcome each must have:
//! - an agent floods /mcp past its burst → 429 with Retry-After and X-RateLimit-*; other agents
//!   and the owner are unaffected; the agent gets through again after the refill
//! - password guessing on /api/signin from one address → 429 after the auth burst
//! - a 2 MiB body (declared, and chunked without a length) on /mcp and on /api/signup → 413
//!   with a JSON error that the client reads whole (the rest of the body is drained, not reset);
//!   the server stays healthy and keeps serving, and a small chunked body still works
//! - malformed ids in paths (/api/agents/{id}/tokens, /api/mcp/servers/{name}) → 400
//! - a browser on an unlisted origin → refused; a listed origin gets CORS headers

use crate::common;

use std::time::Duration;

use crate::common::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn start(dir: &std::path::Path, toml: &str) -> Server {
    let config = dir.join("agentos.toml");
    std::fs::write(&config, toml).unwrap();
    Server::start_secure(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

async fn register(server: &Server, agent: &str) -> String {
    let body: Value = common::http()
        .post(server.url("/register"))
        .bearer_auth(server.token())
        .json(&json!({"agentId": agent, "name": agent}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn time_now(server: &Server, token: &str) -> reqwest::Response {
    common::http()
        .post(server.mcp_url())
        .bearer_auth(token)
        .json(&json!({"tool": "agentos.time_now", "input": {}}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn rate_limits_answer_429_with_the_headers_and_refill() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        "[rate_limits]\nmcp = { per_minute = 120, burst = 3 }\nauth = { per_minute = 1, burst = 4 }\n",
    );
    let flooder = register(&server, "flooder").await;
    let neighbour = register(&server, "neighbour").await;

    for remaining in ["2", "1", "0"] {
        let response = time_now(&server, &flooder).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-ratelimit-limit"], "3");
        assert_eq!(response.headers()["x-ratelimit-remaining"], remaining);
    }
    let refused = time_now(&server, &flooder).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let headers = refused.headers().clone();
    let retry_after: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert!(headers.contains_key("x-ratelimit-reset"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited", "{body}");
    assert!(body["error"].as_str().unwrap().contains("retry after"), "{body}");

    assert_eq!(
        time_now(&server, &neighbour).await.status(),
        StatusCode::OK,
        "others are unaffected"
    );
    for _ in 0..10 {
        assert_eq!(
            time_now(&server, server.token()).await.status(),
            StatusCode::OK,
            "ops-admins are not limited"
        );
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        time_now(&server, &flooder).await.status(),
        StatusCode::OK,
        "refilled at 2/s"
    );

    // Password guessing from one address.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = common::http()
            .post(server.url("/api/signin"))
            .json(&json!({"email": "victim@example.com", "password": "guess guess"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
    }
    assert_eq!(&statuses[..4], &[StatusCode::UNAUTHORIZED; 4], "{statuses:?}");
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

#[tokio::test]
async fn oversized_bodies_get_413_and_the_server_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let huge = format!(
        "{{\"tool\": \"agentos.mem_set\", \"input\": {{\"key\": \"k\", \"value\": \"{}\"}}}}",
        "x".repeat(2 * 1024 * 1024)
    );
    for path in ["/mcp", "/api/signup", "/register", "/api/mcp/servers"] {
        let response = common::http()
            .post(server.url(path))
            .bearer_auth(server.token())
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "payload_too_large", "{path}: {body}");
    }
    // Without a Content-Length (chunked), the cap holds while reading. The server drains what
    // the client still sends, so the client reads the 413 rather than a reset connection (it
    // used to, now and then: repeated to catch that).
    for _ in 0..5 {
        let chunks: Vec<Result<String, std::io::Error>> = (0..40).map(|_| Ok("x".repeat(64 * 1024))).collect();
        let response = common::http()
            .post(server.url("/api/signup"))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
    // A chunked body under the cap still reaches its route whole.
    let chunks: Vec<Result<String, std::io::Error>> = ["{\"tool\": \"agentos.", "time_now\"}"]
        .into_iter()
        .map(|chunk| Ok(chunk.to_owned()))
        .collect();
    let response = common::http()
        .post(server.mcp_url())
        .bearer_auth(server.token())
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let health = common::http().get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(time_now(&server, server.token()).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn malformed_path_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    for path in [
        "/api/agents/Not%20An%20Id/tokens",
        "/api/agents/..%2F..%2Fetc/tokens",
        "/api/mcp/servers/..%2Fx",
        "/api/mcp/servers/UPPER",
    ] {
        let response = common::http()
            .delete(server.url(path))
            .bearer_auth(server.token())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{path}");
    }
}

#[tokio::test]
async fn cors_answers_listed_origins_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "[http]\ncors_origins = [\"https://app.example.com\"]\n");
    let preflight = common::http()
        .request(reqwest::Method::OPTIONS, server.url("/agent/me"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let listed = common::http()
        .get(server.url("/agent/me"))
        .header("origin", "https://app.example.com")
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(
        listed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = common::http()
        .get(server.url("/agent/me"))
        .header("origin", "https://evil.example")
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::FORBIDDEN, "an unlisted origin");
}

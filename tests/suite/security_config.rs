//! Configuration that could silently do nothing, or open more than it says, against the real
//! `agentos serve`.
//!
//! Attacks tried, and the outcome each must have:
//! - `approvals.require` with a typo (`agentos.mem_sett`) or a tool that does not exist
//!   (`agentos.net_http_post`, which the example once suggested): the held call would run
//!   unheld → agentos refuses to start and names the nearest built-in tool
//! - `approvals.require` naming an upstream server nobody configured → a warning in the log
//! - `allowed_private_hosts = ["localhost", "127.0.0.1"]` to reach a local service: an agent
//!   then called agentos's own API through `agentos.net_http_get` → refused unless the operator
//!   names agentos's address with its port; the other local service stays reachable

use crate::common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Server;

fn write_config(dir: &std::path::Path, toml: &str) -> String {
    let path = dir.join("agentos.toml");
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_approval_pattern_that_holds_no_tool_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    for (pattern, expected) in [
        ("agentos.mem_sett", "did you mean `agentos.mem_set`"),
        ("agentos.net_http_post", "matches no built-in tool"),
        ("mem_set", "can match no tool"),
    ] {
        let config = write_config(dir.path(), &format!("[approvals]\nrequire = [\"{pattern}\"]\n"));
        for front_door in ["serve", "mcp"] {
            let stderr = common::refused_start(&[front_door, "--config", &config], &dir.path().join("data"));
            assert!(stderr.contains(pattern), "{front_door} {pattern}: {stderr}");
            assert!(stderr.contains(expected), "{front_door} {pattern}: {stderr}");
        }
    }
}

#[tokio::test]
async fn an_approval_pattern_for_an_unknown_server_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(
        dir.path(),
        "[approvals]\nrequire = [\"agentos.mem_set\", \"mcp.gihtub.*\"]\n",
    );
    let logged = common::eventually(Duration::from_secs(10), || {
        server.log().contains("no configured MCP server is named `gihtub`")
    })
    .await;
    assert!(logged, "{}", server.log());
}

/// A local service an operator wants agents to reach.
async fn local_service() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/", axum::routing::get(|| async { "local service" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn fetch(server: &Server, token: &str, url: &str) -> (StatusCode, Value) {
    let (status, _, answer) = server.plain(token, "agentos.net_http_get", json!({"url": url})).await;
    (status, answer)
}

#[tokio::test]
async fn allowing_localhost_does_not_open_agentos_own_api() {
    let service = local_service().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(
        dir.path(),
        "[network]\nallowed_private_hosts = [\"localhost\", \"127.0.0.1\"]\n",
    );
    let token = server.register_agent("fetcher", &["agentos.net_*"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = server.addr.rsplit(':').next().unwrap().to_owned();

    for host in ["127.0.0.1", "localhost"] {
        let (status, answer) = fetch(&server, &token, &format!("http://{host}:{port}/agent/me")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{host}: {answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains("agentos's own API"), "{host}: {answer}");
        assert!(
            message.contains(&format!("{host}:{port}")),
            "the fix is named: {answer}"
        );
    }
    // The service the operator meant to open stays open.
    let (status, answer) = fetch(&server, &token, &format!("http://localhost:{}/", service.port())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"]["status"], 200, "{answer}");
    assert!(answer.to_string().contains("local service"), "{answer}");
}

#[tokio::test]
async fn agentos_own_api_is_reachable_when_named_with_its_port() {
    let dir = tempfile::tempdir().unwrap();
    // The port must be known to name it: take a free one, then let agentos listen on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = write_config(
        dir.path(),
        &format!("[network]\nallowed_private_hosts = [\"127.0.0.1:{port}\"]\n"),
    );
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_secure(&dir.path().join("data"), &["--config", &config, "--listen", &listen]);
    let token = server.register_agent("fetcher", &["agentos.net_*"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, answer) = fetch(&server, &token, &format!("http://127.0.0.1:{port}/health")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"]["status"], 200, "{answer}");
}

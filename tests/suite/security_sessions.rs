//! MCP session ownership lasts as long as the session, against the real `agentos serve`.
//!
//! Attack found: the table binding a session to its agent was cleared at 50,000 entries, after
//! which older sessions lost the check that stops another agent from using them. Now a full
//! table closes its least recently used session instead: an evicted session is gone for
//! everyone, and every live one is still its agent's alone. The cap is lowered to 2 here.

use crate::common;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Server;

async fn post(server: &Server, token: &str, session: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = common::http()
        .post(server.mcp_url())
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.send().await.unwrap()
}

async fn open(server: &Server, token: &str) -> String {
    let opened = post(
        server,
        token,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert_eq!(opened.status(), StatusCode::OK);
    opened.headers()["mcp-session-id"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_full_session_table_closes_sessions_and_never_unbinds_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), "[http]\nmax_mcp_sessions = 2\n");
    let alice = server.register_agent("alice", &["agentos.*"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mallory = server.register_agent("mallory", &["agentos.*"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});

    let oldest = open(&server, &alice).await;
    let kept = open(&server, &alice).await;
    assert_eq!(
        post(&server, &alice, Some(&kept), list.clone()).await.status(),
        StatusCode::OK
    );
    // Mallory floods the table with sessions of her own.
    for _ in 0..3 {
        open(&server, &mallory).await;
    }
    for session in [&oldest, &kept] {
        let stolen = post(&server, &mallory, Some(session), list.clone()).await;
        assert_eq!(
            stolen.status(),
            StatusCode::NOT_FOUND,
            "alice's sessions stay hers or are gone"
        );
    }
    let evicted = post(&server, &alice, Some(&oldest), list.clone()).await;
    assert_eq!(
        evicted.status(),
        StatusCode::NOT_FOUND,
        "an evicted session is closed, for its owner too"
    );
}

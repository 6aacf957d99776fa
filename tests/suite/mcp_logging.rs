//! `logging/setLevel` through the real binary: a session gets a `notifications/message` for each
//! of its calls at or above the level it set (info: answered, warning: refused, error: the tool
//! failed), none before it sets one, and another session's calls never.
#![allow(deprecated)] // logging is deprecated by 2026-07-28 but defined by the revisions spoken here

use rmcp::model::{LoggingLevel, SetLevelRequestParams};
use serde_json::{Value, json};

use crate::common::{self, Client, Observed, Server, call};

/// The session's log messages once there are at least `count`.
async fn logs(observed: &Observed, count: usize) -> Vec<Value> {
    common::recorded(&observed.logs, &observed.logs_signal, count, "log messages").await
}

async fn set_level(client: &Client, level: LoggingLevel) {
    client
        .peer()
        .set_level(SetLevelRequestParams::new(level))
        .await
        .expect("logging/setLevel");
}

#[tokio::test]
async fn a_session_hears_about_its_own_calls_at_its_level() {
    let dir = tempfile::tempdir().unwrap();
    let (client, observed, _) = common::stdio_client(dir.path(), &[]).await;
    let info = client.peer().peer_info().unwrap();
    assert!(info.capabilities.logging.is_some(), "agentos declares logging");

    // Before any level is set: nothing. The first message below proves it, as stdio keeps order.
    call(&client, "agentos.time_now", json!({})).await;
    set_level(&client, LoggingLevel::Info).await;
    call(&client, "agentos.hash", json!({"text": "x"})).await;
    let got = logs(&observed, 1).await;
    assert_eq!(got[0]["level"], "info");
    assert_eq!(got[0]["logger"], "agentos");
    assert_eq!(got[0]["data"]["tool"], "agentos.hash");
    assert_eq!(got[0]["data"]["outcome"], "ok");
    assert!(got[0]["data"]["latencyMs"].as_f64().unwrap() >= 0.0);

    call(&client, "agentos.tools_describe", json!({"name": "agentos.nope"})).await;
    let got = logs(&observed, 2).await;
    assert_eq!(got[1]["level"], "error");
    assert!(
        got[1]["data"]["message"].as_str().unwrap().contains("unknown tool"),
        "{}",
        got[1]
    );

    // At `error`, answered calls are not reported; failures still are.
    set_level(&client, LoggingLevel::Error).await;
    call(&client, "agentos.time_now", json!({})).await;
    call(&client, "agentos.tools_describe", json!({"name": "agentos.nope"})).await;
    let got = logs(&observed, 3).await;
    assert_eq!(got[2]["data"]["tool"], "agentos.tools_describe", "{got:?}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn one_session_never_hears_another_sessions_calls() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (listening, heard) = common::http_client(&server.mcp_url()).await;
    let (other, _) = common::http_client(&server.mcp_url()).await;
    set_level(&listening, LoggingLevel::Debug).await;
    call(&other, "agentos.time_now", json!({})).await;
    call(&other, "agentos.hash", json!({"text": "other"})).await;
    call(&listening, "agentos.hash", json!({"text": "mine"})).await;
    let got = logs(&heard, 1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["data"]["tool"], "agentos.hash");
    listening.cancel().await.unwrap();
    other.cancel().await.unwrap();
}

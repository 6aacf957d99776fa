//! `agentos mcp` driven by rmcp's client over stdio.

use crate::common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::scenarios;

#[tokio::test]
async fn lists_tools_and_round_trips_memory_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    scenarios::lists_described_tools(&client).await;
    scenarios::memory_round_trips(&client, "stdio/key").await;
    client.cancel().await.unwrap();

    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    scenarios::value_is_still_there(&client, "stdio/key").await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_calls_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    scenarios::invalid_arguments_name_the_field(&client).await;
    scenarios::unknown_tool_is_an_error(&client).await;
    scenarios::tools_search_finds_memory(&client).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_cancelled_slow_call_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (client, observed, log) = common::stdio_client(dir.path(), &[]).await;
    scenarios::slow_call_is_cancelled(&client, &observed, || {
        log.lock().unwrap().contains("tool call cancelled by the client")
    })
    .await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn tools_added_at_run_time_reach_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = tempfile::tempdir().unwrap();
    let (client, observed, _) = common::stdio_client(dir.path(), &[]).await;
    scenarios::runtime_tools_reach_the_client(&client, &observed, upstream.path()).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_restricted_caller_sees_only_what_it_may_call() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--allow-tools", "agentos.mem_*"]).await;
    scenarios::denied_tools_look_unknown(&client).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn strict_names_for_clients_that_need_them() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--name-style", "strict"]).await;
    scenarios::strict_names_work(&client).await;
    client.cancel().await.unwrap();
}

/// stdout carries protocol only, and the process exits cleanly when stdin closes.
#[test]
fn stdout_is_protocol_only_and_eof_ends_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::agentos_bin())
        .args(["mcp", "--data-dir"])
        .arg(dir.path())
        .env("AGENTOS_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let messages = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"agentos.time_now","arguments":{}}}"#,
    ];
    for message in messages {
        writeln!(stdin, "{message}").unwrap();
    }
    // Give the server time to answer before closing stdin, so both answers are on stdout.
    std::thread::sleep(Duration::from_millis(1500));
    drop(stdin);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "agentos mcp did not exit after stdin closed"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "clean exit: {status}");
    let mut stdout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 2, "exactly the two responses: {stdout}");
    for line in lines {
        let message: serde_json::Value = serde_json::from_str(line).expect("each stdout line is JSON");
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
    }
}

/// `agentos mcp` and `agentos serve` may share one data directory at the same time.
#[tokio::test]
async fn stdio_and_http_share_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start(dir.path(), &[]);
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let http = common::http();
    let answer: serde_json::Value = http
        .post(server.mcp_url())
        .json(&serde_json::json!({"tool": "agentos.mem_set", "input": {"key": "shared", "value": "from http"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["success"], true, "{answer}");
    let got = common::structured(&common::call(&client, "agentos.mem_get", serde_json::json!({"key": "shared"})).await);
    assert_eq!(got["value"], "from http");
    client.cancel().await.unwrap();
}

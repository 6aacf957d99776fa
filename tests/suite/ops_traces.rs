//! Traces over the real binary: a proxied call is one trace whose spans run front door →
//! registry → tool → upstream, listings filter by agent, tool, status and time over REST and
//! `agentos.traces_query`, agents see only their own traces, and finished traces reach an
//! OTLP/HTTP receiver as JSON.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Server, agentos_bin, call, http_client_as, structured};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Requests an OTLP receiver got: (path, body).
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A tiny HTTP/1.1 receiver that answers every request 200 and keeps what it got.
async fn otlp_receiver() -> (String, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let store = received.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    // One request: headers, then Content-Length bytes of body.
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_string();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(str::to_owned)
                        })
                        .map(|v| v.trim().parse().unwrap())
                        .unwrap_or(0);
                    while buffer.len() < end + 4 + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buffer[end + 4..end + 4 + length]).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    store.lock().unwrap().push((path, body));
                    buffer.drain(..end + 4 + length);
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), received)
}

fn start(dir: &std::path::Path, extra_toml: &str, with_inner: bool) -> Server {
    let mut config = format!("{extra_toml}\n[rate_limits]\nenabled = false\n");
    if with_inner {
        config.push_str(&format!(
            "[[mcp_servers]]\nname = \"inner\"\ncommand = {}\nargs = [\"mcp\", \"--data-dir\", {}]\n",
            serde_json::to_string(&agentos_bin().to_string_lossy()).unwrap(),
            serde_json::to_string(&dir.join("inner").to_string_lossy()).unwrap(),
        ));
    }
    let file = dir.join("agentos.toml");
    std::fs::write(&file, config).unwrap();
    Server::start_secure(&dir.join("data"), &["--config", file.to_str().unwrap()])
}

async fn get(server: &Server, token: &str, path: &str) -> (StatusCode, Value) {
    let response = common::http()
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls `path` until its `traces` list has `count` entries.
async fn traces(server: &Server, token: &str, path: &str, count: usize) -> Vec<Value> {
    for _ in 0..100 {
        let (status, body) = get(server, token, path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let list = body["traces"].as_array().cloned().unwrap_or_default();
        if list.len() >= count {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path} never listed {count} traces; log:\n{}", server.log());
}

async fn register(server: &Server, agent: &str) -> String {
    let response = common::http()
        .post(server.url("/register"))
        .bearer_auth(server.token())
        .json(&json!({"agentId": agent, "name": agent, "allowedTools": ["agentos.*"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

async fn plain(server: &Server, token: &str, tool: &str) -> StatusCode {
    let response = common::http()
        .post(server.mcp_url())
        .bearer_auth(token)
        .json(&json!({ "tool": tool, "input": {} }))
        .send()
        .await
        .unwrap();
    response.status()
}

fn child<'a>(span: &'a Value, layer: &str) -> &'a Value {
    span["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["layer"] == layer)
        .unwrap_or_else(|| panic!("no {layer} span under {span}"))
}

#[tokio::test]
async fn a_proxied_call_is_one_trace_from_front_door_to_upstream_and_is_exported() {
    let (endpoint, received) = otlp_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &format!("[traces]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"agentos-test\"\n"),
        true,
    );
    let owner = server.token().to_owned();
    let (client, _) = http_client_as(&server.mcp_url(), &owner).await;
    let mut listed = false;
    for _ in 0..200 {
        let tools = client.peer().list_all_tools().await.unwrap();
        if tools.iter().any(|t| t.name == "mcp.inner.agentos.time_now") {
            listed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        listed,
        "the inner server's tools never appeared; log:\n{}",
        server.log()
    );
    let result = call(&client, "mcp.inner.agentos.time_now", json!({})).await;
    assert_ne!(result.is_error, Some(true));
    assert_eq!(
        plain(&server, &owner, "agentos.no_such_tool").await,
        StatusCode::NOT_FOUND
    );

    let proxied = traces(&server, &owner, "/api/traces?tool=mcp.inner.*", 1).await;
    assert_eq!(proxied.len(), 1, "{proxied:?}");
    let summary = &proxied[0];
    assert_eq!(summary["root"], "mcp.http");
    assert_eq!(summary["agentId"], "owner");
    assert_eq!(summary["tool"], "mcp.inner.agentos.time_now");
    assert_eq!(summary["status"], "ok");
    let id = summary["traceId"].as_str().unwrap().to_owned();

    let (status, body) = get(&server, &owner, &format!("/api/traces/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let spans = body["trace"]["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 1, "one root: {body}");
    let adapter = &spans[0];
    assert_eq!(
        (adapter["layer"].as_str(), adapter["name"].as_str()),
        (Some("adapter"), Some("mcp.http"))
    );
    assert_eq!(adapter["kind"], "server");
    let registry = child(adapter, "registry");
    assert_eq!(registry["attributes"]["tool"], "mcp.inner.agentos.time_now");
    assert_eq!(registry["attributes"]["origin"], "mcp");
    assert_eq!(registry["attributes"]["outcome"], "ok");
    let tool = child(registry, "tool");
    assert_eq!(tool["name"], "mcp.inner.agentos.time_now");
    let upstream = child(tool, "upstream");
    assert_eq!(upstream["kind"], "client");
    assert_eq!(upstream["attributes"]["server"], "inner");
    assert_eq!(upstream["attributes"]["upstream_tool"], "agentos.time_now");
    assert_eq!(registry["parentSpanId"], adapter["spanId"]);
    assert_eq!(tool["parentSpanId"], registry["spanId"]);
    assert_eq!(upstream["parentSpanId"], tool["spanId"]);
    assert!(upstream["durationUs"].as_i64().unwrap() <= tool["durationUs"].as_i64().unwrap());

    // Filters, over REST and over the tool itself.
    let failed = traces(&server, &owner, "/api/traces?status=error", 1).await;
    assert_eq!(failed[0]["tool"], "agentos.no_such_tool");
    assert_eq!(failed[0]["root"], "http.plain");
    let ok = traces(&server, &owner, "/api/traces?status=ok&tool=agentos.no_such_tool", 0).await;
    assert!(ok.is_empty());
    assert!(
        traces(&server, &owner, "/api/traces?since=2100-01-01T00:00:00Z", 0)
            .await
            .is_empty()
    );
    assert!(
        traces(&server, &owner, "/api/traces?until=2000-01-01T00:00:00Z", 0)
            .await
            .is_empty()
    );
    let windowed = traces(
        &server,
        &owner,
        "/api/traces?since=2000-01-01T00:00:00Z&agentId=owner",
        2,
    )
    .await;
    assert!(windowed.len() >= 2);
    let by_tool = structured(
        &call(
            &client,
            "agentos.traces_query",
            json!({"tool": "mcp.inner.agentos.time_now", "limit": 5}),
        )
        .await,
    );
    assert_eq!(by_tool["traces"][0]["traceId"], id.as_str());
    let opened = structured(&call(&client, "agentos.traces_query", json!({"traceId": id})).await);
    assert_eq!(opened["trace"]["spans"][0]["spanId"], adapter["spanId"]);

    // The same trace reached the OTLP receiver.
    let mut exported = None;
    for _ in 0..100 {
        exported = received
            .lock()
            .unwrap()
            .iter()
            .find(|(_, body)| body.contains(&id))
            .cloned();
        if exported.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (path, body) = exported.unwrap_or_else(|| panic!("no OTLP export of {id}; log:\n{}", server.log()));
    assert_eq!(path, "/v1/traces");
    let body: Value = serde_json::from_str(&body).unwrap();
    let resource = &body["resourceSpans"][0];
    assert_eq!(
        resource["resource"]["attributes"][0]["value"]["stringValue"],
        "agentos-test"
    );
    let spans: Vec<&Value> = resource["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["traceId"] == id.as_str())
        .collect();
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for name in ["mcp.http", "registry", "mcp.inner.agentos.time_now", "upstream inner"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let exported_upstream = spans.iter().find(|s| s["name"] == "upstream inner").unwrap();
    assert_eq!(exported_upstream["parentSpanId"], tool["spanId"]);
    assert_eq!(exported_upstream["kind"], 3);
}

#[tokio::test]
async fn agents_read_only_their_own_traces() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "", false);
    let alice = register(&server, "alice").await;
    let bob = register(&server, "bob").await;
    assert_eq!(plain(&server, &alice, "agentos.time_now").await, StatusCode::OK);
    assert_eq!(plain(&server, &bob, "agentos.time_now").await, StatusCode::OK);

    let own = traces(&server, &alice, "/api/traces?tool=agentos.time_now", 1).await;
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0]["agentId"], "alice");
    let bobs = traces(&server, &bob, "/api/traces?tool=agentos.time_now", 1).await;
    let bob_trace = bobs[0]["traceId"].as_str().unwrap();
    let everyone = traces(&server, server.token(), "/api/traces?tool=agentos.time_now", 2).await;
    assert_eq!(everyone.len(), 2, "the owner sees both");

    let (status, body) = get(&server, &alice, "/api/traces?agentId=bob").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = get(&server, &alice, &format!("/api/traces/{bob_trace}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another's trace looks absent");
    let (status, _) = get(&server, &bob, &format!("/api/traces/{bob_trace}")).await;
    assert_eq!(status, StatusCode::OK);
    for bad in ["not-a-trace", "0123456789ABCDEF0123456789ABCDEF", "0123"] {
        let (status, _) = get(&server, &alice, &format!("/api/traces/{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, _) = get(&server, &alice, &format!("/api/traces/{}", "0".repeat(32))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&server, &alice, "/api/traces?status=weird").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// With `max_ok_per_second = 1`, ten quick successful calls store one trace per second they
/// span, and `/metrics` counts every other one as sampled out: stored and sampled out add up to
/// exactly ten. A failed call is stored whatever the cap.
#[tokio::test]
async fn successful_traces_over_the_cap_are_counted_as_sampled_out() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "[traces]\nmax_ok_per_second = 1\n", false);
    let token = server.token().to_owned();
    for _ in 0..10 {
        assert_eq!(plain(&server, &token, "agentos.time_now").await, StatusCode::OK);
    }
    // Input that fails validation: an error trace.
    assert!(plain(&server, &token, "agentos.mem_get").await.is_client_error());

    // Admission is decided when a call ends, so the counters are final now; read them before any
    // trace query, which is a traced call itself.
    let text = common::http()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metric = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    let sampled_out = metric("agentos_traces_sampled_out_total");
    assert_eq!(metric("agentos_traces_dropped_total"), 0);
    assert_eq!(metric("agentos_audit_records_dropped_total"), 0);

    let failed = traces(&server, &token, "/api/traces?status=error", 1).await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["tool"], "agentos.mem_get");
    let stored = traces(
        &server,
        &token,
        "/api/traces?tool=agentos.time_now&limit=100",
        (10 - sampled_out) as usize,
    )
    .await
    .len() as u64;
    assert_eq!(stored + sampled_out, 10, "stored {stored}, sampled out {sampled_out}");
    assert!(
        (1..=3).contains(&stored),
        "one stored per second the calls spanned, got {stored}"
    );
}

//! Sensitive values never reach a record in the clear, over the real binary: a secret read in a
//! workflow reaches its next step but its run history shows `[redacted]`; a schedule's stored
//! input and run history likewise; a held `agentos.net_http_get` with an `Authorization` header
//! is listed to approvers redacted and, once approved, still sends the real header. In each
//! case the audit trail, the traces, the log and every file in the data directory (the SQLite
//! database with its WAL included) are searched for the secret.

use crate::common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::any;
use serde_json::{Value, json};

use crate::common::{Client, Server, call, structured, text_of};

const REDACTED: &str = "[redacted]";

/// A secret no other text in a test contains.
fn secret(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("s3cr3t-{tag}-{nanos:09}")
}

/// A local HTTP server that records the credentials it receives and echoes them in its body,
/// as some services do: what a tool was handed can come back in its output.
struct EchoServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl EchoServer {
    async fn start() -> Self {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = seen.clone();
        let app = Router::new().route(
            "/echo",
            any(move |headers: HeaderMap| {
                let log = log.clone();
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let (authorization, signature) = (header("authorization"), header("x-signature"));
                    log.lock().unwrap().extend([authorization.clone(), signature.clone()]);
                    axum::Json(json!({"youSent": format!("{authorization} {signature}").trim()}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}/echo", self.addr)
    }

    fn received(&self, value: &str) -> bool {
        self.seen.lock().unwrap().iter().any(|seen| seen == value)
    }
}

/// `agentos serve` reaching 127.0.0.1 with the network tools, plus `extra` configuration.
fn start(dir: &Path, extra: &str) -> Server {
    let config = dir.join("agentos.toml");
    std::fs::write(
        &config,
        // Every successful trace is kept: these tests read each call's trace, and the tests'
        // polling makes enough calls to reach the default cap of 100 a second.
        format!(
            "[network]\nallowed_private_hosts = [\"127.0.0.1\"]\n\n[traces]\nmax_ok_per_second = 1000000\n\n{extra}"
        ),
    )
    .unwrap();
    Server::start(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

/// Every file under `dir` whose bytes contain `needle`: the database, its WAL, anything.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|window| window == needle.as_bytes())
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// Checks that nothing kept or shown holds `secret`: the data directory, the log, and what the
/// audit trail and the traces say of `tool`'s calls (which must be there).
async fn nothing_keeps(server: &Server, client: &Client, dir: &Path, tool: &str, secret: &str) {
    let audit = common::poll(Duration::from_secs(10), || async {
        let audit = structured(&call(client, "agentos.audit_query", json!({"tool": tool})).await);
        audit["records"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
            .then_some(audit)
    })
    .await
    .unwrap_or_else(|| panic!("no audit records of {tool}"));
    assert!(!audit.to_string().contains(secret), "audit: {audit}");
    // Every trace, whole: a nested call (a workflow's step) is a span of its root's trace. The
    // trace writer stores in batches, so the call's trace may follow its audit record.
    let traced = common::poll(Duration::from_secs(10), || async {
        let traces = structured(&call(client, "agentos.traces_query", json!({"limit": 500})).await);
        let listed = traces["traces"].as_array().cloned().unwrap_or_default();
        let mut traced = false;
        for summary in listed {
            let opened =
                structured(&call(client, "agentos.traces_query", json!({"traceId": summary["traceId"]})).await);
            let text = opened.to_string();
            traced |= text.contains(tool);
            assert!(!text.contains(secret), "trace: {opened}");
        }
        traced.then_some(())
    })
    .await;
    assert!(traced.is_some(), "no trace has a span of {tool} within 10 s");
    assert!(
        !server.log().contains(secret),
        "the log holds the secret:\n{}",
        server.log()
    );
    let files = files_containing(&dir.join("data"), secret);
    assert!(files.is_empty(), "stored in the clear in {files:?}");
}

#[tokio::test]
async fn a_secret_read_in_a_workflow_reaches_the_next_step_but_no_record() {
    let echo = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let secret = secret("wf");
    structured(
        &call(
            &client,
            "agentos.secret_set",
            json!({"name": "SIGNING_KEY", "value": secret}),
        )
        .await,
    );

    let run = structured(
        &call(
            &client,
            "agentos.workflow_run",
            json!({"steps": [
                {"id": "read", "tool": "agentos.secret_get", "input": {"name": "SIGNING_KEY"}},
                // A header no name rule knows: only the value's origin marks it sensitive.
                {"id": "send", "tool": "agentos.net_http_get", "input": {
                    "url": echo.url(),
                    "headers": {"X-Signature": {"$from": "read", "pointer": "/value"}}
                }}
            ]}),
        )
        .await,
    );
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert!(echo.received(&secret), "the next step was handed the real value");
    let id = run["id"].as_str().unwrap().to_owned();
    let got = structured(&call(&client, "agentos.workflow_get", json!({"id": id})).await);
    for shown in [&run, &got] {
        assert_eq!(shown["steps"][0]["result"]["value"], REDACTED, "{shown:#}");
        assert_eq!(shown["steps"][0]["result"]["name"], "SIGNING_KEY");
        // The echo of the value in the next step's output is scrubbed too.
        let body = shown["steps"][1]["result"]["body"].as_str().unwrap();
        assert!(body.contains(REDACTED), "{body}");
        assert!(!shown.to_string().contains(&secret), "{shown:#}");
    }
    // Read directly, the secret is the caller's own.
    let direct = structured(&call(&client, "agentos.secret_get", json!({"name": "SIGNING_KEY"})).await);
    assert_eq!(direct["value"], secret.as_str());

    nothing_keeps(&server, &client, dir.path(), "agentos.net_http_get", &secret).await;
    nothing_keeps(&server, &client, dir.path(), "agentos.workflow_run", &secret).await;
}

/// Polls a schedule's runs until one is recorded.
async fn first_run(client: &Client, id: &str) -> Value {
    common::poll(Duration::from_secs(15), || async {
        let runs = structured(&call(client, "agentos.schedule_runs", json!({"id": id})).await);
        runs["runs"].as_array().and_then(|r| r.first()).cloned()
    })
    .await
    .expect("the schedule never ran")
}

#[tokio::test]
async fn schedules_keep_sensitive_inputs_sealed_and_their_runs_redacted() {
    let echo = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let secret = secret("sched");
    structured(
        &call(
            &client,
            "agentos.secret_set",
            json!({"name": "API_TOKEN", "value": secret}),
        )
        .await,
    );
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(800);
    let at = soon.to_rfc3339();

    // A schedule that reads the secret: its run history shows it redacted.
    let reads = structured(
        &call(
            &client,
            "agentos.schedule_create",
            json!({"tool": "agentos.secret_get", "input": {"name": "API_TOKEN"}, "at": at}),
        )
        .await,
    );
    // A schedule that sends it as a bearer token: its stored input shows it redacted, and each
    // run opens the sealed real one.
    let bearer = format!("Bearer {secret}");
    let sends = structured(
        &call(
            &client,
            "agentos.schedule_create",
            json!({"tool": "agentos.net_http_get", "input": {"url": echo.url(), "headers": {"Authorization": bearer}}, "at": at}),
        )
        .await,
    );
    assert_eq!(sends["input"]["headers"]["Authorization"], REDACTED, "{sends:#}");
    let read_run = first_run(&client, reads["id"].as_str().unwrap()).await;
    assert_eq!(read_run["outcome"], "ok", "{read_run:#}");
    assert_eq!(read_run["result"]["value"], REDACTED, "{read_run:#}");
    let send_run = first_run(&client, sends["id"].as_str().unwrap()).await;
    assert_eq!(send_run["outcome"], "ok", "{send_run:#}");
    assert!(echo.received(&bearer), "the run sent the real header");
    let body = send_run["result"]["body"].as_str().unwrap();
    assert!(body.contains(REDACTED) && !body.contains(&secret), "{body}");
    let listed = structured(&call(&client, "agentos.schedule_list", json!({})).await);
    assert!(listed.to_string().contains(REDACTED), "{listed:#}");
    assert!(!listed.to_string().contains(&secret), "{listed:#}");

    nothing_keeps(&server, &client, dir.path(), "agentos.net_http_get", &secret).await;
    nothing_keeps(&server, &client, dir.path(), "agentos.secret_get", &secret).await;
}

#[tokio::test]
async fn a_held_call_shows_its_bearer_token_redacted_and_runs_with_it_once_approved() {
    let echo = EchoServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        "[approvals]\nrequire = [\"agentos.net_http_get\"]\nwait_secs = 1\n",
    );
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let secret = secret("held");
    let bearer = format!("Bearer {secret}");
    let held = call(
        &client,
        "agentos.net_http_get",
        json!({"url": echo.url(), "headers": {"Authorization": bearer, "Accept": "application/json"}}),
    )
    .await;
    let id = agentos::registry::approval_id_of(&held)
        .unwrap_or_else(|| panic!("held for approval: {}", text_of(&held)))
        .to_owned();
    assert!(!echo.received(&bearer), "nothing ran before the approval");

    let list = structured(&call(&client, "agentos.approvals_list", json!({"status": "pending"})).await);
    let preview = list["approvals"][0]["preview"].as_str().unwrap();
    assert!(
        preview.contains(REDACTED) && preview.contains("application/json"),
        "{preview}"
    );
    assert!(!list.to_string().contains(&secret), "{list:#}");
    let files = files_containing(&dir.path().join("data"), &secret);
    assert!(files.is_empty(), "the held input is stored in the clear in {files:?}");

    let decided = structured(
        &call(
            &client,
            "agentos.approval_decide",
            json!({"id": id, "decision": "approve"}),
        )
        .await,
    );
    assert_eq!(decided["status"], "approved");
    let outcome = common::poll(Duration::from_secs(10), || async {
        let outcome = structured(&call(&client, "agentos.approval_result", json!({"id": id})).await);
        (outcome["status"] != "approved").then_some(outcome)
    })
    .await
    .expect("the approved call never finished");
    assert_eq!(outcome["status"], "completed", "{outcome:#}");
    assert!(echo.received(&bearer), "the approved call sent the real header");
    let body = outcome["result"]["structuredContent"]["body"].as_str().unwrap();
    assert!(
        body.contains(REDACTED),
        "the stored result is scrubbed of the echo: {body}"
    );
    assert!(!outcome.to_string().contains(&secret), "{outcome:#}");
    let listed = structured(&call(&client, "agentos.approvals_list", json!({})).await);
    assert!(!listed.to_string().contains(&secret), "{listed:#}");

    nothing_keeps(&server, &client, dir.path(), "agentos.net_http_get", &secret).await;
}

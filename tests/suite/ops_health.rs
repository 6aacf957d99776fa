//! Readiness over HTTP with the real binary: the store and a proxied stdio upstream (`inner`, an
//! `agentos mcp` child) are reported without credentials; killing the child turns `mcp.inner`
//! (and readiness) unhealthy until the supervisor has restarted it; unknown services are 404.
//! Also: `/openapi.json` and `/docs` are public and served by the binary itself.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{Server, agentos_bin};
use reqwest::StatusCode;
use serde_json::Value;

fn start(dir: &std::path::Path) -> Server {
    let inner = dir.join("inner");
    let config = dir.join("agentos.toml");
    std::fs::write(
        &config,
        format!(
            "[[mcp_servers]]\nname = \"inner\"\ncommand = {}\nargs = [\"mcp\", \"--data-dir\", {}]\n",
            serde_json::to_string(&agentos_bin().to_string_lossy()).unwrap(),
            serde_json::to_string(&inner.to_string_lossy()).unwrap(),
        ),
    )
    .unwrap();
    Server::start_secure(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

/// A GET without credentials: probes have none.
async fn get(server: &Server, path: &str) -> (StatusCode, Value) {
    let response = common::http().get(server.url(path)).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls `path` until `wanted` holds for its answer, or panics after `limit`.
async fn until(server: &Server, path: &str, limit: Duration, wanted: impl Fn(StatusCode, &Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = get(server, path).await;
        if wanted(status, &body) {
            return body;
        }
        assert!(
            started.elapsed() < limit,
            "{path} never got there; last {status} {body}; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The pid of the server's child running `agentos mcp --data-dir <dir>/inner`, from /proc.
fn inner_pid(server: &Server, dir: &std::path::Path) -> Option<u32> {
    let marker = dir.join("inner").to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The parent pid is the second field after the parenthesised command name.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid != Some(server.pid().to_string().as_str()) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&marker) {
            return Some(pid);
        }
    }
    None
}

#[tokio::test]
async fn readiness_follows_the_store_and_the_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());

    // Liveness keeps its shape.
    let (status, live) = get(&server, "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(live["status"], "ok");

    let ready = until(&server, "/health/ready", Duration::from_secs(30), |status, body| {
        status == StatusCode::OK && body["services"]["mcp.inner"]["status"] == "healthy"
    })
    .await;
    assert_eq!(ready["status"], "healthy");
    assert_eq!(ready["services"]["store"]["status"], "healthy");
    assert!(ready["services"]["store"]["responseTime"].is_u64(), "{ready}");
    assert!(ready["timestamp"].is_i64(), "{ready}");
    // Public output: no command lines, paths or endpoints.
    let text = ready.to_string();
    assert!(
        !text.contains("--data-dir") && !text.contains(&*dir.path().to_string_lossy()),
        "{text}"
    );

    let (status, store) = get(&server, "/health/store").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(store["status"], "healthy");

    // Kill the upstream's process: it is unhealthy until the supervisor has restarted it.
    let pid = inner_pid(&server, dir.path()).expect("the inner server runs as a child");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let degraded = until(&server, "/health/mcp.inner", Duration::from_secs(10), |status, _| {
        status == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(
        ["degraded", "unhealthy"].contains(&degraded["status"].as_str().unwrap()),
        "{degraded}"
    );
    assert!(degraded["error"].is_string(), "{degraded}");
    until(&server, "/health/ready", Duration::from_secs(30), |status, body| {
        status == StatusCode::OK && body["services"]["mcp.inner"]["status"] == "healthy"
    })
    .await;
    assert_ne!(
        inner_pid(&server, dir.path()),
        Some(pid),
        "a new process serves `inner`"
    );

    // Unknown and malformed names.
    let (status, unknown) = get(&server, "/health/mcp.nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(unknown["error"], "unknown_service");
    assert_eq!(unknown["message"], "unknown service: mcp.nope");
    let (status, odd) = get(&server, "/health/%3Cscript%3E").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!odd.to_string().contains("script"), "{odd}");
}

#[tokio::test]
async fn the_openapi_document_and_its_page_are_public_and_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure(dir.path(), &[]);
    let (status, document) = get(&server, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    for path in [
        "/health/ready",
        "/health/{service}",
        "/api/audit",
        "/api/traces/{id}",
        "/metrics",
    ] {
        assert!(document["paths"][path].is_object(), "{path} is not described");
    }
    let response = common::http().get(server.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let page = response.text().await.unwrap();
    assert!(page.contains("fetch(\"/openapi.json\""));
    assert!(
        !page.contains("https://") && !page.contains("http://"),
        "the page loads nothing from elsewhere"
    );
}

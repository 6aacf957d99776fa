//! examples/cluster as users run it: `run-local` starts PostgreSQL, three replicas and HAProxy
//! with the shipped configuration, and MCP clients talk to the balancer. Stateless requests
//! spread over the replicas; a session sticks to the replica that opened it; when that replica
//! dies the session answers 404 and a new one works.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::cluster::{open_session, session_call};
use crate::common::{self, database};

/// The running example, stopped (every process of it) when dropped.
struct LocalCluster {
    dir: tempfile::TempDir,
    port: u16,
}

fn run_local(dir: &Path, port: u16, action: &str) -> std::process::Output {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Command::new("bash")
        .arg(root.join("examples/cluster/run-local"))
        .arg(action)
        .env("CLUSTER_DIR", dir)
        .env("CLUSTER_PORT", port.to_string())
        .env("AGENTOS_BIN", common::agentos_bin())
        .output()
        .expect("run examples/cluster/run-local")
}

impl LocalCluster {
    fn start() -> Option<Self> {
        if database::server_url().is_none() {
            assert!(
                std::env::var("AGENTOS_TEST_REQUIRE_POSTGRES").ok().as_deref() != Some("1"),
                "AGENTOS_TEST_REQUIRE_POSTGRES=1 but AGENTOS_TEST_DATABASE_URL is not set"
            );
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // Eleven ports in a row: the balancer, three replicas, PostgreSQL at +10.
        let port = free_port_run(11);
        let output = run_local(dir.path(), port, "start");
        assert!(
            output.status.success(),
            "run-local start failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Some(Self { dir, port })
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn replica_url(&self, index: u16, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port + index)
    }

    fn owner(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("replica-1/owner-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    fn pid_file(&self, index: u16) -> PathBuf {
        self.dir.path().join(format!("replica-{index}.pid"))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        run_local(self.dir.path(), self.port, "stop");
    }
}

/// The first of `count` consecutive free ports (checked by binding each).
fn free_port_run(count: u16) -> u16 {
    loop {
        let first = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if first > u16::MAX - count {
            continue;
        }
        if (first..first + count).all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()) {
            return first;
        }
    }
}

/// A call of `agentos.time_now` inside `session`: its status.
async fn call_in(url: &str, token: &str, session: &str) -> StatusCode {
    session_call(url, token, session, "agentos.time_now").await.0
}

/// How many tool calls a replica has served (its `/metrics`, as the owner).
async fn calls_served(cluster: &LocalCluster, index: u16, token: &str) -> u64 {
    let text = common::http()
        .get(cluster.replica_url(index, "/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with("agentos_tool_calls_total{") && line.contains("agentos.time_now"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn the_example_cluster_spreads_stateless_calls_and_keeps_sessions_on_their_replica() {
    let Some(cluster) = LocalCluster::start() else {
        eprintln!("no PostgreSQL (AGENTOS_TEST_DATABASE_URL): skipping; scripts/test runs this");
        return;
    };
    let owner = cluster.owner();
    let balancer = cluster.url("/mcp");
    // Stateless (plain form): spread round-robin, so every replica serves some.
    for _ in 0..9 {
        let response = common::http()
            .post(&balancer)
            .bearer_auth(&owner)
            .json(&json!({"tool": "agentos.time_now", "input": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    for index in 1..=3 {
        assert!(
            calls_served(&cluster, index, &owner).await >= 1,
            "replica {index} served none of the stateless calls"
        );
    }
    // A session: every call reaches its replica (without affinity two in three would be 404).
    let session = open_session(&balancer, &owner).await;
    for _ in 0..12 {
        assert_eq!(call_in(&balancer, &owner, &session).await, StatusCode::OK);
    }
    let mut holder = None;
    for index in 1..=3 {
        if call_in(&cluster.replica_url(index, "/mcp"), &owner, &session).await == StatusCode::OK {
            holder = Some(index);
        }
    }
    let holder = holder.expect("one replica holds the session");
    // That replica dies: the session is gone (404), and a new one through the balancer works.
    let pid = std::fs::read_to_string(cluster.pid_file(holder)).unwrap();
    Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
    let status = common::poll(std::time::Duration::from_secs(10), || async {
        let status = call_in(&balancer, &owner, &session).await;
        (status != StatusCode::OK && status != StatusCode::SERVICE_UNAVAILABLE && status != StatusCode::BAD_GATEWAY)
            .then_some(status)
    })
    .await;
    assert_eq!(status, Some(StatusCode::NOT_FOUND), "the dead replica's session");
    let reopened = open_session(&balancer, &owner).await;
    for _ in 0..6 {
        assert_eq!(call_in(&balancer, &owner, &reopened).await, StatusCode::OK);
    }
}

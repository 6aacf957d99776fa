//! Scaling out: durable `agentos.mem_set` writes on PostgreSQL against the embedded SQLite store,
//! and `agentos.time_now` through HAProxy over three replicas against one replica direct, each
//! pair measured in alternating rounds in one run (the machine is shared and drifts).
//!
//! `cargo bench --bench cluster`. It starts its own PostgreSQL (scripts/postgres, with
//! fsync on: the writes are durable) unless `AGENTOS_BENCH_DATABASE_URL` names a server, and the
//! three replicas with HAProxy through examples/cluster/run-local. `BENCH_SECS` (default 5),
//! `BENCH_CONNECTIONS` (default 32), `BENCH_ROUNDS` (default 3). Without `--bench`: a short smoke
//! run.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::Figures;
use support::paired::{Paired, median};

fn main() {
    agentos::tls::install_crypto_provider();
    let args: Vec<String> = std::env::args().collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let env = |name: &str, default: f64| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let (duration, connections) = if smoke {
        (Duration::from_millis(300), 4)
    } else {
        (
            Duration::from_secs_f64(env("BENCH_SECS", 5.0)),
            env("BENCH_CONNECTIONS", 32.0) as usize,
        )
    };
    let rounds = support::paired::rounds(smoke);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let (server, _postgres) = postgres_server(root, work.path(), smoke);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "agentos cluster benchmark: {connections} connections, {:.1}s per phase, {rounds} rounds\n",
        duration.as_secs_f64()
    );

    let one_each = format!("{connections} agents, one per connection");
    for (label, agents) in [(one_each.as_str(), connections), ("one agent on every connection", 1)] {
        let mut paired = Paired {
            off: Vec::new(),
            on: Vec::new(),
        };
        for round in 0..rounds {
            let sqlite = runtime.block_on(mem_set_load(None, agents, duration, connections));
            let database = create_database(&server, &format!("bench_{}_{round}_{agents}", std::process::id()));
            let postgres = runtime.block_on(mem_set_load(Some(&database), agents, duration, connections));
            paired.off.push(sqlite);
            paired.on.push(postgres);
        }
        let (sqlite, postgres) = paired.median_round();
        println!("mem_set, durable, {label}:");
        println!(
            "  SQLite     {:>8.0} writes/s  p50 {:>6.0} us  p99 {:>6.0} us",
            sqlite.calls_per_sec, sqlite.p50_us, sqlite.p99_us
        );
        println!(
            "  PostgreSQL {:>8.0} writes/s  p50 {:>6.0} us  p99 {:>6.0} us",
            postgres.calls_per_sec, postgres.p50_us, postgres.p99_us
        );
        println!("  PostgreSQL / SQLite: {}\n", ratios(&paired));
    }

    let cluster = LocalCluster::start(root, work.path());
    let owner = cluster.owner();
    let mut paired = Paired {
        off: Vec::new(),
        on: Vec::new(),
    };
    for _ in 0..rounds {
        let direct = runtime.block_on(time_now_load(cluster.port + 1, &owner, duration, connections));
        let balanced = runtime.block_on(time_now_load(cluster.port, &owner, duration, connections));
        paired.off.push(direct);
        paired.on.push(balanced);
    }
    let (direct, balanced) = paired.median_round();
    println!("time_now, plain form, {connections} connections:");
    println!(
        "  one replica, direct          {:>8.0} calls/s  p50 {:>6.0} us  p99 {:>6.0} us",
        direct.calls_per_sec, direct.p50_us, direct.p99_us
    );
    println!(
        "  HAProxy over three replicas  {:>8.0} calls/s  p50 {:>6.0} us  p99 {:>6.0} us",
        balanced.calls_per_sec, balanced.p50_us, balanced.p99_us
    );
    println!("  balanced / direct: {}", ratios(&paired));
}

fn ratios(paired: &Paired) -> String {
    let rounds: Vec<String> = paired.ratios().iter().map(|r| format!("{r:.2}x")).collect();
    format!("{:.2}x (rounds: {})", median(paired.ratios()), rounds.join(", "))
}

/// A PostgreSQL server to measure on: `AGENTOS_BENCH_DATABASE_URL`, else (in a smoke run) the
/// tests' server, else one started here (stopped when the guard drops).
fn postgres_server(root: &Path, work: &Path, smoke: bool) -> (String, Option<Stop>) {
    if let Ok(url) = std::env::var("AGENTOS_BENCH_DATABASE_URL") {
        return (url, None);
    }
    if let Some(url) = std::env::var("AGENTOS_TEST_DATABASE_URL").ok().filter(|_| smoke) {
        return (url, None);
    }
    let dir = work.join("postgres");
    let port = free_ports(1).to_string();
    let output = std::process::Command::new("bash")
        .arg(root.join("scripts/postgres"))
        .args(["start", dir.to_str().unwrap(), &port])
        .env_remove("AGENTOS_PG_FAST")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "scripts/postgres start: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let url = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let stop = Stop(vec![
        root.join("scripts/postgres").display().to_string(),
        "stop".into(),
        dir.display().to_string(),
    ]);
    (url, Some(stop))
}

/// Runs a command when dropped.
struct Stop(Vec<String>);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash").args(&self.0).output();
    }
}

fn create_database(server: &str, name: &str) -> String {
    let status = std::process::Command::new("psql")
        .args([
            "-q",
            server,
            "-c",
            &format!("DROP DATABASE IF EXISTS {name}"),
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "create database {name}");
    let base = server.rsplit_once('/').map_or(server, |(base, _)| base);
    format!("{base}/{name}")
}

/// The first of `count` consecutive free ports.
fn free_ports(count: u16) -> u16 {
    loop {
        let first = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if first <= u16::MAX - count
            && (first..first + count).all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        {
            return first;
        }
    }
}

/// Durable `mem_set`s from `connections` clients over the plain form, against a fresh agentos on
/// SQLite (`database` None) or on `database`, as `agents` agents (connection i acts as agent
/// i mod agents).
async fn mem_set_load(database: Option<&str>, agents: usize, duration: Duration, connections: usize) -> Figures {
    let config = match database {
        Some(url) => format!("[rate_limits]\nenabled = false\n[store]\ndatabase_url = \"{url}\"\n"),
        None => "[rate_limits]\nenabled = false\n".to_owned(),
    };
    let (agentos, owner) = support::start_agentos_configured(&config, true);
    let owner = owner.unwrap();
    let tokens: Vec<String> = if agents <= 1 {
        vec![owner]
    } else {
        let client = reqwest::Client::new();
        let mut tokens = Vec::new();
        for index in 0..agents {
            let registered: serde_json::Value = client
                .post(format!("http://{}/register", agentos.addr))
                .bearer_auth(&owner)
                .json(
                    &json!({"agentId": format!("writer-{index}"), "name": "writer", "allowedTools": ["agentos.mem_*"]}),
                )
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            tokens.push(registered["token"].as_str().expect("a token").to_owned());
        }
        tokens
    };
    let url = format!("http://{}/mcp", agentos.addr);
    load(connections, duration, move |connection, n| {
        let body =
            json!({"tool": "agentos.mem_set", "input": {"key": format!("k{connection}-{n}"), "value": {"n": n}}});
        (url.clone(), tokens[connection % tokens.len()].clone(), body)
    })
    .await
}

async fn time_now_load(port: u16, token: &str, duration: Duration, connections: usize) -> Figures {
    let url = format!("http://127.0.0.1:{port}/mcp");
    let token = token.to_owned();
    load(connections, duration, move |_, _| {
        (url.clone(), token.clone(), json!({"tool": "agentos.time_now"}))
    })
    .await
}

/// A closed loop per connection (its own keep-alive client) for `duration` after a 0.5 s warm-up;
/// every answer must be a success.
async fn load(
    connections: usize,
    duration: Duration,
    request: impl Fn(usize, usize) -> (String, String, serde_json::Value) + Send + Sync + 'static,
) -> Figures {
    agentos::tls::install_crypto_provider();
    let request = Arc::new(request);
    let warm_until = Instant::now() + Duration::from_millis(500);
    let until = warm_until + duration;
    let workers: Vec<_> = (0..connections)
        .map(|connection| {
            let request = request.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
                let mut latencies = Vec::new();
                let mut n = 0;
                loop {
                    let started = Instant::now();
                    if started >= until {
                        return latencies;
                    }
                    let (url, token, body) = request(connection, n);
                    n += 1;
                    let response = client.post(&url).bearer_auth(&token).json(&body).send().await.unwrap();
                    let text = response.text().await.unwrap();
                    assert!(text.contains("\"success\":true"), "a failed call: {text}");
                    if started >= warm_until {
                        latencies.push(started.elapsed().as_micros() as u32);
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    all.sort_unstable();
    let percentile = |p: f64| all.get(((all.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0) as f64;
    Figures {
        calls_per_sec: all.len() as f64 / duration.as_secs_f64(),
        p50_us: percentile(0.50),
        p99_us: percentile(0.99),
        cpu_us_per_call: None,
    }
}

/// examples/cluster/run-local's three replicas and HAProxy, stopped when dropped.
struct LocalCluster {
    port: u16,
    dir: std::path::PathBuf,
    _stop: Stop,
}

impl LocalCluster {
    fn start(root: &Path, work: &Path) -> Self {
        let port = free_ports(11);
        let dir = work.join("cluster");
        let script = root.join("examples/cluster/run-local");
        let run = |action: &str| {
            std::process::Command::new("bash")
                .arg(&script)
                .arg(action)
                .env("CLUSTER_DIR", &dir)
                .env("CLUSTER_PORT", port.to_string())
                .env("AGENTOS_BIN", env!("CARGO_BIN_EXE_agentos"))
                .env("AGENTOS_LOG", "warn")
                .output()
                .unwrap()
        };
        let output = run("start");
        assert!(
            output.status.success(),
            "run-local start: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stop = Stop(vec![
            "-c".into(),
            format!(
                "CLUSTER_DIR={} CLUSTER_PORT={port} bash {} stop",
                dir.display(),
                script.display()
            ),
        ]);
        Self { port, dir, _stop: stop }
    }

    fn owner(&self) -> String {
        std::fs::read_to_string(self.dir.join("replica-1/owner-token"))
            .unwrap()
            .trim()
            .to_owned()
    }
}

//! Several `agentos serve` replicas on one PostgreSQL database, as `examples/cluster/` runs them:
//! what one replica writes, decides or revokes holds on every other, and a replica killed in the
//! middle of a write load loses nothing it acknowledged.
//!
//! These need the PostgreSQL server scripts/test starts (`AGENTOS_TEST_DATABASE_URL`); without
//! it they say so and pass, unless `AGENTOS_TEST_REQUIRE_POSTGRES=1` (set by scripts/test), when
//! a missing server fails them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, Server, database};

/// A signing key every replica shares, so a token any of them issues verifies on all.
const SIGNING_KEY: &str = "cluster-test-signing-key-0123456789abcdef0123456789";

struct Cluster {
    dir: tempfile::TempDir,
    url: String,
    config: PathBuf,
    replicas: Vec<Option<Server>>,
}

impl Cluster {
    /// `count` replicas on a fresh database, configured with `extra` TOML besides what replicas
    /// must share; `None` (after saying why) when there is no PostgreSQL to run on.
    fn start(count: usize, extra: &str) -> Option<Self> {
        let Some(url) = database::fresh() else {
            assert!(
                std::env::var("AGENTOS_TEST_REQUIRE_POSTGRES").ok().as_deref() != Some("1"),
                "AGENTOS_TEST_REQUIRE_POSTGRES=1 but AGENTOS_TEST_DATABASE_URL is not set"
            );
            eprintln!("no PostgreSQL (AGENTOS_TEST_DATABASE_URL): skipping a cluster test; scripts/test runs them");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agentos.toml");
        let key_file = dir.path().join("secrets.key");
        std::fs::write(
            &config,
            format!(
                "[identity]\nsigning_key = \"{SIGNING_KEY}\"\n[secrets]\nkey_file = \"{}\"\n{extra}",
                key_file.display()
            ),
        )
        .unwrap();
        let mut cluster = Self {
            dir,
            url,
            config,
            replicas: Vec::new(),
        };
        for index in 0..count {
            let replica = cluster.launch(index);
            cluster.replicas.push(Some(replica));
        }
        Some(cluster)
    }

    fn launch(&self, index: usize) -> Server {
        Server::start_secure(
            &self.dir.path().join(format!("replica-{index}")),
            &["--config", self.config.to_str().unwrap(), "--database-url", &self.url],
        )
    }

    fn replica(&self, index: usize) -> &Server {
        self.replicas[index].as_ref().expect("a running replica")
    }

    /// The owner's token (any replica's verifies on every replica).
    fn owner(&self) -> String {
        self.replica(0).token().to_owned()
    }
}

/// A plain-form call: the status and the tool's result (or the error body).
async fn plain(server: &Server, token: &str, tool: &str, input: Value) -> (StatusCode, Value) {
    let (status, _, body) = server.plain(token, tool, input).await;
    (status, body)
}

async fn ok(server: &Server, token: &str, tool: &str, input: Value) -> Value {
    let (status, body) = plain(server, token, tool, input).await;
    assert_eq!(status, StatusCode::OK, "{tool} on {}: {body}", server.addr);
    body["result"].clone()
}

#[tokio::test]
async fn every_acknowledged_write_survives_a_replica_killed_mid_load() {
    let Some(mut cluster) = Cluster::start(3, "[rate_limits]\nenabled = false\n") else {
        return;
    };
    let owner = cluster.owner();
    let addrs: Vec<String> = (0..3).map(|i| cluster.replica(i).addr.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    // Twelve writers, four per replica; each moves to the next replica when its own stops
    // answering, as a client behind a balancer would be moved.
    let mut writers = Vec::new();
    for writer in 0..12usize {
        let (addrs, owner, stop) = (addrs.clone(), owner.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let client = common::http();
            let mut target = writer % 3;
            let (mut acknowledged, mut failed) = (Vec::new(), 0usize);
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{writer}-{n}");
                let sent = client
                    .post(format!("http://{}/mcp", addrs[target]))
                    .bearer_auth(&owner)
                    .json(&json!({"tool": "agentos.mem_set", "input": {"key": key, "value": n}}))
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == StatusCode::OK => {
                        acknowledged.push(key);
                        n += 1;
                    }
                    _ => {
                        // Unacknowledged: the client does not know whether it landed. It tries
                        // the same key on the next replica, as a retrying client would.
                        failed += 1;
                        target = (target + 1) % 3;
                    }
                }
            }
            (acknowledged, failed)
        }));
    }
    // Let the load build, then kill replica 1 in the middle of it.
    let started = Instant::now();
    let progress = cluster.replica(0).addr.clone();
    common::poll(Duration::from_secs(60), || {
        let (client, owner, addr) = (common::http(), owner.clone(), progress.clone());
        async move {
            let listed: Value = client
                .post(format!("http://{addr}/mcp"))
                .bearer_auth(&owner)
                .json(&json!({"tool": "agentos.mem_list", "input": {"limit": 1000}}))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (listed["result"]["entries"].as_array().map_or(0, Vec::len) >= 150).then_some(())
        }
    })
    .await
    .expect("the write load got going");
    let mut killed = cluster.replicas[1].take().unwrap();
    killed.kill();
    let killed_at = started.elapsed();
    // The others keep answering while the load goes on.
    for index in [0, 2] {
        ok(cluster.replica(index), &owner, "agentos.time_now", json!({})).await;
    }
    // The killed replica comes back (its clients reconnect to it) and serves them again.
    let back = cluster.launch(1);
    let returned = ok(
        &back,
        &owner,
        "agentos.mem_set",
        json!({"key": "after-restart", "value": true}),
    )
    .await;
    assert!(returned.is_object(), "{returned}");
    cluster.replicas[1] = Some(back);
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = BTreeSet::new();
    let mut failures = 0;
    for writer in writers {
        let (keys, failed) = writer.await.unwrap();
        failures += failed;
        acknowledged.extend(keys);
    }
    assert!(acknowledged.len() > 150, "{} writes", acknowledged.len());
    // Every acknowledged write is there, read back through each replica.
    for index in 0..3 {
        let server = cluster.replica(index);
        let mut found = BTreeSet::new();
        let mut after: Option<String> = None;
        loop {
            let mut input = json!({"limit": 1000});
            if let Some(after) = &after {
                input["cursor"] = json!(after);
            }
            let page = ok(server, &owner, "agentos.mem_list", input).await;
            for entry in page["entries"].as_array().unwrap() {
                found.insert(entry["key"].as_str().unwrap().to_owned());
            }
            match page["nextCursor"].as_str() {
                Some(next) => after = Some(next.to_owned()),
                None => break,
            }
        }
        let missing: Vec<_> = acknowledged.difference(&found).collect();
        assert!(
            missing.is_empty(),
            "replica {index} lacks {} acknowledged writes: {missing:?}",
            missing.len()
        );
    }
    eprintln!(
        "{} acknowledged writes over 3 replicas, replica 1 killed after {killed_at:?}, {failures} \
         unacknowledged attempts retried elsewhere",
        acknowledged.len()
    );
}

#[tokio::test]
async fn a_schedule_fires_once_per_occurrence_across_replicas() {
    let Some(cluster) = Cluster::start(3, "[rate_limits]\nenabled = false\n") else {
        return;
    };
    let owner = cluster.owner();
    let created = ok(
        cluster.replica(0),
        &owner,
        "agentos.schedule_create",
        json!({"tool": "agentos.events_publish", "input": {"topic": "ticks", "payload": 1}, "everySeconds": 1}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    // Each occurrence publishes one event; with three schedulers racing, duplicates would show
    // as more events than occurrences, or as two runs for one scheduled time.
    let runs = common::poll(Duration::from_secs(30), || {
        let (server, owner, id) = (cluster.replica(2), owner.clone(), id.clone());
        async move {
            let runs = ok(server, &owner, "agentos.schedule_runs", json!({"id": id, "limit": 100})).await;
            let runs = runs["runs"].as_array().cloned().unwrap_or_default();
            (runs.len() >= 5).then_some(runs)
        }
    })
    .await
    .expect("five occurrences within 30 s");
    ok(cluster.replica(1), &owner, "agentos.schedule_cancel", json!({"id": id})).await;
    let times: BTreeSet<i64> = runs.iter().map(|run| run["scheduledAtMs"].as_i64().unwrap()).collect();
    assert_eq!(times.len(), runs.len(), "an occurrence ran twice: {runs:#?}");
    // Each run published one event before it was recorded; at most one more occurrence may have
    // been running when the runs were read. Firing twice would publish about twice as many.
    let events = ok(
        cluster.replica(0),
        &owner,
        "agentos.events_poll",
        json!({"topic": "ticks", "limit": 100}),
    )
    .await;
    let published = events["events"].as_array().unwrap().len();
    assert!(
        (runs.len()..=runs.len() + 1).contains(&published),
        "{published} events for {} runs: {events}",
        runs.len()
    );
}

#[tokio::test]
async fn queue_items_are_leased_to_one_consumer_across_replicas() {
    let Some(cluster) = Cluster::start(3, "[rate_limits]\nenabled = false\n") else {
        return;
    };
    let owner = cluster.owner();
    for n in 0..60 {
        ok(
            cluster.replica(n % 3),
            &owner,
            "agentos.queue_push",
            json!({"queue": "jobs", "item": n}),
        )
        .await;
    }
    let mut consumers = Vec::new();
    for index in 0..6usize {
        let (addr, owner) = (cluster.replica(index % 3).addr.clone(), owner.clone());
        consumers.push(tokio::spawn(async move {
            let client = common::http();
            let mut got = Vec::new();
            loop {
                let body: Value = client
                    .post(format!("http://{addr}/mcp"))
                    .bearer_auth(&owner)
                    .json(&json!({"tool": "agentos.queue_pop", "input": {"queue": "jobs", "max": 2, "visibilitySeconds": 300}}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let items = body["result"]["items"].as_array().cloned().unwrap_or_default();
                if items.is_empty() {
                    return got;
                }
                got.extend(items.iter().map(|item| item["item"].as_i64().unwrap()));
            }
        }));
    }
    let mut all = Vec::new();
    for consumer in consumers {
        all.extend(consumer.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..60).collect::<Vec<i64>>(), "each item leased exactly once");
}

#[tokio::test]
async fn a_poll_waiting_on_one_replica_wakes_for_a_publish_on_another() {
    let Some(cluster) = Cluster::start(2, "") else { return };
    let owner = cluster.owner();
    let first = ok(
        cluster.replica(1),
        &owner,
        "agentos.events_publish",
        json!({"topic": "news", "payload": {"n": 0}}),
    )
    .await;
    let cursor = first["cursor"].as_str().unwrap().to_owned();
    // Waits on replica 0 for what follows the first event; replica 1 publishes it.
    let waiting = {
        let (addr, owner) = (cluster.replica(0).addr.clone(), owner.clone());
        tokio::spawn(async move {
            common::http()
                .post(format!("http://{addr}/mcp"))
                .bearer_auth(&owner)
                .json(&json!({"tool": "agentos.events_poll", "input": {"topic": "news", "after": cursor, "waitMs": 20000}}))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let published_at = Instant::now();
    ok(
        cluster.replica(1),
        &owner,
        "agentos.events_publish",
        json!({"topic": "news", "payload": {"n": 1}}),
    )
    .await;
    let body = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .expect("the waiting poll returned long before its 20 s wait")
        .unwrap();
    assert_eq!(body["result"]["events"][0]["payload"]["n"], 1, "{body}");
    eprintln!(
        "the poll on replica 0 returned {:?} after replica 1 published",
        published_at.elapsed()
    );
}

#[tokio::test]
async fn revoking_a_token_or_disabling_an_agent_holds_on_every_replica_within_a_second() {
    let Some(cluster) = Cluster::start(3, "[rate_limits]\nenabled = false\n") else {
        return;
    };
    let registered = cluster.replica(0).register_agent("worker", &["agentos.*"]).await;
    let (token, jti) = (
        registered["token"].as_str().unwrap().to_owned(),
        registered["jti"].as_str().unwrap().to_owned(),
    );
    // Every replica verifies (and caches) the token first.
    for index in 0..3 {
        ok(cluster.replica(index), &token, "agentos.time_now", json!({})).await;
    }
    let revoked_at = Instant::now();
    ok(
        cluster.replica(0),
        &cluster.owner(),
        "agentos.token_revoke",
        json!({"jti": jti}),
    )
    .await;
    for index in 1..3 {
        let refused = common::poll(Duration::from_secs(1), || async {
            let (status, _) = plain(cluster.replica(index), &token, "agentos.time_now", json!({})).await;
            (status == StatusCode::UNAUTHORIZED).then_some(())
        })
        .await;
        assert!(
            refused.is_some(),
            "replica {index} still accepts a revoked token {:?} after the revocation",
            revoked_at.elapsed()
        );
    }

    let second = cluster.replica(1).register_agent("helper", &["agentos.*"]).await;
    let token = second["token"].as_str().unwrap().to_owned();
    for index in 0..3 {
        ok(cluster.replica(index), &token, "agentos.time_now", json!({})).await;
    }
    ok(
        cluster.replica(2),
        &cluster.owner(),
        "agentos.agent_disable",
        json!({"agentId": "helper"}),
    )
    .await;
    for index in 0..2 {
        let refused = common::poll(Duration::from_secs(1), || async {
            let (status, _) = plain(cluster.replica(index), &token, "agentos.time_now", json!({})).await;
            (status != StatusCode::OK).then_some(status)
        })
        .await;
        assert!(
            refused.is_some(),
            "replica {index} still serves a disabled agent after 1 s"
        );
    }
}

#[tokio::test]
async fn a_call_held_on_one_replica_completes_when_another_approves_it() {
    let Some(cluster) = Cluster::start(
        2,
        "[rate_limits]\nenabled = false\n[approvals]\nrequire = [\"agentos.time_now\"]\nwait_secs = 60\n",
    ) else {
        return;
    };
    let owner = cluster.owner();
    let agent = cluster.replica(0).register_agent("asker", &["agentos.time_now"]).await;
    let token = agent["token"].as_str().unwrap().to_owned();
    let held = {
        let addr = cluster.replica(0).addr.clone();
        tokio::spawn(async move {
            common::http()
                .post(format!("http://{addr}/mcp"))
                .bearer_auth(&token)
                .json(&json!({"tool": "agentos.time_now", "input": {}}))
                .send()
                .await
                .unwrap()
        })
    };
    let id = common::poll(Duration::from_secs(20), || async {
        let list = ok(
            cluster.replica(1),
            &owner,
            "agentos.approvals_list",
            json!({"status": "pending"}),
        )
        .await;
        list["approvals"][0]["id"].as_str().map(str::to_owned)
    })
    .await
    .expect("the held call is listed on the other replica");
    let decided = ok(
        cluster.replica(1),
        &owner,
        "agentos.approval_decide",
        json!({"id": id, "decision": "approve"}),
    )
    .await;
    assert_eq!(decided["status"], "approved", "{decided}");
    let response = tokio::time::timeout(Duration::from_secs(20), held)
        .await
        .expect("the waiting call completed")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["result"]["unixMs"].as_i64().is_some(),
        "the approved call's own result: {body}"
    );
}

#[tokio::test]
async fn the_audit_trail_and_traces_are_one_and_readable_from_any_replica() {
    let Some(cluster) = Cluster::start(3, "[rate_limits]\nenabled = false\n") else {
        return;
    };
    let owner = cluster.owner();
    for index in 0..3 {
        ok(
            cluster.replica(index),
            &owner,
            "agentos.mem_set",
            json!({"key": format!("from-{index}"), "value": index}),
        )
        .await;
    }
    for index in 0..3 {
        let found = common::poll(Duration::from_secs(10), || async {
            let audit = ok(
                cluster.replica(index),
                &owner,
                "agentos.audit_query",
                json!({"tool": "agentos.mem_set", "limit": 50}),
            )
            .await;
            let records = audit["records"].as_array().cloned().unwrap_or_default();
            (records.len() >= 3).then_some(records)
        })
        .await;
        assert!(
            found.is_some(),
            "replica {index} sees all three writes in the audit trail"
        );
        let traces = common::poll(Duration::from_secs(10), || async {
            let traces = ok(
                cluster.replica(index),
                &owner,
                "agentos.traces_query",
                json!({"tool": "agentos.mem_set", "limit": 50}),
            )
            .await;
            let rows = traces["traces"].as_array().cloned().unwrap_or_default();
            (rows.len() >= 3).then_some(rows)
        })
        .await;
        assert!(traces.is_some(), "replica {index} sees the three calls' traces");
    }
}

/// The JSON-RPC answer in a response body, whether sent as JSON or as one SSE event.
fn rpc_answer(body: &str) -> Value {
    let json = body
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim)
        .find(|data| data.starts_with('{'))
        .unwrap_or(body);
    serde_json::from_str(json).unwrap_or_else(|e| panic!("a JSON-RPC answer: {e}: {body}"))
}

/// A stateless 2026-07-28 tool call: no session, so any replica may answer it.
async fn stateless_call(server: &Server, token: &str, tool: &str, arguments: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}}});
    let response = common::http()
        .post(server.mcp_url())
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{tool} on {}", server.addr);
    rpc_answer(&response.text().await.unwrap())
}

/// Opens a 2025-11-25 session on `server`; returns its id.
pub(crate) async fn open_session(url: &str, token: &str) -> String {
    let http = common::http();
    let response = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let _ = response.bytes().await;
    let initialized = http
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(initialized.status(), StatusCode::ACCEPTED);
    session
}

/// A call inside `session`: the status, and the answer when there is one.
pub(crate) async fn session_call(url: &str, token: &str, session: &str, tool: &str) -> (StatusCode, Option<Value>) {
    let response = common::http()
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool, "arguments": {}}}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    (status, (status == StatusCode::OK).then(|| rpc_answer(&body)))
}

#[tokio::test]
async fn stateless_requests_go_to_any_replica_and_a_dead_replicas_session_is_404_then_reopened() {
    let Some(mut cluster) = Cluster::start(3, "[rate_limits]\nenabled = false\n") else {
        return;
    };
    let owner = cluster.owner();
    // Stateless: written through one replica, read through the others.
    let set = stateless_call(
        cluster.replica(0),
        &owner,
        "agentos.mem_set",
        json!({"key": "k", "value": "v"}),
    )
    .await;
    assert!(set["result"].is_object(), "{set}");
    for index in 1..3 {
        let got = stateless_call(cluster.replica(index), &owner, "agentos.mem_get", json!({"key": "k"})).await;
        assert_eq!(
            got["result"]["structuredContent"]["value"], "v",
            "replica {index}: {got}"
        );
    }
    // Sessions live in the replica that opened them: the balancer keeps a session on its
    // replica (affinity on Mcp-Session-Id). When that replica dies, the session is unknown
    // elsewhere: 404, and the client opens a new one, which works.
    let session = open_session(&cluster.replica(0).mcp_url(), &owner).await;
    let (status, answer) = session_call(&cluster.replica(0).mcp_url(), &owner, &session, "agentos.time_now").await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer.unwrap()["result"]["structuredContent"]["unixMs"].is_i64());
    cluster.replicas[0].take().unwrap().kill();
    let (status, _) = session_call(&cluster.replica(1).mcp_url(), &owner, &session, "agentos.time_now").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a session another replica opened is unknown here"
    );
    let reopened = open_session(&cluster.replica(1).mcp_url(), &owner).await;
    let (status, answer) = session_call(&cluster.replica(1).mcp_url(), &owner, &reopened, "agentos.time_now").await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer.unwrap()["result"]["structuredContent"]["unixMs"].is_i64());
}

#[tokio::test]
async fn a_replica_with_other_keys_than_the_cluster_refuses_to_start() {
    let Some(cluster) = Cluster::start(1, "") else { return };
    let refuse = |toml: String| {
        let dir = cluster
            .dir
            .path()
            .join(format!("stranger-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("agentos.toml");
        std::fs::write(&config, toml).unwrap();
        let output = std::process::Command::new(common::agentos_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--config", config.to_str().unwrap()])
            .args(["--database-url", &cluster.url, "--data-dir"])
            .arg(dir.join("data"))
            .output()
            .unwrap();
        assert!(!output.status.success(), "a replica with other keys started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let shared_secrets = cluster.dir.path().join("secrets.key");
    let other_signing = refuse(format!(
        "[identity]\nsigning_key = \"another-signing-key-0123456789abcdef0123456789\"\n[secrets]\nkey_file = \"{}\"\n",
        shared_secrets.display()
    ));
    assert!(other_signing.contains("`identity.signing_key`"), "{other_signing}");
    let other_secrets = refuse(format!("[identity]\nsigning_key = \"{SIGNING_KEY}\"\n"));
    assert!(other_secrets.contains("`secrets.key_file`"), "{other_secrets}");
    // The cluster itself is unharmed.
    ok(cluster.replica(0), &cluster.owner(), "agentos.time_now", json!({})).await;
}

#[tokio::test]
async fn an_agents_rate_limit_is_spent_across_replicas() {
    let Some(cluster) = Cluster::start(3, "[rate_limits]\nmcp = { per_minute = 1, burst = 30 }\n") else {
        return;
    };
    let agent = cluster.replica(0).register_agent("limited", &["agentos.*"]).await;
    let token = agent["token"].as_str().unwrap().to_owned();
    // The whole burst on replica 0...
    for _ in 0..30 {
        let (status, body) = plain(cluster.replica(0), &token, "agentos.time_now", json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // ...is spent on the others once replica 0 reports it (every 100 ms). Alone, each of them
    // would let 30 more through; they may let a few pass before the report arrives.
    for index in 1..3 {
        let passed = std::cell::Cell::new(0);
        let refused = common::poll(Duration::from_secs(5), || async {
            let (status, _) = plain(cluster.replica(index), &token, "agentos.time_now", json!({})).await;
            if status == StatusCode::OK {
                passed.set(passed.get() + 1);
            }
            (status == StatusCode::TOO_MANY_REQUESTS).then_some(())
        })
        .await;
        let passed = passed.get();
        assert!(refused.is_some(), "replica {index} never refused");
        assert!(
            passed <= 10,
            "replica {index} let {passed} calls through after the budget was spent"
        );
        eprintln!("replica {index} let {passed} calls through before replica 0's report arrived");
    }
}

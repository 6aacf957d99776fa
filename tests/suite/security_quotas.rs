//! Per-agent storage quotas, against the real `agentos serve`.
//!
//! Attack reproduced: a self-registered agent fills the disk through the stored families
//! (memory, events over many topics, queues over many queues, knowledge, secrets). Outcome each
//! must have: the write past the agent's quota is refused with an error naming the setting and
//! how to make room, nothing of it is kept, deleting makes room at once, `agentos.quota_status`
//! reports the usage, and other agents keep their own room.

use crate::common;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Server;

/// Room for four 50 KB values per family; the fifth is refused.
const CONFIG: &str = "[identity]\nself_registration = \"open\"\n[rate_limits]\nenabled = false\n\
    [quotas]\nmemory_bytes = 200000\nevents_bytes = 200000\nqueue_bytes = 200000\n\
    knowledge_bytes = 200000\nsecrets_bytes = 2000\n";

const VALUE_BYTES: usize = 50_000;

async fn self_register(server: &Server, agent: &str) -> String {
    let response = common::http()
        .post(server.url("/register"))
        .json(&json!({"agentId": agent, "name": agent}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "self-registering {agent}");
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

/// Calls `tool` as `token`: the result, or the failure's message.
async fn call(server: &Server, token: &str, tool: &str, input: Value) -> Result<Value, String> {
    let (status, _, body) = server.plain(token, tool, input).await;
    if status == StatusCode::OK && body["success"] == json!(true) {
        Ok(body["result"].clone())
    } else {
        Err(body["error"]["message"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned))
    }
}

/// Writes with `input(n)` for n = 0, 1, ... until a write is refused; returns how many were
/// accepted and the refusal. Gives up after `most` writes.
async fn fill(
    server: &Server,
    token: &str,
    tool: &str,
    most: usize,
    input: impl Fn(usize) -> Value,
) -> (usize, String) {
    for n in 0..most {
        if let Err(message) = call(server, token, tool, input(n)).await {
            return (n, message);
        }
    }
    panic!("{tool}: {most} writes were all accepted");
}

fn family<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["families"]
        .as_array()
        .and_then(|families| families.iter().find(|f| f["family"] == name))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

#[tokio::test]
async fn one_agent_cannot_store_past_its_quota_in_any_family() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), CONFIG);
    let hoarder = self_register(&server, "hoarder").await;
    let neighbour = self_register(&server, "neighbour").await;
    let big = "x".repeat(VALUE_BYTES);

    let (kept, refusal) = fill(
        &server,
        &hoarder,
        "agentos.mem_set",
        20,
        |n| json!({"key": format!("k{n}"), "value": big}),
    )
    .await;
    assert_eq!(
        kept, 3,
        "three 50 KB values (keys and JSON quotes included) fit 200000 bytes"
    );
    for needle in [
        "memory quota reached",
        "quotas.memory_bytes",
        "agentos.mem_delete",
        "Nothing was written",
    ] {
        assert!(refusal.contains(needle), "`{needle}` in: {refusal}");
    }
    let refused = call(&server, &hoarder, "agentos.mem_get", json!({"key": "k3"}))
        .await
        .unwrap();
    assert_eq!(
        refused["found"], false,
        "nothing of the refused write is kept: {refused}"
    );

    let (kept, refusal) = fill(
        &server,
        &hoarder,
        "agentos.events_publish",
        20,
        |n| json!({"topic": format!("spray/{n}"), "payload": big}),
    )
    .await;
    assert_eq!(kept, 3, "events are counted over all topics together");
    assert!(
        refusal.contains("quotas.events_bytes") && refusal.contains("agentos.events_clear"),
        "{refusal}"
    );

    let (kept, refusal) = fill(
        &server,
        &hoarder,
        "agentos.queue_push",
        20,
        |n| json!({"queue": format!("spray/{n}"), "item": big}),
    )
    .await;
    assert_eq!(kept, 3, "queues are counted over all queues together");
    assert!(
        refusal.contains("quotas.queue_bytes") && refusal.contains("agentos.queue_ack"),
        "{refusal}"
    );

    let (kept, refusal) = fill(
        &server,
        &hoarder,
        "agentos.knowledge_add",
        20,
        |n| json!({"id": format!("doc{n}"), "text": big}),
    )
    .await;
    assert_eq!(kept, 3);
    assert!(refusal.contains("quotas.knowledge_bytes"), "{refusal}");

    let (kept, refusal) = fill(
        &server,
        &hoarder,
        "agentos.secret_set",
        20,
        |n| json!({"name": format!("S{n}"), "value": "s".repeat(400)}),
    )
    .await;
    assert!((3..=4).contains(&kept), "sealed 400-byte values in 2000 bytes: {kept}");
    assert!(refusal.contains("quotas.secrets_bytes"), "{refusal}");

    // The agent sees where it stands, with the limits and what to delete.
    let status = call(&server, &hoarder, "agentos.quota_status", json!({}))
        .await
        .unwrap();
    assert_eq!(status["agentId"], "hoarder");
    for name in ["memory", "events", "queue", "knowledge"] {
        let used = family(&status, name);
        assert_eq!(used["items"], 3, "{name}: {used}");
        let bytes = used["bytes"].as_u64().unwrap();
        assert!((3 * VALUE_BYTES as u64..=200_000).contains(&bytes), "{name}: {used}");
        assert_eq!(used["maxBytes"], 200_000, "{name}: {used}");
        assert!(used["percentUsed"].as_f64().unwrap() >= 75.0, "{name}: {used}");
    }
    assert_eq!(family(&status, "memory")["settings"][1], "quotas.memory_bytes");
    assert_eq!(family(&status, "files")["maxBytes"], 100 * 1024 * 1024);

    // Deleting makes room at once.
    call(&server, &hoarder, "agentos.mem_delete", json!({"key": "k0"}))
        .await
        .unwrap();
    call(
        &server,
        &hoarder,
        "agentos.mem_set",
        json!({"key": "again", "value": big}),
    )
    .await
    .unwrap();
    let cleared = call(&server, &hoarder, "agentos.events_clear", json!({"topic": "spray/0"}))
        .await
        .unwrap();
    assert_eq!(cleared["deleted"], 1, "{cleared}");
    call(
        &server,
        &hoarder,
        "agentos.events_publish",
        json!({"topic": "spray/0", "payload": big}),
    )
    .await
    .unwrap();

    // The neighbour's room is its own, and only ops-admins look at another agent's usage.
    call(
        &server,
        &neighbour,
        "agentos.mem_set",
        json!({"key": "k", "value": big}),
    )
    .await
    .unwrap();
    let snooping = call(
        &server,
        &neighbour,
        "agentos.quota_status",
        json!({"agentId": "hoarder"}),
    )
    .await;
    assert!(snooping.unwrap_err().contains("only ops-admins"));
    let seen = call(
        &server,
        server.token(),
        "agentos.quota_status",
        json!({"agentId": "hoarder"}),
    )
    .await
    .unwrap();
    assert_eq!(family(&seen, "memory")["items"], 3, "{seen}");
}

#[tokio::test]
async fn quotas_must_be_positive() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(&config, "[quotas]\nmemory_bytes = 0\n").unwrap();
    let refusal = common::refused_start(
        &["serve", "--config", config.to_str().unwrap()],
        &dir.path().join("data"),
    );
    assert!(refusal.contains("quotas.memory_bytes"), "{refusal}");
}

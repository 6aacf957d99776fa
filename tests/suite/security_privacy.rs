//! What one agent can learn about another through numbers it is shown, against the real
//! `agentos serve` with two registered agents.
//!
//! Attacks tried, and the outcome each must have:
//! - agent A searches memory and knowledge for "nightingale"; agent B then stores many entries
//!   and documents full of "nightingale"; A searches again → A's results, scores included, are
//!   bit-for-bit the same (BM25 over one shared index used to move: 2.89 against 3.50)
//! - A pushes a queue item, B pushes 50, A pushes again → A's ids are 1 and 2, nothing in them
//!   counts B's pushes; the same for event cursors on a topic both name alike, and a poll
//!   waiting after A's cursor wakes for A's next event, never B's
//! - A presents B's receipt (and B's item id with A's own token) on a queue of the same name →
//!   acked=false, and B's item is still B's to acknowledge

use crate::common::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A secure server without rate limits (B writes in bulk) and the tokens of agents A and B.
async fn start(dir: &std::path::Path) -> (Server, String, String) {
    let server = Server::start_secure_configured(dir, "[rate_limits]\nenabled = false\n");
    let mut tokens = Vec::new();
    for agent in ["agent-a", "agent-b"] {
        let registered = server.register_agent(agent, &["agentos.*"]).await;
        tokens.push(registered["token"].as_str().expect("a token").to_owned());
    }
    let b = tokens.pop().expect("B's token");
    let a = tokens.pop().expect("A's token");
    (server, a, b)
}

/// Calls `tool` in the plain form as `token`; returns its result, failing the test otherwise.
async fn call(server: &Server, token: &str, tool: &str, input: Value) -> Value {
    let (status, _, body) = server.plain(token, tool, input).await;
    assert_eq!(
        (status, &body["success"]),
        (StatusCode::OK, &json!(true)),
        "{tool}: {body}"
    );
    body["result"].clone()
}

fn number(value: &Value) -> u64 {
    value
        .as_str()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("a number in a string: {value}"))
}

#[tokio::test]
async fn search_scores_depend_only_on_the_callers_own_data() {
    let dir = tempfile::tempdir().unwrap();
    let (server, a, b) = start(dir.path()).await;
    for (key, value) in [("bird", "a nightingale sang at dusk"), ("cat", "the cat slept")] {
        call(&server, &a, "agentos.mem_set", json!({"key": key, "value": value})).await;
    }
    let text = "Notes on birds.\n\nThe nightingale sings at night; the lark at dawn.";
    call(
        &server,
        &a,
        "agentos.knowledge_add",
        json!({"id": "birds", "text": text}),
    )
    .await;
    let query = json!({"query": "nightingale"});
    let memory_before = call(&server, &a, "agentos.mem_search", query.clone()).await;
    let knowledge_before = call(&server, &a, "agentos.knowledge_search", query.clone()).await;
    assert_eq!(memory_before["results"][0]["key"], "bird", "{memory_before}");
    assert_eq!(knowledge_before["results"][0]["id"], "birds", "{knowledge_before}");
    assert!(memory_before["results"][0]["score"].as_f64().unwrap() > 0.0);

    // B fills its own memory and knowledge with the word, in texts of other lengths.
    for i in 0..40 {
        let value = format!("nightingale {i}: {}", "nightingale song ".repeat(i % 5 + 1));
        call(
            &server,
            &b,
            "agentos.mem_set",
            json!({"key": format!("n{i}"), "value": value}),
        )
        .await;
    }
    for i in 0..20 {
        let text = format!(
            "The nightingale, document {i}. {}",
            "More about nightingales. ".repeat(i + 1)
        );
        call(
            &server,
            &b,
            "agentos.knowledge_add",
            json!({"id": format!("d{i}"), "text": text}),
        )
        .await;
    }
    let memory_after = call(&server, &a, "agentos.mem_search", query.clone()).await;
    let knowledge_after = call(&server, &a, "agentos.knowledge_search", query.clone()).await;
    assert_eq!(memory_after, memory_before, "B's entries moved A's memory scores");
    assert_eq!(
        knowledge_after, knowledge_before,
        "B's documents moved A's knowledge scores"
    );

    // B searches its own data only, and A's entries change nothing for B either.
    let theirs = call(
        &server,
        &b,
        "agentos.mem_search",
        json!({"query": "nightingale", "limit": 100}),
    )
    .await;
    assert_eq!(theirs["results"].as_array().unwrap().len(), 40);
    assert!(theirs["results"].as_array().unwrap().iter().all(|r| r["key"] != "bird"));
}

#[tokio::test]
async fn queue_ids_and_event_cursors_count_only_the_callers_own_activity() {
    let dir = tempfile::tempdir().unwrap();
    let (server, a, b) = start(dir.path()).await;
    let push = |token: &str, item: Value| {
        let input = json!({"queue": "work", "item": item});
        let (server, token) = (&server, token.to_owned());
        async move { number(&call(server, &token, "agentos.queue_push", input).await["id"]) }
    };
    let publish = |token: &str, payload: Value| {
        let input = json!({"topic": "news", "payload": payload});
        let (server, token) = (&server, token.to_owned());
        async move { number(&call(server, &token, "agentos.events_publish", input).await["cursor"]) }
    };

    let first = push(&a, json!("a1")).await;
    let cursor = publish(&a, json!("a1")).await;
    for i in 0..50 {
        push(&b, json!(i)).await;
        publish(&b, json!(i)).await;
    }
    let second = push(&a, json!("a2")).await;
    let next = publish(&a, json!("a2")).await;
    assert_eq!((first, second), (1, 2), "A's ids count A's pushes only");
    assert_eq!((cursor, next), (1, 2), "A's cursors count A's events only");
    // B's own numbering is just as private: 50 pushes are ids 1 to 50, whatever A did.
    assert_eq!(push(&b, json!("last")).await, 51);

    // Ordering and resuming still work with the new numbers.
    let popped = call(&server, &a, "agentos.queue_pop", json!({"queue": "work", "max": 10})).await;
    let items: Vec<_> = popped["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].clone(), i["item"].clone()))
        .collect();
    assert_eq!(items, [(json!("1"), json!("a1")), (json!("2"), json!("a2"))]);
    let page = call(
        &server,
        &a,
        "agentos.events_poll",
        json!({"topic": "news", "after": cursor.to_string()}),
    )
    .await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(
        (&page["events"][0]["payload"], &page["nextCursor"]),
        (&json!("a2"), &json!("2"))
    );

    // A poll waiting after A's cursor sees A's next event, and never one of B's.
    let waiting = call(
        &server,
        &a,
        "agentos.events_poll",
        json!({"topic": "news", "after": "2", "waitMs": 10_000}),
    );
    let publishing = async {
        publish(&b, json!("b-late")).await;
        publish(&a, json!("a3")).await
    };
    let (page, third) = tokio::join!(waiting, publishing);
    assert_eq!(third, 3);
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
    assert_eq!(
        (&page["events"][0]["cursor"], &page["events"][0]["payload"]),
        (&json!("3"), &json!("a3"))
    );
}

#[tokio::test]
async fn an_agent_cannot_touch_another_agents_queue_items_by_id_or_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let (server, a, b) = start(dir.path()).await;
    let pushed = call(
        &server,
        &b,
        "agentos.queue_push",
        json!({"queue": "jobs", "item": "b's job"}),
    )
    .await;
    let popped = call(&server, &b, "agentos.queue_pop", json!({"queue": "jobs"})).await;
    let receipt = popped["items"][0]["receipt"].as_str().unwrap().to_owned();
    assert_eq!(popped["items"][0]["id"], pushed["id"]);

    // A holds its own item with the same id number on a queue of the same name.
    let own = call(
        &server,
        &a,
        "agentos.queue_push",
        json!({"queue": "jobs", "item": "a's job"}),
    )
    .await;
    assert_eq!(own["id"], pushed["id"], "ids are per agent, so they coincide");
    let mine = call(&server, &a, "agentos.queue_pop", json!({"queue": "jobs"})).await;
    assert_eq!(
        mine["items"].as_array().unwrap().len(),
        1,
        "A sees only its own item: {mine}"
    );
    assert_eq!(mine["items"][0]["item"], "a's job");

    let (_, token) = receipt.split_once('.').unwrap();
    let mine_receipt = mine["items"][0]["receipt"].as_str().unwrap();
    let (my_id, _) = mine_receipt.split_once('.').unwrap();
    for forged in [receipt.clone(), format!("{my_id}.{token}")] {
        let acked = call(
            &server,
            &a,
            "agentos.queue_ack",
            json!({"queue": "jobs", "receipt": forged}),
        )
        .await;
        assert_eq!(acked["acked"], false, "A acked with {forged}");
    }
    let acked = call(
        &server,
        &b,
        "agentos.queue_ack",
        json!({"queue": "jobs", "receipt": receipt}),
    )
    .await;
    assert_eq!(acked["acked"], true, "B's item was untouched and B can finish it");
    let acked = call(
        &server,
        &a,
        "agentos.queue_ack",
        json!({"queue": "jobs", "receipt": mine_receipt}),
    )
    .await;
    assert_eq!(acked["acked"], true);
}

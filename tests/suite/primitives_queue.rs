//! `agentos.queue_*` through MCP against the real binary: push/pop/ack, redelivery after the
//! visibility timeout, stale receipts, concurrent pops from two processes, limits, isolation.

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::{Client, Server, call, structured, text_of};
use serde_json::{Value, json};

async fn push(client: &Client, queue: &str, item: Value) -> String {
    let body = structured(&call(client, "agentos.queue_push", json!({"queue": queue, "item": item})).await);
    assert_eq!(body["queue"], queue);
    assert!(body["enqueuedAtMs"].as_i64().is_some(), "{body}");
    body["id"].as_str().expect("id is a string").to_owned()
}

async fn pop(client: &Client, arguments: Value) -> Vec<Value> {
    let body = structured(&call(client, "agentos.queue_pop", arguments).await);
    body["items"].as_array().expect("items").clone()
}

async fn ack(client: &Client, queue: &str, receipt: &Value) -> bool {
    let body = structured(&call(client, "agentos.queue_ack", json!({"queue": queue, "receipt": receipt})).await);
    body["acked"].as_bool().expect("acked")
}

/// Pops until something comes out (at most 10 s): for items whose lease or delay must run out.
async fn pop_when_ready(client: &Client, arguments: Value) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let items = pop(client, arguments.clone()).await;
        if !items.is_empty() {
            return items;
        }
        assert!(Instant::now() < deadline, "nothing became ready: {arguments}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn failure(client: &Client, tool: &str, arguments: Value) -> String {
    let result = call(client, tool, arguments.clone()).await;
    assert_eq!(
        result.is_error,
        Some(true),
        "{tool} {arguments} should fail: {}",
        text_of(&result)
    );
    text_of(&result)
}

#[tokio::test]
async fn items_are_pushed_popped_in_order_and_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let ids = [
        push(&client, "work", json!({"n": 0})).await,
        push(&client, "work", json!({"n": 1})).await,
        push(&client, "work", common::json_value()).await,
    ];
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3, "{ids:?}");

    let before = chrono::Utc::now().timestamp_millis();
    let first = pop(&client, json!({"queue": "work", "max": 2})).await;
    assert_eq!(first.len(), 2);
    for (n, popped) in first.iter().enumerate() {
        assert_eq!(popped["id"], ids[n]);
        assert_eq!(popped["item"], json!({"n": n}));
        assert_eq!(popped["attempts"], 1);
        assert!(popped["enqueuedAtMs"].as_i64().unwrap() <= before);
        let expires = popped["leaseExpiresAtMs"].as_i64().unwrap();
        assert!(
            (before + 29_000..before + 40_000).contains(&expires),
            "30 s lease: {expires}"
        );
    }
    assert_ne!(first[0]["receipt"], first[1]["receipt"]);
    let third = pop(&client, json!({"queue": "work"})).await;
    assert_eq!(third.len(), 1, "one item by default");
    assert_eq!(third[0]["item"], common::json_value(), "any JSON round-trips");
    assert_eq!(
        pop(&client, json!({"queue": "work", "max": 10})).await,
        Vec::<Value>::new(),
        "leased items are hidden"
    );

    for popped in first.iter().chain(&third) {
        assert!(ack(&client, "work", &popped["receipt"]).await);
    }
    assert!(
        !ack(&client, "work", &first[0]["receipt"]).await,
        "a receipt works once"
    );
    assert_eq!(pop(&client, json!({"queue": "other"})).await, Vec::<Value>::new());
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_unacknowledged_item_comes_back_and_its_old_receipt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let id = push(&client, "retry", json!("flaky job")).await;
    let first = pop(&client, json!({"queue": "retry", "visibilitySeconds": 1})).await;
    assert_eq!((&first[0]["id"], first[0]["attempts"].as_i64()), (&json!(id), Some(1)));

    let again = pop_when_ready(&client, json!({"queue": "retry", "visibilitySeconds": 30, "max": 5})).await;
    assert_eq!(again.len(), 1);
    assert_eq!((&again[0]["id"], &again[0]["item"]), (&json!(id), &json!("flaky job")));
    assert_eq!(again[0]["attempts"], 2);
    assert_ne!(again[0]["receipt"], first[0]["receipt"], "a new receipt per delivery");

    assert!(
        !ack(&client, "retry", &first[0]["receipt"]).await,
        "the stale receipt cannot ack the new lease"
    );
    assert_eq!(
        pop(&client, json!({"queue": "retry"})).await,
        Vec::<Value>::new(),
        "still leased"
    );
    assert!(ack(&client, "retry", &again[0]["receipt"]).await);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn an_acknowledged_item_is_not_delivered_again() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    push(&client, "q", json!("done")).await;
    let kept = push(&client, "q", json!("dropped")).await;
    let done = pop(&client, json!({"queue": "q", "visibilitySeconds": 1})).await;
    assert_eq!(done[0]["item"], "done");
    assert!(ack(&client, "q", &done[0]["receipt"]).await);
    let dropped = pop(&client, json!({"queue": "q", "visibilitySeconds": 1})).await;
    assert_eq!(dropped[0]["item"], "dropped");

    // The acknowledged item's lease ran out first; only the other one comes back.
    let back = pop_when_ready(&client, json!({"queue": "q", "max": 10})).await;
    assert_eq!(back.len(), 1, "{back:?}");
    assert_eq!((&back[0]["id"], &back[0]["attempts"]), (&json!(kept), &json!(2)));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_delayed_item_waits_before_it_can_be_popped() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let pushed = Instant::now();
    let body = structured(
        &call(
            &client,
            "agentos.queue_push",
            json!({"queue": "later", "item": 1, "delaySeconds": 2}),
        )
        .await,
    );
    assert_eq!(pop(&client, json!({"queue": "later"})).await, Vec::<Value>::new());
    let items = pop_when_ready(&client, json!({"queue": "later"})).await;
    assert!(
        pushed.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        pushed.elapsed()
    );
    assert_eq!((&items[0]["id"], &items[0]["attempts"]), (&body["id"], &json!(1)));
    client.cancel().await.unwrap();
}

/// Ten pops at once over ten items, half through `agentos serve`, half through `agentos mcp`
/// (two processes on one data directory): every item goes to exactly one pop.
#[tokio::test]
async fn concurrent_pops_never_hand_out_the_same_item() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (http, _) = common::http_client(&server.mcp_url()).await;
    let (stdio, _, _) = common::stdio_client(dir.path(), &[]).await;
    let mut pushed = HashSet::new();
    for n in 0..10 {
        pushed.insert(push(&stdio, "jobs", json!(n)).await);
    }
    let pops = (0..10).map(|i| {
        let peer = if i % 2 == 0 {
            http.peer().clone()
        } else {
            stdio.peer().clone()
        };
        tokio::spawn(async move {
            let result = peer
                .call_tool(common::params("agentos.queue_pop", json!({"queue": "jobs"})))
                .await
                .unwrap();
            structured(&result)["items"].as_array().unwrap().clone()
        })
    });
    let mut popped = Vec::new();
    for items in futures::future::join_all(pops).await {
        let items = items.unwrap();
        assert_eq!(items.len(), 1, "ten items for ten pops: {items:?}");
        popped.push(items[0]["id"].as_str().unwrap().to_owned());
    }
    let distinct: HashSet<String> = popped.iter().cloned().collect();
    assert_eq!(distinct.len(), 10, "no item twice: {popped:?}");
    assert_eq!(distinct, pushed);
    assert_eq!(
        pop(&http, json!({"queue": "jobs", "max": 10})).await,
        Vec::<Value>::new()
    );
    http.cancel().await.unwrap();
    stdio.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_input_says_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let text = failure(&client, "agentos.queue_push", json!({"queue": "no spaces", "item": 1})).await;
    assert!(text.contains("`queue`"), "{text}");
    let text = failure(&client, "agentos.queue_push", json!({"queue": "q"})).await;
    assert!(text.contains("`item`") && text.contains("missing"), "{text}");
    let text = failure(
        &client,
        "agentos.queue_push",
        json!({"queue": "q", "item": 1, "delaySeconds": 604_801}),
    )
    .await;
    assert!(text.contains("`delaySeconds`") && text.contains("604800"), "{text}");

    let text = failure(
        &client,
        "agentos.queue_pop",
        json!({"queue": "q", "visibilitySeconds": 0}),
    )
    .await;
    assert!(text.contains("`visibilitySeconds`"), "{text}");
    let text = failure(
        &client,
        "agentos.queue_pop",
        json!({"queue": "q", "visibilitySeconds": 43_201}),
    )
    .await;
    assert!(text.contains("`visibilitySeconds`") && text.contains("43200"), "{text}");
    let text = failure(&client, "agentos.queue_pop", json!({"queue": "q", "max": 101})).await;
    assert!(text.contains("`max`") && text.contains("100"), "{text}");
    let text = failure(&client, "agentos.queue_pop", json!({"queue": "q", "max": 0})).await;
    assert!(text.contains("`max`"), "{text}");

    let text = failure(
        &client,
        "agentos.queue_ack",
        json!({"queue": "q", "receipt": "made-up"}),
    )
    .await;
    assert!(
        text.contains("`receipt`") && text.contains("agentos.queue_pop"),
        "{text}"
    );
    let text = failure(&client, "agentos.queue_ack", json!({"queue": "q"})).await;
    assert!(text.contains("`receipt`"), "{text}");

    assert_eq!(
        pop(&client, json!({"queue": "q", "max": 100})).await,
        Vec::<Value>::new(),
        "nothing was queued"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn configured_limits_apply() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(
        &config,
        "[queue]\nmax_item_bytes = 64\nmax_items_per_queue = 2\nmax_pop = 3\nmax_visibility_seconds = 60\n",
    )
    .unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--config", config.to_str().unwrap()]).await;
    push(&client, "small", json!(1)).await;
    push(&client, "small", json!(2)).await;
    let text = failure(&client, "agentos.queue_push", json!({"queue": "small", "item": 3})).await;
    assert!(text.contains("2 items") && text.contains("agentos.queue_ack"), "{text}");
    push(&client, "another", json!(1)).await;

    let text = failure(
        &client,
        "agentos.queue_push",
        json!({"queue": "another", "item": "x".repeat(100)}),
    )
    .await;
    assert!(text.contains("`item`") && text.contains("64"), "{text}");
    let text = failure(&client, "agentos.queue_pop", json!({"queue": "small", "max": 4})).await;
    assert!(text.contains("between 1 and 3"), "{text}");
    let text = failure(
        &client,
        "agentos.queue_pop",
        json!({"queue": "small", "visibilitySeconds": 61}),
    )
    .await;
    assert!(text.contains("between 1 and 60"), "{text}");

    // A popped item still counts; an acknowledged one frees its place.
    let popped = pop(&client, json!({"queue": "small", "visibilitySeconds": 60})).await;
    failure(&client, "agentos.queue_push", json!({"queue": "small", "item": 3})).await;
    assert!(ack(&client, "small", &popped[0]["receipt"]).await);
    push(&client, "small", json!(3)).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn agents_cannot_reach_each_others_queues() {
    let dir = tempfile::tempdir().unwrap();
    let app = common::in_process_app(dir.path()).await;
    let as_agent = |agent: &'static str, tool: &'static str, input: Value| {
        let app = &app;
        async move { structured(&common::call_as(app, agent, tool, input).await.unwrap()) }
    };
    as_agent(
        "agent-a",
        "agentos.queue_push",
        json!({"queue": "work", "item": "a's job"}),
    )
    .await;
    as_agent(
        "agent-a",
        "agentos.queue_push",
        json!({"queue": "work", "item": "a's other job"}),
    )
    .await;

    let b_pop = as_agent("agent-b", "agentos.queue_pop", json!({"queue": "work", "max": 10})).await;
    assert_eq!(b_pop["items"], json!([]), "B cannot take A's items");

    let a_pop = as_agent("agent-a", "agentos.queue_pop", json!({"queue": "work"})).await;
    let receipt = a_pop["items"][0]["receipt"].clone();
    assert_eq!(a_pop["items"][0]["item"], "a's job");
    let b_ack = as_agent(
        "agent-b",
        "agentos.queue_ack",
        json!({"queue": "work", "receipt": receipt}),
    )
    .await;
    assert_eq!(b_ack["acked"], false, "B cannot acknowledge (delete) A's item");

    as_agent(
        "agent-b",
        "agentos.queue_push",
        json!({"queue": "work", "item": "b's job"}),
    )
    .await;
    let b_pop = as_agent("agent-b", "agentos.queue_pop", json!({"queue": "work", "max": 10})).await;
    let items: Vec<&Value> = b_pop["items"].as_array().unwrap().iter().map(|i| &i["item"]).collect();
    assert_eq!(items, [&json!("b's job")], "B gets only its own item");

    let a_ack = as_agent(
        "agent-a",
        "agentos.queue_ack",
        json!({"queue": "work", "receipt": receipt}),
    )
    .await;
    assert_eq!(a_ack["acked"], true, "A's lease survived B's attempt");
    let a_rest = as_agent("agent-a", "agentos.queue_pop", json!({"queue": "work", "max": 10})).await;
    assert_eq!(a_rest["items"][0]["item"], "a's other job");
    assert_eq!(a_rest["items"].as_array().unwrap().len(), 1);
}

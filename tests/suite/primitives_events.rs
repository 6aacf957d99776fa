//! `agentos.events_*` through MCP against the real binary: publishing, cursor paging, waiting
//! polls woken by other clients and other processes, limits, and isolation between agents.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{Client, Server, call, structured, text_of};
use serde_json::{Value, json};

async fn publish(client: &Client, topic: &str, payload: Value) -> String {
    let body = structured(
        &call(
            client,
            "agentos.events_publish",
            json!({"topic": topic, "payload": payload}),
        )
        .await,
    );
    assert_eq!(body["topic"], topic);
    assert!(body["publishedAtMs"].as_i64().is_some(), "{body}");
    body["cursor"].as_str().expect("cursor is a string").to_owned()
}

async fn poll(client: &Client, arguments: Value) -> Value {
    structured(&call(client, "agentos.events_poll", arguments).await)
}

fn cursors(page: &Value) -> Vec<String> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cursor"].as_str().unwrap().to_owned())
        .collect()
}

/// The text of a call that must fail as a tool result (`isError: true`).
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

fn in_flight(addr: &str) -> u64 {
    common::get_json_blocking(addr, "/health")["inFlight"].as_u64().unwrap()
}

#[tokio::test]
async fn published_events_are_read_back_in_order_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let mut published = Vec::new();
    for n in 0..5 {
        published.push(publish(&client, "jobs/build", json!({"n": n})).await);
    }
    let mut sorted = published.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "every event has its own cursor: {published:?}");

    let first = poll(&client, json!({"topic": "jobs/build", "limit": 2})).await;
    assert_eq!(cursors(&first), published[..2]);
    assert_eq!(first["events"][1]["payload"], json!({"n": 1}));
    assert!(first["events"][0]["publishedAtMs"].as_i64().is_some());
    assert_eq!(
        (&first["hasMore"], &first["nextCursor"]),
        (&json!(true), &json!(published[1]))
    );
    assert_eq!(first["missedEvents"], false);

    let second = poll(
        &client,
        json!({"topic": "jobs/build", "after": first["nextCursor"], "limit": 2}),
    )
    .await;
    assert_eq!(cursors(&second), published[2..4]);
    let last = poll(
        &client,
        json!({"topic": "jobs/build", "after": second["nextCursor"], "limit": 2}),
    )
    .await;
    assert_eq!(cursors(&last), published[4..]);
    assert_eq!(last["hasMore"], false);
    let caught_up = poll(&client, json!({"topic": "jobs/build", "after": last["nextCursor"]})).await;
    assert_eq!(caught_up["events"], json!([]));
    assert_eq!(
        caught_up["nextCursor"],
        json!(published[4]),
        "an empty page keeps the cursor"
    );

    // `from: "end"` skips what is there; the cursor it returns sees only later events.
    let end = poll(&client, json!({"topic": "jobs/build", "from": "end"})).await;
    assert_eq!((&end["events"], &end["nextCursor"]), (&json!([]), &json!(published[4])));
    let value = common::json_value();
    let newest = publish(&client, "jobs/build", value.clone()).await;
    let page = poll(&client, json!({"topic": "jobs/build", "after": end["nextCursor"]})).await;
    assert_eq!(cursors(&page), [newest]);
    assert_eq!(page["events"][0]["payload"], value, "any JSON round-trips");

    let other = poll(&client, json!({"topic": "jobs/test"})).await;
    assert_eq!((&other["events"], &other["nextCursor"]), (&json!([]), &json!("0")));
    client.cancel().await.unwrap();
}

/// One server, two MCP sessions: the poll waits; the publish in the other session wakes it.
#[tokio::test]
async fn a_waiting_poll_returns_as_soon_as_another_client_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (publisher, _) = common::http_client(&server.mcp_url()).await;
    let (subscriber, _) = common::http_client(&server.mcp_url()).await;
    let start = publish(&publisher, "chat", json!("before")).await;

    let peer = subscriber.peer().clone();
    let waiting = tokio::spawn(async move {
        let arguments = json!({"topic": "chat", "after": start, "waitMs": 20000});
        let result = peer.call_tool(common::params("agentos.events_poll", arguments)).await;
        (result, Instant::now())
    });
    let addr = server.addr.clone();
    assert!(
        common::eventually(Duration::from_secs(10), || in_flight(&addr) == 1).await,
        "the poll is waiting"
    );
    let cursor = publish(&publisher, "chat", json!({"text": "hello"})).await;
    let published = Instant::now();
    let (result, returned) = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .unwrap()
        .unwrap();
    let page = structured(&result.unwrap());
    assert_eq!(cursors(&page), [cursor.as_str()]);
    assert_eq!(page["events"][0]["payload"], json!({"text": "hello"}));
    assert_eq!(page["nextCursor"], json!(cursor));
    assert!(
        returned.saturating_duration_since(published) < Duration::from_secs(5),
        "woken by the publish, not by the end of the 20 s wait"
    );
    publisher.cancel().await.unwrap();
    subscriber.cancel().await.unwrap();
}

/// `agentos serve` waits; `agentos mcp`, another process on the same data directory, publishes.
#[tokio::test]
async fn a_waiting_poll_sees_events_published_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (subscriber, _) = common::http_client(&server.mcp_url()).await;
    let (publisher, _, _) = common::stdio_client(dir.path(), &[]).await;

    let peer = subscriber.peer().clone();
    let waiting = tokio::spawn(async move {
        // From the (empty) topic's start, not `from: "end"`: under load the publish below can
        // land before the poll has read where the end is, and the event would be skipped.
        let arguments = json!({"topic": "deploys", "after": "0", "waitMs": 20000});
        let result = peer.call_tool(common::params("agentos.events_poll", arguments)).await;
        (result, Instant::now())
    });
    let addr = server.addr.clone();
    assert!(common::eventually(Duration::from_secs(10), || in_flight(&addr) == 1).await);
    let cursor = publish(&publisher, "deploys", json!("v2 is live")).await;
    let published = Instant::now();
    let (result, returned) = tokio::time::timeout(Duration::from_secs(15), waiting)
        .await
        .unwrap()
        .unwrap();
    let page = structured(&result.unwrap());
    assert_eq!(cursors(&page), [cursor]);
    assert!(
        returned.saturating_duration_since(published) < Duration::from_secs(5),
        "seen by the periodic re-check, long before the wait ends"
    );
    publisher.cancel().await.unwrap();
    subscriber.cancel().await.unwrap();
}

#[tokio::test]
async fn a_wait_with_no_news_ends_empty_and_a_cancelled_wait_stops() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;

    let started = Instant::now();
    let page = poll(&client, json!({"topic": "quiet", "waitMs": 700})).await;
    let waited = started.elapsed();
    assert_eq!((&page["events"], &page["nextCursor"]), (&json!([]), &json!("0")));
    assert!(waited >= Duration::from_millis(650), "waited the full time: {waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");

    let peer = client.peer().clone();
    let waiting = tokio::spawn(async move {
        let arguments = json!({"topic": "quiet", "waitMs": 30000});
        peer.call_tool(common::params("agentos.events_poll", arguments)).await
    });
    let addr = server.addr.clone();
    assert!(common::eventually(Duration::from_secs(10), || in_flight(&addr) == 1).await);
    waiting.abort();
    assert!(
        common::eventually(Duration::from_secs(5), || in_flight(&addr) == 0).await,
        "the server stopped waiting when the client cancelled"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_input_says_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let publish_tool = "agentos.events_publish";
    let poll_tool = "agentos.events_poll";

    let text = failure(&client, publish_tool, json!({"topic": "has space", "payload": 1})).await;
    assert!(text.contains("`topic`"), "{text}");
    let text = failure(&client, publish_tool, json!({"topic": "x".repeat(201), "payload": 1})).await;
    assert!(text.contains("`topic`"), "{text}");
    let text = failure(&client, publish_tool, json!({"topic": "t"})).await;
    assert!(text.contains("`payload`") && text.contains("missing"), "{text}");

    let text = failure(&client, poll_tool, json!({"topic": "t", "after": "not-a-cursor"})).await;
    assert!(text.contains("`after`") && text.contains("nextCursor"), "{text}");
    let text = failure(&client, poll_tool, json!({"topic": "t", "after": "-3"})).await;
    assert!(text.contains("`after`"), "{text}");
    let text = failure(&client, poll_tool, json!({"topic": "t", "after": "0", "from": "end"})).await;
    assert!(text.contains("either"), "{text}");
    let text = failure(&client, poll_tool, json!({"topic": "t", "from": "middle"})).await;
    assert!(text.contains("`from`"), "{text}");
    let text = failure(&client, poll_tool, json!({"topic": "t", "limit": 0})).await;
    assert!(text.contains("`limit`"), "{text}");
    let text = failure(&client, poll_tool, json!({"topic": "t", "limit": 1001})).await;
    assert!(text.contains("`limit`") && text.contains("1000"), "{text}");
    let text = failure(&client, poll_tool, json!({"topic": "t", "waitMs": 30001})).await;
    assert!(text.contains("`waitMs`") && text.contains("30000"), "{text}");
    let text = failure(&client, poll_tool, json!({"topic": "t", "waitMs": -1})).await;
    assert!(text.contains("`waitMs`"), "{text}");

    // Nothing above was stored.
    let page = poll(&client, json!({"topic": "t"})).await;
    assert_eq!(page["events"], json!([]));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn configured_limits_apply() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(
        &config,
        "[events]\nmax_events_per_topic = 3\nmax_payload_bytes = 64\nmax_wait_ms = 1000\nmax_page = 2\n",
    )
    .unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--config", config.to_str().unwrap()]).await;
    let mut published = Vec::new();
    for n in 0..5 {
        published.push(publish(&client, "t", json!(n)).await);
    }
    let first = poll(&client, json!({"topic": "t"})).await;
    assert_eq!(
        cursors(&first),
        published[2..4],
        "the oldest two were dropped; pages of 2"
    );
    assert_eq!(first["hasMore"], true);
    let rest = poll(&client, json!({"topic": "t", "after": first["nextCursor"]})).await;
    assert_eq!(cursors(&rest), published[4..]);

    let behind = poll(&client, json!({"topic": "t", "after": published[0]})).await;
    assert_eq!(
        behind["missedEvents"], true,
        "event 1 was dropped before this reader saw it"
    );
    assert_eq!(cursors(&behind), published[2..4]);
    let current = poll(&client, json!({"topic": "t", "after": published[1]})).await;
    assert_eq!(current["missedEvents"], false, "nothing after this cursor was dropped");

    let text = failure(
        &client,
        "agentos.events_publish",
        json!({"topic": "t", "payload": "x".repeat(100)}),
    )
    .await;
    assert!(text.contains("`payload`") && text.contains("64"), "{text}");
    let text = failure(&client, "agentos.events_poll", json!({"topic": "t", "limit": 3})).await;
    assert!(text.contains("between 1 and 2"), "{text}");
    let text = failure(&client, "agentos.events_poll", json!({"topic": "t", "waitMs": 1001})).await;
    assert!(text.contains("1000"), "{text}");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn agents_cannot_see_each_others_topics() {
    let dir = tempfile::tempdir().unwrap();
    let app = common::in_process_app(dir.path()).await;
    let as_agent = |agent: &'static str, tool: &'static str, input: Value| {
        let app = &app;
        async move { structured(&common::call_as(app, agent, tool, input).await.unwrap()) }
    };
    let a_cursor = as_agent(
        "agent-a",
        "agentos.events_publish",
        json!({"topic": "shared", "payload": "a secret"}),
    )
    .await["cursor"]
        .clone();

    let b_view = as_agent("agent-b", "agentos.events_poll", json!({"topic": "shared"})).await;
    assert_eq!((&b_view["events"], &b_view["nextCursor"]), (&json!([]), &json!("0")));
    let b_end = as_agent(
        "agent-b",
        "agentos.events_poll",
        json!({"topic": "shared", "from": "end"}),
    )
    .await;
    assert_eq!(b_end["nextCursor"], "0", "A's position in the topic does not leak");

    // B's wait is not ended by A's publish to the same topic name.
    let b_waits = as_agent(
        "agent-b",
        "agentos.events_poll",
        json!({"topic": "shared", "waitMs": 400}),
    );
    let a_publishes = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        as_agent(
            "agent-a",
            "agentos.events_publish",
            json!({"topic": "shared", "payload": 2}),
        )
        .await
    };
    let (b_waited, _) = tokio::join!(b_waits, a_publishes);
    assert_eq!(b_waited["events"], json!([]));

    let b_cursor = as_agent(
        "agent-b",
        "agentos.events_publish",
        json!({"topic": "shared", "payload": "b's"}),
    )
    .await["cursor"]
        .clone();
    let a_view = as_agent("agent-a", "agentos.events_poll", json!({"topic": "shared"})).await;
    let payloads: Vec<&Value> = a_view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["payload"])
        .collect();
    assert_eq!(payloads, [&json!("a secret"), &json!(2)], "A sees only its own events");
    assert_eq!(a_view["events"][0]["cursor"], a_cursor);
    let b_view = as_agent(
        "agent-b",
        "agentos.events_poll",
        json!({"topic": "shared", "after": "0"}),
    )
    .await;
    assert_eq!(cursors(&b_view), [b_cursor.as_str().unwrap()]);
}

//! Schedules through MCP against the real binary: firing on time, one-shots, restarts, the
//! missed-fire rule, clear refusals, the creator's permissions, and isolation between agents.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Client, Server, call, structured, text_of};
use serde_json::{Value, json};

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn runs_of(client: &Client, id: &str) -> Vec<Value> {
    let result = structured(&call(client, "agentos.schedule_runs", json!({"id": id, "limit": 100})).await);
    result["runs"].as_array().cloned().unwrap_or_default()
}

/// Polls the schedule's runs (newest first) until `done` holds; fails with what it saw.
async fn runs_until(client: &Client, id: &str, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let runs = runs_of(client, id).await;
        if done(&runs) {
            return runs;
        }
        assert!(Instant::now() < deadline, "gave up waiting; runs so far: {runs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ms(value: &Value) -> i64 {
    value.as_i64().unwrap_or_else(|| panic!("not a number of ms: {value}"))
}

async fn create(client: &Client, input: Value) -> Value {
    structured(&call(client, "agentos.schedule_create", input).await)
}

#[tokio::test]
async fn an_interval_fires_on_time_and_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let before = now_ms();
    let created = create(
        &client,
        json!({"name": "ticker", "tool": "agentos.mem_set", "input": {"key": "tick", "value": 1}, "everySeconds": 1}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let first_due = ms(&created["nextRunAtMs"]);
    assert!(
        (before + 1000..=now_ms() + 1000).contains(&first_due),
        "first run one interval from now: {created}"
    );
    assert_eq!(
        (created["kind"].as_str(), created["spec"].as_str()),
        (Some("every"), Some("1"))
    );

    let runs = runs_until(&client, &id, Duration::from_secs(10), |runs| runs.len() >= 2).await;
    let (second, first) = (&runs[runs.len() - 2], &runs[runs.len() - 1]);
    assert_eq!(ms(&first["scheduledAtMs"]), first_due, "{first}");
    let gap = ms(&second["scheduledAtMs"]) - ms(&first["scheduledAtMs"]);
    // 1000 normally; a multiple of it if a stalled machine made the scheduler coalesce.
    assert!(gap >= 1000 && gap % 1000 == 0, "an interval keeps its phase: {runs:#?}");
    for run in [first, second] {
        assert_eq!(run["outcome"], "ok", "{run}");
        assert_eq!(run["result"]["key"], "tick", "the tool's result is kept: {run}");
        let late = ms(&run["startedAtMs"]) - ms(&run["scheduledAtMs"]);
        assert!(
            (0..2000).contains(&late),
            "fired on time (never early), {late} ms late: {run}"
        );
        assert!(ms(&run["finishedAtMs"]) >= ms(&run["startedAtMs"]));
    }
    let value = structured(&call(&client, "agentos.mem_get", json!({"key": "tick"})).await);
    assert_eq!(value["found"], true, "the scheduled call really ran");
    let listed = structured(&call(&client, "agentos.schedule_list", json!({})).await);
    let listed = &listed["schedules"][0];
    assert_eq!(
        (&listed["id"], &listed["name"], &listed["enabled"]),
        (&json!(id), &json!("ticker"), &json!(true))
    );
    assert!(
        listed["runs"].as_u64().unwrap() >= 2 && listed["lastOutcome"] == "ok",
        "{listed}"
    );

    // A crash, then a restart on the same data directory: the schedule goes on.
    server.kill();
    let restarted = now_ms();
    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let runs = runs_until(&client, &id, Duration::from_secs(10), |runs| {
        runs.iter().filter(|r| ms(&r["startedAtMs"]) >= restarted).count() >= 1
    })
    .await;
    let new: Vec<_> = runs.iter().filter(|r| ms(&r["startedAtMs"]) >= restarted).collect();
    assert!(new.iter().all(|r| r["outcome"] == "ok"), "{new:#?}");
    client.cancel().await.unwrap();
}

/// `agentos serve` and `agentos mcp` on one data directory both run a scheduler; each
/// occurrence still fires exactly once.
#[tokio::test]
async fn two_processes_on_one_data_directory_fire_each_occurrence_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (http, _) = common::http_client(&server.mcp_url()).await;
    let (stdio, _, _) = common::stdio_client(dir.path(), &[]).await;
    let created = create(&http, json!({"tool": "agentos.time_now", "everySeconds": 1})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let runs = runs_until(&stdio, &id, Duration::from_secs(10), |runs| runs.len() >= 3).await;
    let mut occurrences: Vec<i64> = runs.iter().map(|r| ms(&r["scheduledAtMs"])).collect();
    occurrences.sort();
    occurrences.dedup();
    assert_eq!(occurrences.len(), runs.len(), "no occurrence fired twice: {runs:#?}");
    stdio.cancel().await.unwrap();
    http.cancel().await.unwrap();
}

#[tokio::test]
async fn missed_occurrences_fire_once_after_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let every = create(&client, json!({"tool": "agentos.time_now", "everySeconds": 1})).await;
    let every = every["id"].as_str().unwrap().to_owned();
    let at_ms = now_ms() + 2500;
    let at_text = chrono::DateTime::from_timestamp_millis(at_ms).unwrap().to_rfc3339();
    let once = create(&client, json!({"tool": "agentos.time_now", "at": at_text})).await;
    let once = once["id"].as_str().unwrap().to_owned();
    server.kill();
    let killed = now_ms();

    // Down for 3 s: two or three occurrences of the interval, and the one-shot, are missed.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let restarted = now_ms();
    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let after_restart = |runs: &[Value]| -> Vec<Value> {
        runs.iter()
            .filter(|r| ms(&r["startedAtMs"]) >= restarted)
            .cloned()
            .collect()
    };
    let runs = runs_until(&client, &every, Duration::from_secs(10), |runs| {
        !after_restart(runs).is_empty()
    })
    .await;
    let seen = Instant::now();
    let new = after_restart(&runs);
    let coalesced = new.last().unwrap();
    assert!(
        coalesced["missed"].as_u64().unwrap() >= 2,
        "the first run after the gap reports the occurrences it coalesced: {coalesced}"
    );
    assert!(
        ms(&coalesced["scheduledAtMs"]) < restarted,
        "it stands for an occurrence that was due during the downtime: {coalesced}"
    );
    assert_eq!(coalesced["outcome"], "ok", "{coalesced}");
    // No replay of the missed occurrences: one run for the gap, then the normal pace.
    let runs = runs_of(&client, &every).await;
    let new = after_restart(&runs);
    let allowed = 2 + seen.elapsed().as_secs() as usize;
    assert!(new.len() <= allowed, "no burst of catch-up runs: {new:#?}");
    assert_eq!(
        new.iter().filter(|r| r["missed"].as_u64().unwrap() >= 2).count(),
        1,
        "exactly one coalesced run for the gap: {new:#?}"
    );

    // The one-shot that came due while agentos was down fired once at start-up, and only once.
    let once_runs = runs_until(&client, &once, Duration::from_secs(10), |runs| !runs.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let once_runs_later = runs_of(&client, &once).await;
    assert_eq!(once_runs_later.len(), 1, "a one-shot fires once: {once_runs_later:#?}");
    if killed < at_ms {
        assert!(ms(&once_runs[0]["startedAtMs"]) >= restarted, "{once_runs:#?}");
        assert_eq!(ms(&once_runs[0]["scheduledAtMs"]), at_ms);
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_one_shot_fires_once_and_is_then_finished() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let at_ms = now_ms() + 1000;
    let at_text = chrono::DateTime::from_timestamp_millis(at_ms).unwrap().to_rfc3339();
    let created = create(
        &client,
        json!({"tool": "agentos.mem_set", "input": {"key": "once", "value": "done"}, "at": at_text}),
    )
    .await;
    assert_eq!(ms(&created["nextRunAtMs"]), at_ms);
    let id = created["id"].as_str().unwrap().to_owned();
    let runs = runs_until(&client, &id, Duration::from_secs(10), |runs| !runs.is_empty()).await;
    assert!(ms(&runs[0]["startedAtMs"]) >= at_ms, "not early: {runs:#?}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(runs_of(&client, &id).await.len(), 1, "fired exactly once");
    let listed = structured(&call(&client, "agentos.schedule_list", json!({})).await);
    let listed = &listed["schedules"][0];
    assert_eq!(listed["enabled"], false, "{listed}");
    assert_eq!(listed["nextRunAtMs"], Value::Null, "{listed}");
    assert_eq!(listed["runs"], 1, "{listed}");
    let value = structured(&call(&client, "agentos.mem_get", json!({"key": "once"})).await);
    assert_eq!(value["value"], "done");
    // Cancelling removes it and its history.
    let cancelled = structured(&call(&client, "agentos.schedule_cancel", json!({"id": id})).await);
    assert_eq!(cancelled["cancelled"], true);
    let again = structured(&call(&client, "agentos.schedule_cancel", json!({"id": id})).await);
    assert_eq!(again["cancelled"], false);
    let gone = call(&client, "agentos.schedule_runs", json!({"id": id})).await;
    assert_eq!(gone.is_error, Some(true));
    assert!(text_of(&gone).contains("schedule_list"), "{}", text_of(&gone));
    client.cancel().await.unwrap();
}

async fn refused(client: &Client, input: Value) -> String {
    let result = call(client, "agentos.schedule_create", input.clone()).await;
    assert_eq!(
        result.is_error,
        Some(true),
        "{input} should be refused: {}",
        text_of(&result)
    );
    text_of(&result)
}

#[tokio::test]
async fn bad_schedules_are_refused_with_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(
        &config,
        "[schedule]\nmin_interval_seconds = 5\nmax_schedules_per_agent = 2\n",
    )
    .unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--config", config.to_str().unwrap()]).await;
    let time_now = |extra: Value| {
        let mut input = json!({"tool": "agentos.time_now"});
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        input
    };
    let error = refused(&client, time_now(json!({"cron": "* * *"}))).await;
    assert!(error.contains("exactly 5 fields") && error.contains("has 3"), "{error}");
    let error = refused(&client, time_now(json!({"cron": "61 * * * *"}))).await;
    assert!(
        error.contains("`61 * * * *` is invalid") && error.contains("minute (0-59)"),
        "{error}"
    );
    let error = refused(&client, time_now(json!({"cron": "0 0 30 2 *"}))).await;
    assert!(error.contains("never matches"), "{error}");
    let error = refused(&client, time_now(json!({"cron": "* * * * *", "everySeconds": 60}))).await;
    assert!(error.contains("exactly one of"), "{error}");
    let error = refused(&client, time_now(json!({}))).await;
    assert!(error.contains("exactly one of"), "{error}");
    let error = refused(&client, time_now(json!({"at": "next tuesday"}))).await;
    assert!(error.contains("RFC 3339"), "{error}");
    let error = refused(&client, time_now(json!({"at": "2001-01-01T00:00:00Z"}))).await;
    assert!(error.contains("in the past"), "{error}");
    let error = refused(&client, time_now(json!({"everySeconds": 2}))).await;
    assert!(error.contains("between 5"), "the configured minimum applies: {error}");
    let error = refused(&client, time_now(json!({"everySeconds": 60, "input": "text"}))).await;
    assert!(error.contains("input"), "{error}");
    let error = refused(
        &client,
        json!({"tool": "agentos.mem_set", "input": {"value": 1}, "everySeconds": 60}),
    )
    .await;
    assert!(
        error.contains("does not fit the input schema of `agentos.mem_set`") && error.contains("key"),
        "the input is checked against the tool's schema at once: {error}"
    );
    let error = refused(&client, json!({"tool": "agentos.no_such_tool", "everySeconds": 60})).await;
    assert!(error.contains("unknown tool `agentos.no_such_tool`"), "{error}");

    // The per-agent limit.
    create(&client, time_now(json!({"cron": "0 9 * * 1-5"}))).await;
    let second = create(&client, time_now(json!({"cron": "@daily"}))).await;
    let error = refused(&client, time_now(json!({"everySeconds": 3600}))).await;
    assert!(
        error.contains("already have 2") && error.contains("schedule_cancel"),
        "{error}"
    );
    call(&client, "agentos.schedule_cancel", json!({"id": second["id"]})).await;
    create(&client, time_now(json!({"everySeconds": 3600}))).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_schedule_cannot_call_what_its_creator_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--allow-tools", "agentos.schedule_*,agentos.mem_*"]).await;
    let error = refused(&client, json!({"tool": "agentos.time_now", "everySeconds": 60})).await;
    assert!(
        error.contains("unknown tool `agentos.time_now`"),
        "a tool the creator may not call looks unknown: {error}"
    );
    let allowed = create(
        &client,
        json!({"tool": "agentos.mem_set", "input": {"key": "k", "value": 1}, "everySeconds": 60}),
    )
    .await;
    assert_eq!(allowed["tool"], "agentos.mem_set");
    client.cancel().await.unwrap();
}

fn agent_caller(agent: &str, tools: &[&str]) -> agentos::registry::CallContext {
    let caller =
        agentos::registry::Caller::agent(agent, agentos::registry::ToolPolicy::parse(tools).unwrap(), Vec::new());
    agentos::registry::CallContext::new(Arc::new(caller), "test", Duration::from_secs(30))
}

#[tokio::test]
async fn agents_see_fire_and_cancel_only_their_own_schedules() {
    let dir = tempfile::tempdir().unwrap();
    let app = common::in_process_app(dir.path()).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    app.start_background(shutdown.clone());
    let as_agent = |agent: &'static str, tool: &'static str, input: Value| {
        let app = &app;
        async move { structured(&common::call_as(app, agent, tool, input).await.unwrap()) }
    };
    common::register_in_process(&app, "agent-a").await;
    let created = as_agent(
        "agent-a",
        "agentos.schedule_create",
        json!({"tool": "agentos.mem_set", "input": {"key": "fired", "value": "by a"}, "everySeconds": 1}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();

    let listed = as_agent("agent-b", "agentos.schedule_list", json!({})).await;
    assert_eq!(listed["schedules"], json!([]), "B does not see A's schedule");
    let runs = common::call_as(&app, "agent-b", "agentos.schedule_runs", json!({"id": id}))
        .await
        .unwrap();
    assert_eq!(runs.is_error, Some(true), "B cannot read A's runs");
    let cancelled = as_agent("agent-b", "agentos.schedule_cancel", json!({"id": id})).await;
    assert_eq!(cancelled["cancelled"], false, "B cannot cancel A's schedule");

    // It fires as A: A's memory gets the key, B's does not.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = as_agent("agent-a", "agentos.mem_get", json!({"key": "fired"})).await;
        if got["found"] == true {
            assert_eq!(got["value"], "by a");
            break;
        }
        assert!(Instant::now() < deadline, "the schedule never fired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let got = as_agent("agent-b", "agentos.mem_get", json!({"key": "fired"})).await;
    assert_eq!(
        got["found"], false,
        "the schedule ran as its creator, not as anyone else"
    );

    let listed = as_agent("agent-a", "agentos.schedule_list", json!({})).await;
    assert_eq!(listed["schedules"][0]["id"], json!(id));
    let cancelled = as_agent("agent-a", "agentos.schedule_cancel", json!({"id": id})).await;
    assert_eq!(cancelled["cancelled"], true);

    // A restricted creator's rights are checked with its own policy, not the process's.
    let restricted = agent_caller("agent-c", &["agentos.schedule_*"]);
    let refused = app
        .registry
        .call(
            &restricted,
            "agentos.schedule_create",
            json!({"tool": "agentos.mem_set", "input": {"key": "k", "value": 1}, "everySeconds": 60}),
        )
        .await
        .unwrap();
    assert_eq!(refused.is_error, Some(true));
    assert!(
        text_of(&refused).contains("unknown tool `agentos.mem_set`"),
        "{}",
        text_of(&refused)
    );
    shutdown.cancel();
}

#[tokio::test]
async fn a_disabled_agents_schedules_stop_firing() {
    let dir = tempfile::tempdir().unwrap();
    let app = common::in_process_app(dir.path()).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    app.start_background(shutdown.clone());
    common::register_in_process(&app, "agent-d").await;
    let created = structured(
        &common::call_as(
            &app,
            "agent-d",
            "agentos.schedule_create",
            json!({"tool": "agentos.time_now", "input": {}, "everySeconds": 1}),
        )
        .await
        .unwrap(),
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let owner = agentos::registry::Caller::owner(agentos::registry::ToolPolicy::allow_all());
    app.identity.set_agent_active(&owner, "agent-d", false).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let runs = structured(
            &common::call_as(&app, "agent-d", "agentos.schedule_runs", json!({ "id": id }))
                .await
                .unwrap(),
        );
        if let Some(run) = runs["runs"].as_array().and_then(|runs| runs.first()) {
            assert_eq!(run["outcome"], "skipped", "{runs}");
            assert!(run["error"].as_str().unwrap().contains("disabled"), "{runs}");
            break;
        }
        assert!(Instant::now() < deadline, "the schedule never came due");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
}

//! Workflows through MCP against the real binary: outputs passed between steps, stop versus
//! continue, background runs, restarts, cancellation, limits, and isolation between agents.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{Client, Server, call, structured, text_of};
use serde_json::{Value, json};

async fn run(client: &Client, input: Value) -> Value {
    structured(&call(client, "agentos.workflow_run", input).await)
}

async fn refused(client: &Client, input: Value) -> String {
    let result = call(client, "agentos.workflow_run", input.clone()).await;
    assert_eq!(
        result.is_error,
        Some(true),
        "{input} should be refused: {}",
        text_of(&result)
    );
    text_of(&result)
}

/// Polls agentos.workflow_get until `done` holds; fails with what it saw.
async fn get_until(client: &Client, id: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let run = structured(&call(client, "agentos.workflow_get", json!({"id": id})).await);
        if done(&run) {
            return run;
        }
        assert!(Instant::now() < deadline, "gave up waiting; last seen: {run:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn statuses(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn outputs_flow_from_step_to_step() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let result = run(
        &client,
        json!({"steps": [
            {"id": "save", "tool": "agentos.mem_set", "input": {"key": "wf/answer", "value": {"n": 42, "tags": ["a", "b"]}}},
            {"id": "load", "tool": "agentos.mem_get", "input": {"key": {"$from": "save", "pointer": "/key"}}},
            {"tool": "agentos.mem_set", "input": {
                "key": "wf/copy",
                "value": {"number": {"$from": 1, "pointer": "/value/n"}, "second": {"$from": "load", "pointer": "/value/tags/1"}}
            }},
            {"tool": "agentos.mem_get", "input": {"key": {"$from": "2", "pointer": "/key"}}}
        ]}),
    )
    .await;
    assert_eq!(result["status"], "succeeded", "{result:#}");
    assert_eq!(statuses(&result), ["succeeded"; 4]);
    let steps = result["steps"].as_array().unwrap();
    assert_eq!(
        (steps[0]["id"].as_str(), steps[2]["id"].as_str()),
        (Some("save"), Some("2"))
    );
    assert_eq!(steps[1]["result"]["value"], json!({"n": 42, "tags": ["a", "b"]}));
    assert_eq!(
        steps[3]["result"]["value"],
        json!({"number": 42, "second": "b"}),
        "{result:#}"
    );
    for step in steps {
        assert!(step["finishedAtMs"].as_i64() >= step["startedAtMs"].as_i64(), "{step}");
    }
    // The stored run reads back the same.
    let id = result["id"].as_str().unwrap();
    let stored = structured(&call(&client, "agentos.workflow_get", json!({"id": id})).await);
    assert_eq!(stored["status"], "succeeded");
    assert_eq!(stored["steps"], result["steps"]);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_failing_step_stops_the_workflow_or_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let steps = |on_error: &str| {
        json!([
            {"id": "first", "tool": "agentos.mem_set", "input": {"key": "k", "value": 1}},
            {"id": "broken", "tool": "agentos.mem_get", "input": {"key": ""}, "onError": on_error},
            {"id": "missing", "tool": "agentos.mem_get", "input": {"key": {"$from": "first", "pointer": "/nothing"}}, "onError": "continue"},
            {"id": "last", "tool": "agentos.mem_get", "input": {"key": "k"}}
        ])
    };
    let stopped = run(&client, json!({"steps": steps("stop")})).await;
    assert_eq!(stopped["status"], "failed", "{stopped:#}");
    assert_eq!(statuses(&stopped), ["succeeded", "failed", "skipped", "skipped"]);
    let error = stopped["steps"][1]["error"].as_str().unwrap();
    assert!(error.contains("key"), "the step's error says what was wrong: {error}");
    assert!(stopped["error"].as_str().unwrap().contains("`broken`"), "{stopped:#}");

    let continued = run(&client, json!({"steps": steps("continue")})).await;
    assert_eq!(continued["status"], "partial", "{continued:#}");
    assert_eq!(statuses(&continued), ["succeeded", "failed", "failed", "succeeded"]);
    let error = continued["steps"][2]["error"].as_str().unwrap();
    assert!(
        error.contains("`/nothing` does not exist") && error.contains("`/key`"),
        "a bad pointer names what exists: {error}"
    );
    assert_eq!(continued["steps"][3]["result"]["value"], 1);
    let stored = structured(&call(&client, "agentos.workflow_get", json!({"id": continued["id"]})).await);
    assert_eq!(statuses(&stored), statuses(&continued));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_workflows_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(&config, "[workflow]\nmax_steps = 3\n").unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--config", config.to_str().unwrap()]).await;
    let set = json!({"tool": "agentos.mem_set", "input": {"key": "side-effect", "value": 1}});
    let error = refused(&client, json!({"steps": [set, {"tool": "agentos.nope"}]})).await;
    assert!(
        error.contains("steps[1].tool") && error.contains("unknown tool `agentos.nope`"),
        "{error}"
    );
    let error = refused(
        &client,
        json!({"steps": [set, {"tool": "agentos.mem_get", "input": {"key": {"$from": "later"}}}, {"id": "later", "tool": "agentos.time_now"}]}),
    )
    .await;
    assert!(
        error.contains("steps[1].input") && error.contains("earlier steps"),
        "{error}"
    );
    let error = refused(
        &client,
        json!({"steps": [set, {"tool": "agentos.mem_get", "input": {"key": {"$from": "ghost"}}}]}),
    )
    .await;
    assert!(error.contains("not a step of this workflow"), "{error}");
    let error = refused(
        &client,
        json!({"steps": [{"id": "a", "tool": "agentos.time_now"}, {"id": "a", "tool": "agentos.time_now"}]}),
    )
    .await;
    assert!(error.contains("used twice"), "{error}");
    let error = refused(&client, json!({"steps": [{"id": "7", "tool": "agentos.time_now"}]})).await;
    assert!(error.contains("only digits"), "{error}");
    let error = refused(&client, json!({"steps": [set, set, set, set]})).await;
    assert!(error.contains("at most 3"), "the configured limit applies: {error}");
    let error = refused(&client, json!({"steps": []})).await;
    assert!(error.contains("steps"), "{error}");
    let value = structured(&call(&client, "agentos.mem_get", json!({"key": "side-effect"})).await);
    assert_eq!(value["found"], false, "no refused workflow ran a step");
    let missing = call(&client, "agentos.workflow_get", json!({"id": "nope"})).await;
    assert_eq!(missing.is_error, Some(true));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn nested_workflows_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    // Four workflows deep; the default limit is three.
    let mut input = json!({"steps": [{"tool": "agentos.time_now"}]});
    for _ in 0..3 {
        input = json!({"steps": [{"tool": "agentos.workflow_run", "input": input}]});
    }
    let top = run(&client, input).await;
    let third = &top["steps"][0]["result"]["steps"][0]["result"];
    let error = third["steps"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("nest at most 3"), "the fourth level is refused: {top:#}");
    assert_eq!(third["status"], "failed");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_background_run_returns_at_once_and_can_be_followed() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let started = Instant::now();
    let result = run(
        &client,
        json!({"background": true, "steps": [
            {"id": "wait", "tool": "agentos.time_sleep", "input": {"seconds": 1}},
            {"id": "note", "tool": "agentos.mem_set", "input": {"key": "bg", "value": {"$from": "wait"}}}
        ]}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "did not wait for the steps"
    );
    assert_eq!(result["status"], "running", "{result:#}");
    let id = result["id"].as_str().unwrap().to_owned();
    let running = structured(&call(&client, "agentos.workflow_get", json!({"id": id})).await);
    assert_eq!(running["status"], "running", "{running:#}");
    let done = get_until(&client, &id, Duration::from_secs(10), |run| run["status"] != "running").await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    assert_eq!(statuses(&done), ["succeeded", "succeeded"]);
    let value = structured(&call(&client, "agentos.mem_get", json!({"key": "bg"})).await);
    let waited = value["value"]["seconds"].as_f64().unwrap_or_default();
    assert!(
        (1.0..5.0).contains(&waited),
        "the second step got the first one's output: {value}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_background_run_cut_by_a_crash_is_marked_failed_at_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let result = run(
        &client,
        json!({"background": true, "steps": [
            {"tool": "agentos.time_now"},
            {"id": "long", "tool": "agentos.time_sleep", "input": {"seconds": 60}},
            {"tool": "agentos.time_now"}
        ]}),
    )
    .await;
    let id = result["id"].as_str().unwrap().to_owned();
    get_until(&client, &id, Duration::from_secs(10), |run| {
        run["steps"][1]["status"] == "running"
    })
    .await;

    // A second process on the same data directory leaves a live run alone.
    let (other, _, _) = common::stdio_client(dir.path(), &[]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = structured(&call(&other, "agentos.workflow_get", json!({"id": id})).await);
    assert_eq!(
        seen["status"], "running",
        "another live process's run is not interrupted: {seen:#}"
    );
    other.cancel().await.unwrap();

    server.kill();
    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let run = get_until(&client, &id, Duration::from_secs(10), |run| run["status"] != "running").await;
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(
        run["error"].as_str().unwrap().contains("interrupted by restart"),
        "{run:#}"
    );
    assert_eq!(statuses(&run), ["succeeded", "failed", "skipped"]);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn cancelling_a_foreground_run_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let (client, observed, log) = common::stdio_client(dir.path(), &[]).await;
    let peer = client.peer().clone();
    let task = tokio::spawn(async move {
        peer.call_tool(common::params(
            "agentos.workflow_run",
            json!({"steps": [
                {"tool": "agentos.time_sleep", "input": {"seconds": 1.5}},
                {"tool": "agentos.mem_set", "input": {"key": "after-cancel", "value": true}}
            ]}),
        ))
        .await
    });
    let progressed = common::eventually(Duration::from_secs(5), || !observed.progress.lock().unwrap().is_empty()).await;
    assert!(progressed, "the workflow reports progress per step");
    task.abort();
    let stopped = common::eventually(Duration::from_secs(5), || {
        log.lock().unwrap().contains("tool call cancelled by the client")
    })
    .await;
    assert!(stopped, "the server cancelled the call");
    let text = log.lock().unwrap().clone();
    let id = text
        .lines()
        .find(|l| l.contains("workflow started"))
        .and_then(|l| l.split("workflow=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the start is logged with the run id")
        .to_owned();
    // The run and its cancelled step are recorded by separate writes: wait for both.
    let run = get_until(&client, &id, Duration::from_secs(5), |run| {
        run["status"] != "running" && !statuses(run).iter().any(|status| status == "running")
    })
    .await;
    assert_eq!(run["status"], "failed", "{run:#}");
    assert!(run["error"].as_str().unwrap().contains("cancelled"), "{run:#}");
    assert_eq!(statuses(&run), ["failed", "skipped"], "{run:#}");
    // Had the cancel not stopped the run, it would have ended `succeeded` after its sleep (the
    // wait above covers it) and written this key.
    let value = structured(&call(&client, "agentos.mem_get", json!({"key": "after-cancel"})).await);
    assert_eq!(value["found"], false, "no step ran after the cancel");
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn workflows_belong_to_their_agent_and_run_as_it() {
    let dir = tempfile::tempdir().unwrap();
    let app = common::in_process_app(dir.path()).await;
    let as_agent = |agent: &'static str, tool: &'static str, input: Value| {
        let app = &app;
        async move { common::call_as(app, agent, tool, input).await.unwrap() }
    };
    let result = structured(
        &as_agent(
            "agent-a",
            "agentos.workflow_run",
            json!({"steps": [{"tool": "agentos.mem_set", "input": {"key": "mine", "value": "a's"}}]}),
        )
        .await,
    );
    assert_eq!(result["status"], "succeeded");
    let id = result["id"].as_str().unwrap().to_owned();
    let other = as_agent("agent-b", "agentos.workflow_get", json!({"id": id})).await;
    assert_eq!(other.is_error, Some(true), "B cannot read A's run");
    assert!(text_of(&other).contains("no workflow run"), "{}", text_of(&other));
    // B's workflow steps run as B: they cannot read A's memory.
    let b = structured(
        &as_agent(
            "agent-b",
            "agentos.workflow_run",
            json!({"steps": [{"tool": "agentos.mem_get", "input": {"key": "mine"}}]}),
        )
        .await,
    );
    assert_eq!(b["steps"][0]["result"]["found"], false, "{b:#}");
    let a = structured(&as_agent("agent-a", "agentos.workflow_get", json!({"id": id})).await);
    assert_eq!(a["status"], "succeeded");
    let mine = structured(&as_agent("agent-a", "agentos.mem_get", json!({"key": "mine"})).await);
    assert_eq!(mine["value"], "a's");
}

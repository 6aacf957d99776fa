//! Stopping an agent stops everything it started, against the real `agentos serve`.
//!
//! Attack found: revoking all of an agent's tokens left its schedule firing every second, and the
//! owner's `schedule_cancel` on it answered `cancelled: false`. Now disabling an agent (a tool and
//! a route) stops its schedules (each firing is recorded as a `skipped` run), its background
//! workflows (the step in progress is cancelled), its held approvals (denied, "withdrawn") and its
//! live MCP sessions (closed); ops-admins list and cancel any agent's schedules and workflows.

use crate::common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Server;

const CONFIG: &str = "[approvals]\nrequire = [\"agentos.mem_delete\"]\nwait_secs = 1\n[rate_limits]\nenabled = false\n";

async fn ok(server: &Server, token: &str, tool: &str, input: Value) -> Value {
    let (status, _, body) = server.plain(token, tool, input.clone()).await;
    assert_eq!(status, StatusCode::OK, "{tool} {input}: {body}");
    body["result"].clone()
}

/// Polls `tool` as the owner until `done` holds for its result; then (or past the deadline) the
/// latest result, for the caller's assertions to explain.
async fn owner_until(server: &Server, tool: &str, input: Value, done: impl Fn(&Value) -> bool) -> Value {
    let latest = std::sync::Mutex::new(Value::Null);
    let found = common::poll(Duration::from_secs(20), || async {
        let result = ok(server, server.token(), tool, input.clone()).await;
        *latest.lock().unwrap() = result.clone();
        done(&result).then_some(result)
    })
    .await;
    found.unwrap_or_else(|| latest.into_inner().unwrap())
}

async fn sessions_active(server: &Server) -> Option<u64> {
    let text = common::http()
        .get(server.url("/metrics"))
        .bearer_auth(server.token())
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|line| line.starts_with("agentos_mcp_sessions_active "))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn disabling_an_agent_stops_its_schedules_workflows_approvals_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), CONFIG);
    let token = server.register_agent("busy", &["agentos.*"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // What the agent leaves running: a schedule firing every second, a background workflow
    // whose first step waits 30 s, a held call, and an MCP session.
    let schedule = ok(
        &server,
        &token,
        "agentos.schedule_create",
        json!({"tool": "agentos.mem_set", "input": {"key": "tick", "value": "x"}, "everySeconds": 1}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let workflow = ok(
        &server,
        &token,
        "agentos.workflow_run",
        json!({"background": true, "steps": [
            {"tool": "agentos.events_poll", "input": {"topic": "never", "from": "end", "waitMs": 30000}},
            {"tool": "agentos.mem_set", "input": {"key": "after", "value": "should not run"}}
        ]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let held = {
        let (server_url, token) = (server.mcp_url(), token.clone());
        tokio::spawn(async move {
            common::http()
                .post(server_url)
                .bearer_auth(token)
                .json(&json!({"tool": "agentos.mem_delete", "input": {"key": "tick"}}))
                .send()
                .await
        })
    };
    let pending = owner_until(&server, "agentos.approvals_list", json!({"status": "pending"}), |r| {
        r["approvals"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    let approval = pending["approvals"][0]["id"].as_str().expect("a held call").to_owned();
    let _ = held.await;
    let (client, _) = common::http_client_as(&server.mcp_url(), &token).await;
    client.list_all_tools().await.unwrap();
    let first_ok = owner_until(
        &server,
        "agentos.schedule_runs",
        json!({"id": schedule, "agentId": "busy"}),
        |r| {
            r["runs"]
                .as_array()
                .is_some_and(|runs| runs.iter().any(|run| run["outcome"] == "ok"))
        },
    )
    .await;
    assert!(
        first_ok.to_string().contains("\"ok\""),
        "the schedule ran while the agent was active: {first_ok}"
    );
    let before_sessions = sessions_active(&server).await.unwrap_or_default();
    assert!(before_sessions >= 1, "the agent's session is open");

    let response = common::http()
        .post(server.url("/api/agents/busy/disable"))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let disabled_at = chrono::Utc::now().timestamp_millis();

    // The schedule fires, but as nobody: each firing is a skipped run that called nothing.
    let runs = owner_until(
        &server,
        "agentos.schedule_runs",
        json!({"id": schedule, "agentId": "busy"}),
        |r| r["runs"][0]["outcome"] == "skipped",
    )
    .await;
    assert_eq!(runs["runs"][0]["outcome"], "skipped", "{runs}");
    assert!(
        runs["runs"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("disabled"),
        "{runs}"
    );
    for run in runs["runs"].as_array().unwrap() {
        if run["startedAtMs"].as_i64().unwrap_or_default() > disabled_at + 100 {
            assert_eq!(run["outcome"], "skipped", "nothing ran after the disable: {runs}");
        }
    }

    // The background workflow stopped in its waiting step, well before its 30 s.
    let run = owner_until(
        &server,
        "agentos.workflow_get",
        json!({"id": workflow, "agentId": "busy"}),
        |r| r["status"] != "running",
    )
    .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(run["error"].as_str().unwrap_or_default().contains("cancelled"), "{run}");
    assert_eq!(run["steps"][1]["status"], "skipped", "{run}");

    // The held call can no longer be approved.
    let decided = owner_until(&server, "agentos.approvals_list", json!({"agentId": "busy"}), |r| {
        r["approvals"][0]["status"] != "pending"
    })
    .await;
    assert_eq!(decided["approvals"][0]["id"], approval.as_str());
    assert_eq!(decided["approvals"][0]["status"], "denied", "{decided}");
    assert!(decided.to_string().contains("withdrawn"), "{decided}");

    // Its MCP session is closed on the server (not merely refused at the next request).
    let closed = common::poll(Duration::from_secs(10), || async {
        (sessions_active(&server).await == Some(before_sessions - 1)).then_some(())
    })
    .await;
    assert!(closed.is_some(), "the session was closed");

    // The owner sees and cancels the agent's schedule; the agent could not name another's.
    let listed = ok(
        &server,
        server.token(),
        "agentos.schedule_list",
        json!({"agentId": "busy"}),
    )
    .await;
    assert_eq!(listed["schedules"][0]["id"], schedule.as_str(), "{listed}");
    let cancelled = ok(
        &server,
        server.token(),
        "agentos.schedule_cancel",
        json!({"id": schedule, "agentId": "busy"}),
    )
    .await;
    assert_eq!(cancelled["cancelled"], true, "{cancelled}");
    let workflows = ok(
        &server,
        server.token(),
        "agentos.workflow_list",
        json!({"agentId": "busy"}),
    )
    .await;
    assert_eq!(workflows["runs"][0]["id"], workflow.as_str(), "{workflows}");
}

#[tokio::test]
async fn only_ops_admins_name_another_agents_schedules_and_an_agent_cancels_its_own_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), CONFIG);
    let mallory = server.register_agent("mallory", &["agentos.*"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, body) = server
        .plain(&mallory, "agentos.schedule_list", json!({"agentId": "owner"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("only ops-admins"), "{body}");

    let workflow = ok(
        &server,
        &mallory,
        "agentos.workflow_run",
        json!({"background": true, "steps": [
            {"tool": "agentos.events_poll", "input": {"topic": "never", "from": "end", "waitMs": 30000}}
        ]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let cancelled = ok(&server, &mallory, "agentos.workflow_cancel", json!({"id": workflow})).await;
    assert_eq!(cancelled["cancelled"], true, "{cancelled}");
    let run = common::poll(Duration::from_secs(10), || async {
        let run = ok(&server, &mallory, "agentos.workflow_get", json!({"id": workflow})).await;
        (run["status"] != "running").then_some(run)
    })
    .await
    .expect("the cancelled run ended");
    assert_eq!(run["status"], "failed", "{run}");
    let again = ok(&server, &mallory, "agentos.workflow_cancel", json!({"id": workflow})).await;
    assert_eq!(again["cancelled"], false, "an ended run: {again}");
}

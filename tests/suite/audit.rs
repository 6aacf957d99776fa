//! The audit trail: every registry call leaves one record (digest, never input), readers see
//! only what they oversee, activity counters follow, records survive a restart, and
//! `GET /api/audit` is the same tool over REST.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use crate::common::{Server, in_process_app, structured, text_of};
use agentos::app::App;
use agentos::registry::{CallContext, CallError, Caller, FailureKind, Role, ToolPolicy, failure_kind, input_digest};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn caller(id: &str, role: Role, account: Option<&str>, tools: &[&str]) -> Caller {
    let mut caller = Caller::agent(id, ToolPolicy::parse(tools).unwrap(), Vec::new());
    caller.role = role;
    caller.account_id = account.map(Arc::from);
    caller
}

async fn call(app: &App, caller: &Caller, tool: &str, input: Value) -> Result<CallToolResult, CallError> {
    let ctx = CallContext::new(Arc::new(caller.clone()), "audit-test", Duration::from_secs(30));
    app.registry.call(&ctx, tool, input).await
}

/// The records `reader` gets for `filter`, ignoring the reads themselves.
async fn records(app: &App, reader: &Caller, mut filter: Value) -> Vec<Value> {
    filter["limit"] = json!(500);
    let result = call(app, reader, "agentos.audit_query", filter).await.unwrap();
    structured(&result)["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["tool"] != "agentos.audit_query")
        .cloned()
        .collect()
}

/// Waits until the background writer has stored at least `count` records `reader` can see.
async fn settle(app: &App, reader: &Caller, filter: Value, count: usize) -> Vec<Value> {
    for _ in 0..200 {
        let found = records(app, reader, filter.clone()).await;
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {count} audit records appeared for {filter}");
}

fn outcome_of(records: &[Value], tool: &str) -> Vec<String> {
    records
        .iter()
        .filter(|r| r["tool"] == tool)
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn calls_leave_records_and_each_reader_sees_what_it_oversees() {
    let dir = tempfile::tempdir().unwrap();
    let app = in_process_app(dir.path()).await;
    let shutdown = CancellationToken::new();
    app.start_background(shutdown.clone());
    let a = caller("agent-a", Role::Agent, Some("acct-1"), &["*"]);
    let b = caller("agent-b", Role::Agent, Some("acct-2"), &["*"]);
    let narrow = caller("agent-n", Role::Agent, Some("acct-1"), &["agentos.time_*"]);
    let operator = caller("op-1", Role::Operator, Some("acct-1"), &["*"]);
    let admin = caller("root", Role::OpsAdmin, None, &["*"]);

    let secret_input = json!({"key": "k", "value": "very-private-value"});
    assert!(call(&app, &a, "agentos.mem_set", secret_input.clone()).await.is_ok());
    let failed = call(
        &app,
        &a,
        "agentos.secret_set",
        json!({"name": "bad name!", "value": "x"}),
    )
    .await
    .unwrap();
    assert_eq!(failed.is_error, Some(true));
    assert!(matches!(
        call(&app, &a, "agentos.no_such_tool", json!({})).await,
        Err(CallError::UnknownTool(_))
    ));
    assert!(matches!(
        call(&app, &a, "agentos.mem_set", json!({})).await,
        Err(CallError::InvalidArguments { .. })
    ));
    assert!(call(&app, &b, "agentos.time_now", json!({})).await.is_ok());
    // A tool outside the caller's policy is recorded exactly like an unknown one.
    assert!(matches!(
        call(&app, &narrow, "agentos.mem_get", json!({"key": "k"})).await,
        Err(CallError::UnknownTool(_))
    ));

    let own = settle(&app, &a, json!({}), 4).await;
    assert_eq!(own.len(), 4, "{own:#?}");
    assert!(
        own.iter()
            .all(|r| r["agentId"] == "agent-a" && r["accountId"] == "acct-1")
    );
    assert_eq!(
        outcome_of(&own, "agentos.mem_set"),
        ["invalid_arguments", "ok"],
        "newest first"
    );
    assert_eq!(outcome_of(&own, "agentos.secret_set"), ["error"]);
    assert_eq!(outcome_of(&own, "agentos.no_such_tool"), ["unknown_tool"]);
    let ok = own.iter().find(|r| r["outcome"] == "ok").unwrap();
    assert_eq!(ok["inputDigest"], input_digest(&secret_input));
    assert_eq!(ok["origin"], "primitive");
    assert!(ok.get("error").is_none());
    let error = own.iter().find(|r| r["outcome"] == "error").unwrap();
    assert!(error["error"].as_str().unwrap().contains("name"), "{error}");
    assert!(
        !serde_json::to_string(&own).unwrap().contains("very-private-value"),
        "inputs are never stored"
    );

    // Agent A may not read B's trail: asking is forbidden, and B is absent from A's own view.
    let asked = call(&app, &a, "agentos.audit_query", json!({"agentId": "agent-b"}))
        .await
        .unwrap();
    assert_eq!(failure_kind(&asked), Some(FailureKind::Forbidden));
    assert!(text_of(&asked).contains("you may only read your own audit records"));
    let b_own = settle(&app, &b, json!({}), 1).await;
    assert_eq!(outcome_of(&b_own, "agentos.time_now"), ["ok"]);

    // The operator of account 1 sees its agents (A, the narrow one), not account 2's B.
    let seen = settle(&app, &operator, json!({}), 5).await;
    assert!(seen.iter().all(|r| r["accountId"] == "acct-1"), "{seen:#?}");
    assert_eq!(outcome_of(&seen, "agentos.mem_get"), ["unknown_tool"]);
    let about_a = records(&app, &operator, json!({"agentId": "agent-a"})).await;
    assert_eq!(about_a.len(), 4);
    let about_b = records(&app, &operator, json!({"agentId": "agent-b"})).await;
    assert!(about_b.is_empty(), "{about_b:#?}");

    // An ops-admin sees everyone; filters narrow it down.
    let everything = settle(&app, &admin, json!({}), 6).await;
    assert!(everything.iter().any(|r| r["agentId"] == "agent-b"));
    let family = records(&app, &admin, json!({"tool": "agentos.mem_*"})).await;
    assert_eq!(family.len(), 3);
    let errors = records(&app, &admin, json!({"outcome": "unknown_tool"})).await;
    assert_eq!(errors.len(), 2);
    let future = records(&app, &admin, json!({"since": "2999-01-01T00:00:00Z"})).await;
    assert!(future.is_empty());
    let bad_time = call(&app, &admin, "agentos.audit_query", json!({"since": "yesterday"}))
        .await
        .unwrap();
    assert_eq!(failure_kind(&bad_time), Some(FailureKind::InvalidInput));

    // Pages: newest first, then older ones through the cursor.
    let page = |cursor: Option<&str>| {
        let mut input = json!({"agentId": "agent-a", "tool": "agentos.mem_*", "limit": 1});
        if let Some(cursor) = cursor {
            input["cursor"] = json!(cursor);
        }
        input
    };
    let first = structured(&call(&app, &admin, "agentos.audit_query", page(None)).await.unwrap());
    let cursor = first["nextCursor"].as_str().expect("a next page").to_owned();
    let second = structured(
        &call(&app, &admin, "agentos.audit_query", page(Some(&cursor)))
            .await
            .unwrap(),
    );
    assert_eq!(first["records"][0]["outcome"], "invalid_arguments");
    assert_eq!(second["records"][0]["outcome"], "ok");

    // The activity counters match the trail, written in the same transactions.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all_a = structured(
        &call(
            &app,
            &admin,
            "agentos.audit_query",
            json!({"agentId": "agent-a", "limit": 500}),
        )
        .await
        .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (calls, last) = app.store.activity("agent-a").await.unwrap();
    let listed = all_a["records"].as_array().unwrap();
    assert_eq!(calls as usize, listed.len(), "counter = records of agent-a");
    assert_eq!(last, listed.iter().map(|r| r["timeMs"].as_i64().unwrap()).max());
    assert_eq!(app.store.activity("nobody").await.unwrap(), (0, None));
    shutdown.cancel();
    app.shutdown().await;
}

#[tokio::test]
async fn queued_records_are_written_on_shutdown_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = caller("agent-a", Role::Agent, None, &["*"]);
    {
        let app = in_process_app(dir.path()).await;
        let shutdown = CancellationToken::new();
        app.start_background(shutdown.clone());
        for i in 0..50 {
            call(&app, &a, "agentos.mem_set", json!({"key": format!("k{i}"), "value": i}))
                .await
                .unwrap();
        }
        // Straight to shutdown: whatever is still queued must be written now.
        shutdown.cancel();
        app.shutdown().await;
    }
    let app = in_process_app(dir.path()).await;
    let shutdown = CancellationToken::new();
    app.start_background(shutdown.clone());
    let found = records(&app, &a, json!({"tool": "agentos.mem_set"})).await;
    assert_eq!(found.len(), 50);
    assert_eq!(app.store.activity("agent-a").await.unwrap().0, 50);
    shutdown.cancel();
    app.shutdown().await;
}

#[tokio::test]
async fn the_rest_route_calls_the_tool_and_checks_its_query() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let http = common::http();
    let ok = http
        .post(server.mcp_url())
        .json(&json!({"tool": "agentos.time_now", "input": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let mut body = Value::Null;
    for _ in 0..100 {
        let response = http
            .get(server.url("/api/audit?tool=agentos.time_*&limit=5"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        body = response.json().await.unwrap();
        if !body["records"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let record = &body["records"][0];
    assert_eq!(record["tool"], "agentos.time_now");
    assert_eq!(record["agentId"], "owner");
    assert_eq!(record["outcome"], "ok");

    for bad in ["/api/audit?limit=many", "/api/audit?limit=0", "/api/audit?limit=501"] {
        let response = http.get(server.url(bad)).send().await.unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains("limit"), "{body}");
    }
    let bad_outcome = http.get(server.url("/api/audit?outcome=weird")).send().await.unwrap();
    assert_eq!(bad_outcome.status(), 400);
    let bad_time = http.get(server.url("/api/audit?since=yesterday")).send().await.unwrap();
    assert_eq!(bad_time.status(), 400);
}

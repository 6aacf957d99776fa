//! Approvals: a tool named in `approvals.require` waits for a human. Over MCP against the real
//! binary proxying the real server-everything (`scripts/install-test-deps`): pending, listed,
//! approved later, denied while waiting, approved while waiting (with progress); REST routes;
//! and in process, who may see and decide whose approvals.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common::real_servers::upstreams;
use crate::common::{Client, Server, call, structured, text_of};
use agentos::app::App;
use agentos::config::{ApprovalsConfig, Config};
use agentos::registry::{
    CallContext, Caller, CallerDirectory, FailureKind, Role, ToolPolicy, approval_id_of, failure_kind,
};
use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::CallToolResult;
use serde_json::{Value, json};

const ECHO: &str = "mcp.everything.echo";

fn quoted(path: &Path) -> String {
    serde_json::to_string(path.to_str().expect("UTF-8 path")).unwrap()
}

fn write_config(dir: &Path, wait_secs: u64) -> PathBuf {
    let up = upstreams().expect("checked by the caller");
    let path = dir.join("agentos.toml");
    let text = format!(
        "[approvals]\nrequire = [\"{ECHO}\", \"agentos.mcp_servers_list\"]\nwait_secs = {wait_secs}\n\n\
         [[mcp_servers]]\nname = \"everything\"\ncommand = {}\nargs = [{}, \"stdio\"]\n",
        quoted(&up.node),
        quoted(&up.everything_js),
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn wait_for_tool(client: &Client, name: &str) {
    for _ in 0..300 {
        let tools = client.peer().list_all_tools().await.unwrap();
        if tools.iter().any(|t| t.name == name) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} never appeared");
}

/// The id of the newest pending approval other than those in `known`, once one appears.
async fn next_pending(client: &Client, known: &[String]) -> String {
    for _ in 0..200 {
        let list = structured(&call(client, "agentos.approvals_list", json!({"status": "pending"})).await);
        let fresh = list["approvals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .find(|id| !known.contains(id));
        if let Some(id) = fresh {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no new pending approval appeared");
}

async fn settled(client: &Client, id: &str) -> Value {
    for _ in 0..200 {
        let outcome = structured(&call(client, "agentos.approval_result", json!({"id": id})).await);
        if !matches!(outcome["status"].as_str(), Some("pending" | "approved")) {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("approval {id} never settled");
}

#[tokio::test]
async fn held_calls_over_mcp_wait_for_a_decision() {
    if upstreams().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 4);
    let server = Server::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    let (client, observed) = common::http_client(&server.mcp_url()).await;
    wait_for_tool(&client, ECHO).await;

    // Nobody decides within the wait: the model is told the id and how to get the outcome.
    let held = call(&client, ECHO, json!({"message": "first"})).await;
    assert_eq!(held.is_error, Some(true));
    let first = approval_id_of(&held).expect("the approval id in _meta").to_owned();
    let message = text_of(&held);
    assert!(
        message.contains(&format!("agentos.approval_result {{\"id\": \"{first}\"}}")),
        "{message}"
    );
    let progress = observed.progress.lock().unwrap().clone();
    assert!(
        progress
            .iter()
            .any(|p| p.message.as_deref().is_some_and(|m| m.contains(&first))),
        "progress named the approval: {progress:?}"
    );

    let list = structured(&call(&client, "agentos.approvals_list", json!({"status": "pending"})).await);
    let listed = &list["approvals"][0];
    assert_eq!(listed["id"], first.as_str());
    assert_eq!(listed["tool"], ECHO);
    assert_eq!(listed["agentId"], "owner");
    assert!(listed["preview"].as_str().unwrap().contains("\"message\": \"first\""));
    assert_eq!(list["count"], 1);

    // Approved later: it runs once, and its result is kept.
    let decided = structured(
        &call(
            &client,
            "agentos.approval_decide",
            json!({"id": first, "decision": "approve"}),
        )
        .await,
    );
    assert_eq!(decided["status"], "approved");
    let outcome = settled(&client, &first).await;
    assert_eq!(outcome["status"], "completed", "{outcome}");
    assert_eq!(outcome["decidedBy"], "owner");
    assert_eq!(outcome["result"]["content"][0]["text"], "Echo: first");
    let twice = call(
        &client,
        "agentos.approval_decide",
        json!({"id": first, "decision": "deny"}),
    )
    .await;
    assert_eq!(twice.is_error, Some(true));
    assert!(text_of(&twice).contains("already completed"), "{}", text_of(&twice));

    // Denied while the caller waits: the caller hears who denied it and why.
    let peer = client.peer().clone();
    let waiting = tokio::spawn(async move { peer.call_tool(common::params(ECHO, json!({"message": "second"}))).await });
    let second = next_pending(&client, std::slice::from_ref(&first)).await;
    let denial = json!({"id": second, "decision": "deny", "note": "not today"});
    structured(&call(&client, "agentos.approval_decide", denial).await);
    let denied: CallToolResult = waiting.await.unwrap().unwrap();
    assert_eq!(denied.is_error, Some(true));
    assert_eq!(text_of(&denied), format!("{ECHO} was denied by owner: not today"));

    // Approved while the caller waits: the caller gets the real result directly.
    let peer = client.peer().clone();
    let waiting = tokio::spawn(async move { peer.call_tool(common::params(ECHO, json!({"message": "third"}))).await });
    let third = next_pending(&client, &[first.clone(), second.clone()]).await;
    structured(
        &call(
            &client,
            "agentos.approval_decide",
            json!({"id": third, "decision": "approve"}),
        )
        .await,
    );
    let ran: CallToolResult = waiting.await.unwrap().unwrap();
    assert_ne!(ran.is_error, Some(true), "{}", text_of(&ran));
    assert_eq!(text_of(&ran), "Echo: third");
    let progress = observed.progress.lock().unwrap().clone();
    assert!(
        progress
            .iter()
            .any(|p| p.message.as_deref().is_some_and(|m| m.contains(&third))),
        "progress while waiting: {progress:?}"
    );

    // The audit trail shows the held and the run calls (records are written in batches: wait).
    let mut outcomes: Vec<String> = Vec::new();
    for _ in 0..100 {
        let audit = structured(&call(&client, "agentos.audit_query", json!({"tool": ECHO, "limit": 20})).await);
        outcomes = audit["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["outcome"].as_str().unwrap().to_owned())
            .collect();
        if outcomes.iter().any(|o| o == "approval_pending") && outcomes.iter().any(|o| o == "approval_denied") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        outcomes.iter().any(|o| o == "approval_pending") && outcomes.iter().any(|o| o == "approval_denied"),
        "{outcomes:?}"
    );

    // REST: the same tools behind /api/approvals.
    let http = common::http();
    let listed: Value = http
        .get(server.url("/api/approvals?status=completed&limit=10"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 2, "{listed}");
    let malformed = http
        .post(server.url("/api/approvals/not-an-id"))
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let done = http
        .post(server.url(&format!("/api/approvals/{first}")))
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 400, "already decided");
    let bad_limit = http.get(server.url("/api/approvals?limit=x")).send().await.unwrap();
    assert_eq!(bad_limit.status(), 400);

    // A REST route over a held tool: 202 naming the approval, then 403 once denied.
    let accepted = http.get(server.url("/api/mcp/servers")).send().await.unwrap();
    assert_eq!(accepted.status(), 202);
    let body: Value = accepted.json().await.unwrap();
    assert_eq!(body["error"], "approval_pending");
    let fourth = body["approvalId"].as_str().expect("approvalId").to_owned();
    let denied = http
        .post(server.url(&format!("/api/approvals/{fourth}")))
        .json(&json!({"decision": "deny", "note": "no"}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 200);
    let outcome = settled(&client, &fourth).await;
    assert_eq!(
        (outcome["status"].as_str(), outcome["note"].as_str()),
        (Some("denied"), Some("no"))
    );
    let waiting = tokio::spawn({
        let (http, url) = (http.clone(), server.url("/api/mcp/servers"));
        async move { http.get(url).send().await.unwrap() }
    });
    let fifth = next_pending(&client, &[first.clone(), second.clone(), third.clone(), fourth]).await;
    http.post(server.url(&format!("/api/approvals/{fifth}")))
        .json(&json!({"decision": "deny"}))
        .send()
        .await
        .unwrap();
    let refused = waiting.await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "approval_denied");
    client.cancel().await.unwrap();
}

// ---------------------------------------------------------------- in process

/// Agents as the identity service would report them now; `gone` has been deleted.
struct Directory(Vec<Caller>);

impl CallerDirectory for Directory {
    fn lookup<'a>(&'a self, agent_id: &'a str) -> BoxFuture<'a, Option<Caller>> {
        let found = self.0.iter().find(|c| &*c.agent_id == agent_id).cloned();
        async move { found }.boxed()
    }
}

fn caller(id: &str, role: Role, account: Option<&str>) -> Caller {
    let mut caller = Caller::agent(id, ToolPolicy::allow_all(), Vec::new());
    caller.role = role;
    caller.account_id = account.map(Arc::from);
    caller
}

async fn as_caller(app: &App, caller: &Caller, tool: &str, input: Value) -> CallToolResult {
    let ctx = CallContext::new(Arc::new(caller.clone()), "approvals-test", Duration::from_secs(30));
    app.registry.call(&ctx, tool, input).await.unwrap()
}

/// An in-process instance where `agentos.time_now` needs approval (held calls wait 1 s).
async fn holding_time_now(dir: &Path) -> App {
    let config = Config {
        data_dir: dir.to_owned(),
        approvals: ApprovalsConfig {
            require: ToolPolicy::parse(&["agentos.time_now"]).unwrap(),
            wait_secs: 1,
            expire_secs: 600,
        },
        ..Config::default()
    };
    App::build(common::on_test_store(config)).await.unwrap()
}

#[tokio::test]
async fn only_overseers_see_and_decide_and_approved_calls_run_as_the_agent_is_now() {
    let dir = tempfile::tempdir().unwrap();
    let app = holding_time_now(dir.path()).await;
    let a = caller("agent-a", Role::Agent, Some("acct-1"));
    let b = caller("agent-b", Role::Agent, Some("acct-1"));
    let gone = caller("agent-gone", Role::Agent, Some("acct-1"));
    let operator = caller("op-1", Role::Operator, Some("acct-1"));
    let other_operator = caller("op-2", Role::Operator, Some("acct-2"));
    app.registry
        .set_directory(Arc::new(Directory(vec![a.clone(), b.clone(), operator.clone()])));

    let held = as_caller(&app, &a, "agentos.time_now", json!({})).await;
    assert_eq!(failure_kind(&held), Some(FailureKind::Pending));
    let id = approval_id_of(&held).unwrap().to_owned();

    // The requester sees it but cannot decide it; that looks like it does not exist.
    let own = as_caller(
        &app,
        &a,
        "agentos.approval_decide",
        json!({"id": id, "decision": "approve"}),
    )
    .await;
    assert_eq!(failure_kind(&own), Some(FailureKind::NotFound), "{}", text_of(&own));
    let seen = as_caller(&app, &a, "agentos.approval_result", json!({"id": id})).await;
    assert_eq!(structured(&seen)["status"], "pending");
    let listed = as_caller(&app, &a, "agentos.approvals_list", json!({})).await;
    assert_eq!(structured(&listed)["count"], 1);

    // Another agent, even of the same account, neither sees nor decides it.
    for (tool, input) in [
        ("agentos.approval_result", json!({"id": id})),
        ("agentos.approval_decide", json!({"id": id, "decision": "deny"})),
    ] {
        let result = as_caller(&app, &b, tool, input).await;
        assert_eq!(failure_kind(&result), Some(FailureKind::NotFound), "{tool}");
    }
    assert_eq!(
        structured(&as_caller(&app, &b, "agentos.approvals_list", json!({})).await)["count"],
        0
    );
    let named = as_caller(&app, &b, "agentos.approvals_list", json!({"agentId": "agent-a"})).await;
    assert_eq!(failure_kind(&named), Some(FailureKind::Forbidden));
    // Nor does another account's operator.
    let foreign = as_caller(&app, &other_operator, "agentos.approval_result", json!({"id": id})).await;
    assert_eq!(failure_kind(&foreign), Some(FailureKind::NotFound));

    // The account's operator decides; the call runs as agent-a.
    let decided = as_caller(
        &app,
        &operator,
        "agentos.approval_decide",
        json!({"id": id, "decision": "approve"}),
    )
    .await;
    assert_eq!(structured(&decided)["status"], "approved");
    let outcome = settled_in_process(&app, &a, &id).await;
    assert_eq!(outcome["status"], "completed", "{outcome}");
    assert!(outcome["result"]["structuredContent"].is_object(), "{outcome}");

    // An agent deleted since it asked: the approved call fails cleanly.
    let held = as_caller(&app, &gone, "agentos.time_now", json!({})).await;
    let id = approval_id_of(&held).unwrap().to_owned();
    let admin = Caller::owner(ToolPolicy::allow_all());
    as_caller(
        &app,
        &admin,
        "agentos.approval_decide",
        json!({"id": id, "decision": "approve"}),
    )
    .await;
    let outcome = settled_in_process(&app, &admin, &id).await;
    assert_eq!(outcome["status"], "failed", "{outcome}");
    assert!(
        outcome["error"].as_str().unwrap().contains("no longer exists"),
        "{outcome}"
    );
}

async fn settled_in_process(app: &App, reader: &Caller, id: &str) -> Value {
    for _ in 0..200 {
        let outcome = structured(&as_caller(app, reader, "agentos.approval_result", json!({"id": id})).await);
        if !matches!(outcome["status"].as_str(), Some("pending" | "approved")) {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("approval {id} never settled");
}

/// An agent allowed nothing but the held tool still reaches the outcome: `agentos.approval_result`
/// is open to every caller (it only answers about the caller's own approvals), while listing and
/// deciding stay behind the policy.
#[tokio::test]
async fn an_agent_allowed_only_the_held_tool_can_still_fetch_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let app = holding_time_now(dir.path()).await;
    let mut narrow = caller("agent-narrow", Role::Agent, Some("acct-1"));
    narrow.tools = ToolPolicy::parse(&["agentos.time_now"]).unwrap();
    let other = {
        let mut other = caller("agent-other", Role::Agent, Some("acct-1"));
        other.tools = ToolPolicy::parse(&["agentos.time_now"]).unwrap();
        other
    };
    app.registry
        .set_directory(Arc::new(Directory(vec![narrow.clone(), other.clone()])));

    let visible: Vec<String> = app
        .registry
        .list_for(&narrow)
        .iter()
        .map(|entry| entry.name().to_string())
        .collect();
    assert_eq!(visible, ["agentos.approval_result", "agentos.time_now"]);

    let held = as_caller(&app, &narrow, "agentos.time_now", json!({})).await;
    assert_eq!(failure_kind(&held), Some(FailureKind::Pending));
    let id = approval_id_of(&held).unwrap().to_owned();
    let seen = as_caller(&app, &narrow, "agentos.approval_result", json!({"id": id})).await;
    assert_eq!(structured(&seen)["status"], "pending", "{}", text_of(&seen));
    // Open to every caller, but only about their own approvals.
    let foreign = as_caller(&app, &other, "agentos.approval_result", json!({"id": id})).await;
    assert_eq!(failure_kind(&foreign), Some(FailureKind::NotFound));
    // Listing and deciding are still the policy's to grant: to this agent they do not exist.
    let ctx = CallContext::new(Arc::new(narrow.clone()), "approvals-test", Duration::from_secs(30));
    for tool in ["agentos.approvals_list", "agentos.approval_decide"] {
        assert!(app.registry.call(&ctx, tool, json!({})).await.is_err(), "{tool}");
    }

    let admin = Caller::owner(ToolPolicy::allow_all());
    as_caller(
        &app,
        &admin,
        "agentos.approval_decide",
        json!({"id": id, "decision": "approve"}),
    )
    .await;
    let outcome = settled_in_process(&app, &narrow, &id).await;
    assert_eq!(outcome["status"], "completed", "{outcome}");
}

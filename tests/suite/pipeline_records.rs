//! What issue 10 moved into the pipeline leaves the records operators trust: operator actions
//! are audited tools whose REST routes are thin adapters; the identity gate records each
//! attempt; disabling an agent stops its calls; an overloaded store answers `busy` instead of
//! queueing without bound.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::Server;

/// The owner's view of the audit trail for `tool` (exact, or a prefix ending in `*`).
async fn audit(server: &Server, tool: &str) -> Vec<Value> {
    let (status, _, body) = server
        .plain(
            server.token(),
            "agentos.audit_query",
            json!({"tool": tool, "limit": 100}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["result"]["records"].as_array().cloned().unwrap_or_default()
}

/// Polls the audit trail until `ready` holds for `tool`'s records (the writer batches).
async fn audited(server: &Server, tool: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let records = audit(server, tool).await;
        if ready(&records) || tokio::time::Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn me(server: &Server, token: &str) -> StatusCode {
    common::http()
        .get(server.url("/agent/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn revoking_through_the_route_and_the_tool_is_audited_and_takes_effect() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), "");
    let by_route = server.register_agent("by-route", &["agentos.*"]).await;
    let by_tool = server.register_agent("by-tool", &["agentos.*"]).await;
    for agent in [&by_route, &by_tool] {
        assert_eq!(me(&server, agent["token"].as_str().unwrap()).await, StatusCode::OK);
    }

    let response = common::http()
        .post(server.url("/api/tokens/revoke"))
        .bearer_auth(server.token())
        .json(&json!({"jti": by_route["jti"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["success"].clone(), body["revoked"].clone()),
        (json!(true), json!(true))
    );
    let (status, _, body) = server
        .plain(server.token(), "agentos.token_revoke", json!({"jti": by_tool["jti"]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for agent in [&by_route, &by_tool] {
        assert_eq!(
            me(&server, agent["token"].as_str().unwrap()).await,
            StatusCode::UNAUTHORIZED
        );
    }

    let records = audited(&server, "agentos.token_revoke", |records| records.len() >= 2).await;
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        assert_eq!(record["outcome"], "ok", "{record}");
        assert_eq!(record["agentId"], "owner", "{record}");
    }
    // Revoking all of an agent's tokens through its route is a call of the tool as well.
    let fresh = server.register_agent("all-tokens", &["agentos.*"]).await;
    let response = common::http()
        .delete(server.url("/api/agents/all-tokens/tokens"))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        me(&server, fresh["token"].as_str().unwrap()).await,
        StatusCode::UNAUTHORIZED
    );
    let records = audited(&server, "agentos.agent_tokens_revoke", |records| !records.is_empty()).await;
    assert_eq!(records.len(), 1, "{records:?}");
    // Operator-created agents are audited too: the /register calls above.
    let created = audited(&server, "agentos.agent_create", |records| records.len() >= 3).await;
    assert_eq!(created.len(), 3, "{created:?}");
}

#[tokio::test]
async fn a_disabled_agent_can_make_no_call_until_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), "");
    let agent = server.register_agent("worker", &["agentos.*"]).await;
    let token = agent["token"].as_str().unwrap();
    let (status, _, _) = server.plain(token, "agentos.time_now", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    // The operator tools are not the agent's to see.
    let (status, _, _) = server
        .plain(token, "agentos.agent_disable", json!({"agentId": "worker"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let response = common::http()
        .post(server.url("/api/agents/worker/disable"))
        .bearer_auth(server.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "disabled", "{body}");
    let (status, _, body) = server.plain(token, "agentos.time_now", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, _, listed) = server
        .plain(server.token(), "agentos.agents_list", json!({"status": "disabled"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = listed["result"]["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agentId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["worker"]);

    let (status, _, _) = server
        .plain(server.token(), "agentos.agent_enable", json!({"agentId": "worker"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server.plain(token, "agentos.time_now", json!({})).await;
    assert_eq!(status, StatusCode::OK, "enabled again, its token works");
    let wanted = ["agentos.agent_create", "agentos.agent_disable", "agentos.agent_enable"];
    let records = audited(&server, "agentos.agent_*", |records| {
        wanted
            .iter()
            .all(|tool| records.iter().any(|r| r["tool"] == *tool && r["outcome"] == "ok"))
    })
    .await;
    let ok: Vec<&str> = records
        .iter()
        .filter(|r| r["outcome"] == "ok")
        .map(|r| r["tool"].as_str().unwrap())
        .collect();
    for tool in wanted {
        assert!(ok.contains(&tool), "{records:?}");
    }
    // The agent's own try at the hidden tool is in the trail, as an unknown tool.
    assert!(
        records
            .iter()
            .any(|r| r["agentId"] == "worker" && r["outcome"] == "unknown_tool"),
        "{records:?}"
    );
}

#[tokio::test]
async fn each_step_of_the_gate_leaves_a_record_without_its_secret() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), "");
    let signup = common::http()
        .post(server.url("/api/signup"))
        .json(&json!({"email": "ada@example.com", "password": "correct horse"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), StatusCode::CREATED);
    let signed: Value = signup.json().await.unwrap();
    let agent_id = signed["credentials"]["agentId"].as_str().unwrap().to_owned();
    for password in ["wrong guess!", "correct horse"] {
        common::http()
            .post(server.url("/api/signin"))
            .json(&json!({"email": "ada@example.com", "password": password}))
            .send()
            .await
            .unwrap();
    }
    let records = audited(&server, "gate:*", |records| records.len() >= 3).await;
    let seen: Vec<(String, String, String)> = records
        .iter()
        .rev()
        .map(|r| {
            (
                r["tool"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
                r["agentId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("gate:signup", "ok", agent_id.as_str()),
        ("gate:signin", "error", "anonymous"),
        ("gate:signin", "ok", agent_id.as_str()),
    ]
    .map(|(tool, outcome, agent)| (tool.to_owned(), outcome.to_owned(), agent.to_owned()));
    assert_eq!(seen, expected, "{records:?}");
    let text = serde_json::to_string(&records).unwrap();
    for secret in ["correct horse", "wrong guess", "ada@example.com"] {
        assert!(!text.contains(secret), "`{secret}` is in the audit trail: {text}");
    }
    // The failed and the successful sign-in name the same subject by its digest.
    assert_eq!(records[0]["inputDigest"], records[1]["inputDigest"]);
}

#[tokio::test]
async fn an_oversubscribed_store_answers_busy_and_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_secure_configured(dir.path(), "[store]\nmax_pending_writes = 1\n");
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut busy = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut round = 0;
    while busy.is_none() && tokio::time::Instant::now() < deadline {
        round += 1;
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let (url, token, acknowledged) = (server.mcp_url(), server.token().to_owned(), acknowledged.clone());
                let key = format!("r{round}/k{i}");
                tokio::spawn(async move {
                    let response = common::http()
                        .post(url)
                        .bearer_auth(token)
                        .json(&json!({"tool": "agentos.mem_set", "input": {"key": key, "value": i}}))
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let retry_after = response.headers().get("retry-after").cloned();
                    let body: Value = response.json().await.unwrap();
                    if status == StatusCode::OK {
                        acknowledged.lock().unwrap().push(key);
                    }
                    (status, retry_after, body)
                })
            })
            .collect();
        for writer in writers {
            let (status, retry_after, body) = writer.await.unwrap();
            match status {
                StatusCode::OK => {}
                StatusCode::SERVICE_UNAVAILABLE => busy = Some((retry_after, body)),
                other => panic!("unexpected {other}: {body}"),
            }
        }
    }
    let (retry_after, body) = busy.expect("a burst of writes past a one-write queue was refused as busy");
    assert_eq!(body["code"], "busy", "{body}");
    assert!(body["error"].as_str().unwrap().contains("retry"), "{body}");
    assert_eq!(retry_after.expect("Retry-After"), "1");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(!acknowledged.is_empty());
    for key in acknowledged {
        let (status, _, body) = server
            .plain(server.token(), "agentos.mem_get", json!({"key": key}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["result"]["found"], true, "{key} was acknowledged, so it is there");
    }
}

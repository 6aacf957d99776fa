//! Who may see and call what, over every front door, against the real `agentos serve`.
//!
//! Attacks tried, and the outcome each must have:
//! - an agent allowed only `agentos.mem_*` lists and calls `agentos.net_http_get` over MCP
//!   streamable HTTP (rmcp client), the plain form of POST /mcp and GET /tools → it is absent
//!   from every listing and its call fails exactly like a tool that does not exist
//! - the same agent calls admin tools (`agentos.mcp_server_add`) and their REST routes → unknown / 404
//! - an agent limited to `allowed.example` fetches `other.example` → refused, naming allowedDomains
//! - self-registration asks for `mcp.*` or `*` → 403; a self-registered agent never sees
//!   proxied `mcp.*` tools; a plain agent tries to register agents → 403
//! - an operator hands out tools it does not hold → 403 naming them
//! - agent B presents agent A's MCP session id (POST and the GET stream) → 404, A unaffected
//! - agent A reads agent B's audit records (GET /api/audit?agentId=B, agentos.audit_query) →
//!   refused; A's own query never contains B's records; the owner sees both
//! - an agent approves its own held call, or a peer lists or approves it → nothing listed / 404;
//!   the owner approves and the call runs as the agent; a denial names who and why

use crate::common;

use crate::common::{Server, agentos_bin, call, http_client_as, structured};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn start(dir: &std::path::Path) -> Server {
    start_with(dir, "")
}

fn start_with(dir: &std::path::Path, extra_toml: &str) -> Server {
    let inner = dir.join("inner");
    let config = dir.join("agentos.toml");
    std::fs::write(
        &config,
        format!(
            "{extra_toml}\n[rate_limits]\nenabled = false\n[[mcp_servers]]\nname = \"inner\"\ncommand = {}\nargs = [\"mcp\", \"--data-dir\", {}]\n",
            serde_json::to_string(&agentos_bin().to_string_lossy()).unwrap(),
            serde_json::to_string(&inner.to_string_lossy()).unwrap(),
        ),
    )
    .unwrap();
    Server::start_secure(&dir.join("data"), &["--config", config.to_str().unwrap()])
}

/// Registers an agent with the owner's token (or self-service with `None`); returns its token.
async fn register(server: &Server, by: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut request = common::http().post(server.url("/register")).json(&body);
    if let Some(token) = by {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn token_for(server: &Server, by: Option<&str>, body: Value) -> String {
    let (status, answer) = register(server, by, body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    answer["token"].as_str().unwrap().to_owned()
}

async fn tool_names(server: &Server, token: Option<&str>) -> Vec<String> {
    let mut request = common::http().get(server.url("/tools"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let body: Value = request.send().await.unwrap().json().await.unwrap();
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn plain(server: &Server, token: &str, tool: &str, input: Value) -> (StatusCode, Value) {
    let response = common::http()
        .post(server.mcp_url())
        .bearer_auth(token)
        .json(&json!({ "tool": tool, "input": input }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Waits until the proxied `inner` server's tools are listed for the owner.
async fn wait_for_inner(server: &Server) {
    for _ in 0..200 {
        if tool_names(server, Some(server.token()))
            .await
            .iter()
            .any(|n| n.starts_with("mcp.inner."))
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the inner server's tools never appeared; log:\n{}", server.log());
}

#[tokio::test]
async fn a_denied_tool_looks_unknown_on_every_front_door() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let owner = server.token().to_owned();
    let token = token_for(
        &server,
        Some(&owner),
        json!({"agentId": "mem-only", "name": "Memory only", "allowedTools": ["agentos.mem_*"]}),
    )
    .await;

    // GET /tools with the token: exactly the memory tools.
    let names = tool_names(&server, Some(&token)).await;
    assert!(!names.is_empty());
    assert!(names.iter().all(|n| n.starts_with("agentos.mem_")), "{names:?}");

    // MCP streamable HTTP with rmcp's client.
    let (client, _) = http_client_as(&server.mcp_url(), &token).await;
    let listed = client.peer().list_all_tools().await.unwrap();
    assert!(listed.iter().all(|t| t.name.starts_with("agentos.mem_")));
    assert!(!listed.iter().any(|t| t.name == "agentos.net_http_get"));
    let denied = client
        .peer()
        .call_tool(common::params(
            "agentos.net_http_get",
            json!({"url": "http://example.com/"}),
        ))
        .await
        .unwrap_err()
        .to_string();
    let unknown = client
        .peer()
        .call_tool(common::params(
            "agentos.no_such_tool",
            json!({"url": "http://example.com/"}),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        denied.replace("agentos.net_http_get", "X"),
        unknown.replace("agentos.no_such_tool", "X"),
        "denied and unknown look the same"
    );
    let stored = structured(&call(&client, "agentos.mem_set", json!({"key": "k", "value": 1})).await);
    assert!(stored.is_object());
    client.cancel().await.unwrap();

    // The plain form of POST /mcp.
    let (status, denied) = plain(
        &server,
        &token,
        "agentos.net_http_get",
        json!({"url": "http://example.com/"}),
    )
    .await;
    let (unknown_status, unknown) = plain(&server, &token, "agentos.no_such_tool", json!({})).await;
    assert_eq!(status, unknown_status);
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        denied["error"].as_str().unwrap().replace("agentos.net_http_get", "X"),
        unknown["error"].as_str().unwrap().replace("agentos.no_such_tool", "X"),
    );

    // Admin tools and their REST routes: unknown, even to an allowed-everything agent.
    let everything = token_for(
        &server,
        Some(&owner),
        json!({"agentId": "everything", "name": "All tools", "allowedTools": ["*"]}),
    )
    .await;
    let (status, _) = plain(
        &server,
        &everything,
        "agentos.mcp_server_add",
        json!({"name": "x", "command": "true"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = common::http()
        .get(server.url("/api/mcp/servers"))
        .bearer_auth(&everything)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "admin REST routes look unknown"
    );
    let response = common::http()
        .get(server.url("/api/mcp/servers"))
        .bearer_auth(&owner)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the owner may");
}

#[tokio::test]
async fn allowed_domains_travel_with_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = token_for(
        &server,
        None,
        json!({"agentId": "fetcher", "name": "Fetcher", "allowedTools": ["agentos.net_*"], "allowedDomains": ["allowed.example"]}),
    )
    .await;
    let (status, answer) = plain(
        &server,
        &token,
        "agentos.net_http_get",
        json!({"url": "http://other.example/x"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let message = answer["error"].as_str().unwrap();
    assert!(message.contains("allowedDomains"), "{message}");
    assert!(message.contains("other.example"), "{message}");
}

#[tokio::test]
async fn registration_grants_at_most_what_the_registrar_holds() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    wait_for_inner(&server).await;

    for tools in [json!(["mcp.inner.*"]), json!(["*"]), json!(["agentos.mem_*", "mcp.*"])] {
        let (status, answer) = register(
            &server,
            None,
            json!({"agentId": "greedy", "name": "G", "allowedTools": tools}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{tools}: {answer}");
    }
    for bad in [
        json!({"agentId": "Bad_Id", "name": "x"}),
        json!({"agentId": "", "name": "x"}),
        json!({"agentId": "ok-id", "name": "x", "allowedTools": ["a*b"]}),
        json!({"agentId": "ok-id", "name": "x", "allowedDomains": ["http://x.example/path"]}),
        json!({"agentId": "ok-id", "name": "x", "unknownField": 1}),
        json!({"agentId": "owner", "name": "x"}),
    ] {
        let (status, answer) = register(&server, None, bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {answer}");
    }

    // Self-service: the reference's defaults, and no proxied tools.
    let (status, registered) = register(&server, None, json!({"agentId": "selfie", "name": "Self"})).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["allowedTools"], json!(["agentos.*"]));
    assert_eq!(registered["expiresIn"], "90d");
    assert!(registered["mcpEndpoint"].as_str().unwrap().ends_with("/mcp"));
    let selfie = registered["token"].as_str().unwrap().to_owned();
    let names = tool_names(&server, Some(&selfie)).await;
    assert!(names.iter().all(|n| n.starts_with("agentos.")), "{names:?}");
    let (status, _) = register(&server, None, json!({"agentId": "selfie", "name": "Again"})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A plain agent cannot register agents: with a token, /register runs agentos.agent_create,
    // a tool for operators that a plain agent does not see.
    let (status, answer) = register(&server, Some(&selfie), json!({"agentId": "child", "name": "C"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("agentos.agent_create"),
        "{answer}"
    );

    // An operator (signed-up account) can, within what it holds.
    let signup: Value = common::http()
        .post(server.url("/api/signup"))
        .json(&json!({"email": "op@example.com", "password": "long enough"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let operator = signup["credentials"]["bearerToken"].as_str().unwrap().to_owned();
    let (status, answer) = register(
        &server,
        Some(&operator),
        json!({"agentId": "op-proxy", "name": "P", "allowedTools": ["mcp.inner.*"]}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("mcp.inner.*"), "{answer}");
    let (status, _) = register(
        &server,
        Some(&operator),
        json!({"agentId": "op-mem", "name": "M", "allowedTools": ["agentos.mem_*"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // The owner may grant proxied tools.
    let proxy = token_for(
        &server,
        Some(server.token()),
        json!({"agentId": "proxy-user", "name": "P", "allowedTools": ["mcp.inner.agentos.time_now"]}),
    )
    .await;
    assert_eq!(
        tool_names(&server, Some(&proxy)).await,
        vec!["mcp.inner.agentos.time_now"]
    );
    let (status, answer) = plain(&server, &proxy, "mcp.inner.agentos.time_now", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn agents_cannot_read_each_others_audit_records() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let alice = token_for(&server, None, json!({"agentId": "alice", "name": "A"})).await;
    let bob = token_for(&server, None, json!({"agentId": "bob", "name": "B"})).await;
    for token in [&alice, &bob] {
        let (status, _) = plain(&server, token, "agentos.time_now", json!({})).await;
        assert_eq!(status, StatusCode::OK);
    }
    let audit = |token: String, query: &'static str| {
        let url = server.url(&format!("/api/audit{query}"));
        async move {
            let response = common::http().get(url).bearer_auth(token).send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // Records are written in batches off the hot path: wait until the owner sees both calls (not
    // just the sign-up steps, which are recorded too), so that alice's view below is read when
    // both of them certainly exist.
    let called = |body: &Value, agent: &str| {
        body["records"].as_array().is_some_and(|records| {
            records
                .iter()
                .any(|r| r["agentId"] == agent && r["tool"] == "agentos.time_now")
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, body) = audit(server.token().to_owned(), "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if called(&body, "alice") && called(&body, "bob") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the owner sees both calls: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, own) = audit(alice.clone(), "").await;
    assert_eq!(status, StatusCode::OK, "{own}");
    let text = own.to_string();
    assert!(text.contains("alice") && text.contains("agentos.time_now"), "{text}");
    assert!(!text.contains("\"bob\""), "alice sees only her records: {text}");
    let (status, refused) = audit(alice.clone(), "?agentId=bob").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, refused) = plain(&server, &alice, "agentos.audit_query", json!({"agentId": "bob"})).await;
    assert_ne!(status, StatusCode::OK, "the tool refuses too: {refused}");
}

/// An agent's call to a proxied tool that needs approval, over MCP streamable HTTP with its own
/// token: held, invisible to other agents, not decidable by the agent itself, approved by the
/// owner, and its result fetched by the agent (allowed only `mcp.inner.*`: the result tool is
/// open to every caller once approvals are configured); a denied call says so.
#[tokio::test]
async fn approvals_hold_an_agents_proxied_call_until_a_human_decides() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), "[approvals]\nrequire = [\"mcp.inner.*\"]\nwait_secs = 1\n");
    wait_for_inner(&server).await;
    let owner = server.token().to_owned();
    let agent = token_for(
        &server,
        Some(&owner),
        json!({"agentId": "asker", "name": "Asker", "allowedTools": ["mcp.inner.*"]}),
    )
    .await;
    let peer = token_for(&server, None, json!({"agentId": "peer", "name": "Peer"})).await;

    let (client, _) = http_client_as(&server.mcp_url(), &agent).await;
    let held = client
        .peer()
        .call_tool(common::params(
            "mcp.inner.agentos.hash",
            json!({"text": "approve me", "algorithm": "sha256"}),
        ))
        .await
        .unwrap();
    assert_eq!(held.is_error, Some(true));
    let message = common::text_of(&held);
    let id = message
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_'))
        .find(|w| w.starts_with("apr_"))
        .unwrap_or_else(|| panic!("an approval id in: {message}"))
        .to_owned();
    assert!(message.contains("agentos.approval_result"), "{message}");

    // Only overseers see it; the agent cannot approve its own call.
    let list = |token: String| {
        let url = server.url("/api/approvals?status=pending");
        async move {
            let response = common::http().get(url).bearer_auth(token).send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, peers_view) = list(peer.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(peers_view["count"], 0, "another agent sees nothing: {peers_view}");
    let (_, owners_view) = list(owner.clone()).await;
    assert_eq!(owners_view["count"], 1, "{owners_view}");
    assert_eq!(owners_view["approvals"][0]["agentId"], "asker");
    assert!(
        owners_view["approvals"][0]["preview"]
            .as_str()
            .unwrap()
            .contains("approve me")
    );
    let decide = |token: String, decision: &'static str| {
        let url = server.url(&format!("/api/approvals/{id}"));
        async move {
            let response = common::http()
                .post(url)
                .bearer_auth(token)
                .json(&json!({"decision": decision, "note": "checked"}))
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, _) = decide(agent.clone(), "approve").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "an agent cannot approve its own call");
    let (status, _) = decide(peer.clone(), "approve").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, decided) = decide(owner.clone(), "approve").await;
    assert_eq!(status, StatusCode::OK, "{decided}");

    // The approved call ran as the agent; the agent fetches its result.
    let mut outcome = Value::Null;
    for _ in 0..100 {
        outcome = common::structured(&call(&client, "agentos.approval_result", json!({ "id": id })).await);
        if outcome["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(outcome["status"], "completed", "{outcome}");
    assert_eq!(
        outcome["result"]["structuredContent"]["algorithm"], "sha256",
        "{outcome}"
    );
    assert_eq!(outcome["result"]["structuredContent"]["bytes"], 10, "{outcome}");

    // A denied call says who denied it and why.
    let held = client
        .peer()
        .call_tool(common::params("mcp.inner.agentos.time_now", json!({})))
        .await
        .unwrap();
    let message = common::text_of(&held);
    let second = message
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_'))
        .find(|w| w.starts_with("apr_"))
        .unwrap()
        .to_owned();
    let response = common::http()
        .post(server.url(&format!("/api/approvals/{second}")))
        .bearer_auth(&owner)
        .json(&json!({"decision": "deny", "note": "not today"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let denied = common::structured(&call(&client, "agentos.approval_result", json!({ "id": second })).await);
    assert_eq!(denied["status"], "denied", "{denied}");
    assert_eq!(denied["note"], "not today");
    client.cancel().await.unwrap();
}

/// An MCP session belongs to the agent that opened it: another agent presenting its id (to read
/// its stream or act inside it) is told it does not exist.
#[tokio::test]
async fn an_mcp_session_cannot_be_used_by_another_agent() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let alice = token_for(&server, None, json!({"agentId": "alice", "name": "A"})).await;
    let mallory = token_for(&server, None, json!({"agentId": "mallory", "name": "M"})).await;
    let post = |token: String, session: Option<String>, body: Value| {
        let url = server.mcp_url();
        async move {
            let mut request = common::http()
                .post(url)
                .bearer_auth(token)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2025-11-25")
                .json(&body);
            if let Some(session) = session {
                request = request.header("mcp-session-id", session);
            }
            request.send().await.unwrap()
        }
    };
    let opened = post(
        alice.clone(),
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert_eq!(opened.status(), StatusCode::OK);
    let session = opened.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let stolen = post(mallory.clone(), Some(session.clone()), list.clone()).await;
    assert_eq!(stolen.status(), StatusCode::NOT_FOUND, "another agent's session");
    let stream = common::http()
        .get(server.mcp_url())
        .bearer_auth(&mallory)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::NOT_FOUND, "nor its stream");
    let own = post(alice, Some(session), list).await;
    assert_eq!(own.status(), StatusCode::OK, "its owner still uses it");
}

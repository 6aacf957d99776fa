//! The JSON-RPC fast path on `/mcp` answers exactly as rmcp's transport does: one corpus of
//! requests (sessions and stateless 2026-07-28, successes and every kind of refusal) goes to a
//! server with the fast path and to one without, and the answers must be the same bytes.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Server, http};

const ACCEPT_BOTH: &str = "application/json, text/event-stream";
const META_2026: &str = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;

/// Which session a request presents.
#[derive(Clone, Copy, Debug)]
enum Session {
    None,
    /// The session alice opened.
    Own,
    /// Alice's session, presented by bob.
    Foreign,
    Unknown,
}

struct Probe {
    name: &'static str,
    session: Session,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// Whether the fast path should answer it (else rmcp does, on both servers).
    fast: bool,
}

fn in_session(name: &'static str, body: Value, fast: bool) -> Probe {
    Probe {
        name,
        session: Session::Own,
        headers: vec![("mcp-protocol-version", "2025-11-25".into())],
        body: body.to_string(),
        fast,
    }
}

/// A stateless 2026-07-28 request with the headers that revision asks for.
fn stateless(name: &'static str, method: &'static str, tool: Option<&str>, params: &str, fast: bool) -> Probe {
    let mut headers = vec![
        ("mcp-protocol-version", "2026-07-28".to_owned()),
        ("mcp-method", method.to_owned()),
    ];
    if let Some(tool) = tool {
        headers.push(("mcp-name", tool.to_owned()));
    }
    Probe {
        name,
        session: Session::None,
        headers,
        body: format!(r#"{{"jsonrpc":"2.0","id":11,"method":"{method}","params":{{{params}}}}}"#),
        fast,
    }
}

fn call(id: Value, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

fn corpus() -> Vec<Probe> {
    let mut probes = vec![
        in_session(
            "session: a call",
            call(json!(2), "agentos.mem_set", json!({"key": "fast", "value": "path"})),
            true,
        ),
        in_session(
            "session: a read",
            call(json!("three"), "agentos.mem_get", json!({"key": "fast"})),
            true,
        ),
        in_session(
            "session: ping",
            json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}),
            true,
        ),
        in_session(
            "session: tools/list",
            json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}),
            true,
        ),
        in_session(
            "session: an unknown tool",
            call(json!(6), "agentos.no_such_tool", json!({})),
            true,
        ),
        in_session(
            "session: invalid arguments",
            call(json!(7), "agentos.mem_set", json!({"key": 5})),
            true,
        ),
        in_session(
            "session: a call held for approval",
            call(json!(8), "agentos.mcp_servers_list", json!({})),
            true,
        ),
        in_session(
            "session: a call with a progress token (streams)",
            json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                   "params": {"name": "agentos.mem_get", "arguments": {"key": "fast"}, "_meta": {"progressToken": "p"}}}),
            false,
        ),
        in_session(
            "session: another method",
            json!({"jsonrpc": "2.0", "id": 10, "method": "resources/list"}),
            false,
        ),
        in_session(
            "session: a batch",
            json!([{"jsonrpc": "2.0", "id": 12, "method": "ping"}]),
            false,
        ),
        in_session(
            "session: a notification",
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}),
            false,
        ),
    ];
    probes.extend([
        in_session(
            "session: members nobody reads",
            json!({"jsonrpc": "2.0", "id": 21, "method": "tools/call", "extra": true,
                   "params": {"name": "agentos.mem_get", "arguments": {"key": "fast"}, "extra": 1}}),
            true,
        ),
        in_session(
            "session: ping with params",
            json!({"jsonrpc": "2.0", "id": 22, "method": "ping", "params": {"_meta": {"note": "x"}}}),
            true,
        ),
        in_session(
            "session: tools/call with null params",
            json!({"jsonrpc": "2.0", "id": 23, "method": "tools/call", "params": null}),
            false,
        ),
        in_session(
            "session: not JSON-RPC 2.0",
            json!({"jsonrpc": "1.0", "id": 24, "method": "ping"}),
            false,
        ),
    ]);
    let mut escaped = in_session("session: an escaped method name", json!(null), false);
    escaped.body = r#"{"jsonrpc":"2.0","id":25,"method":"tools\/list"}"#.into();
    probes.push(escaped);
    let mut broken = in_session("session: not JSON", json!(null), false);
    broken.body = "{".into();
    probes.push(broken);
    let mut no_version = in_session(
        "session: no protocol version header",
        call(json!(13), "agentos.mem_get", json!({"key": "fast"})),
        true,
    );
    no_version.headers.clear();
    probes.push(no_version);
    let mut unknown_version = in_session(
        "session: an unknown protocol version",
        call(json!(14), "agentos.mem_get", json!({})),
        false,
    );
    unknown_version.headers = vec![("mcp-protocol-version", "1999-01-01".into())];
    probes.push(unknown_version);
    let mut json_only = in_session(
        "session: Accept without event streams",
        call(json!(15), "agentos.mem_get", json!({})),
        false,
    );
    json_only.headers.push(("accept", "application/json".into()));
    probes.push(json_only);
    let mut weighted = in_session(
        "session: Accept with weights",
        call(json!(16), "agentos.mem_get", json!({"key": "fast"})),
        false,
    );
    weighted
        .headers
        .push(("accept", "application/json;q=0.9, text/event-stream".into()));
    probes.push(weighted);
    let mut text = in_session(
        "session: not application/json",
        call(json!(17), "agentos.mem_get", json!({})),
        false,
    );
    text.headers.push(("content-type", "text/plain".into()));
    probes.push(text);
    let mut origin = in_session(
        "session: a browser Origin (left to the transport)",
        call(json!(26), "agentos.mem_get", json!({"key": "fast"})),
        false,
    );
    origin.headers.push(("origin", "http://localhost".into()));
    probes.push(origin);
    let mut host = in_session(
        "session: a Host not allowed",
        call(json!(27), "agentos.mem_get", json!({})),
        false,
    );
    host.headers.push(("host", "evil.example".into()));
    probes.push(host);
    let mut unknown = in_session(
        "an unknown session",
        call(json!(18), "agentos.mem_get", json!({})),
        false,
    );
    unknown.session = Session::Unknown;
    probes.push(unknown);
    let mut foreign = in_session(
        "another agent's session",
        call(json!(19), "agentos.mem_get", json!({})),
        false,
    );
    foreign.session = Session::Foreign;
    probes.push(foreign);
    let mut sessionless = in_session(
        "no session, no 2026-07-28 _meta",
        call(json!(20), "agentos.mem_get", json!({})),
        false,
    );
    sessionless.session = Session::None;
    probes.push(sessionless);

    let read = format!(r#""name":"agentos.mem_get","arguments":{{"key":"fast"}},{META_2026}"#);
    probes.extend([
        stateless("stateless: a read", "tools/call", Some("agentos.mem_get"), &read, true),
        stateless("stateless: tools/list", "tools/list", None, META_2026, true),
        stateless("stateless: ping (not in this revision)", "ping", None, META_2026, false),
        stateless(
            "stateless: an unknown tool",
            "tools/call",
            Some("agentos.no_such_tool"),
            &format!(r#""name":"agentos.no_such_tool","arguments":{{}},{META_2026}"#),
            true,
        ),
        stateless(
            "stateless: invalid arguments",
            "tools/call",
            Some("agentos.mem_set"),
            &format!(r#""name":"agentos.mem_set","arguments":{{"key":5}},{META_2026}"#),
            true,
        ),
        stateless(
            "stateless: a call held for approval",
            "tools/call",
            Some("agentos.mcp_servers_list"),
            &format!(r#""name":"agentos.mcp_servers_list","arguments":{{}},{META_2026}"#),
            true,
        ),
        stateless(
            "stateless: Mcp-Name names another tool",
            "tools/call",
            Some("agentos.mem_set"),
            &read,
            false,
        ),
        stateless(
            "stateless: no clientCapabilities in _meta",
            "tools/call",
            Some("agentos.mem_get"),
            r#""name":"agentos.mem_get","arguments":{"key":"fast"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}"#,
            false,
        ),
        stateless(
            "stateless: _meta names another revision",
            "tools/call",
            Some("agentos.mem_get"),
            r#""name":"agentos.mem_get","arguments":{"key":"fast"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25","io.modelcontextprotocol/clientCapabilities":{}}"#,
            false,
        ),
    ]);
    let mut no_method = stateless(
        "stateless: no Mcp-Method",
        "tools/call",
        Some("agentos.mem_get"),
        &read,
        false,
    );
    no_method.headers.retain(|(name, _)| *name != "mcp-method");
    probes.push(no_method);
    let mut no_version = stateless(
        "stateless: no protocol version header",
        "tools/call",
        Some("agentos.mem_get"),
        &read,
        false,
    );
    no_version.headers.retain(|(name, _)| *name != "mcp-protocol-version");
    probes.push(no_version);
    let mut param = stateless(
        "stateless: an unexpected Mcp-Param header",
        "tools/call",
        Some("agentos.mem_get"),
        &read,
        false,
    );
    param.headers.push(("mcp-param-key", "fast".into()));
    probes.push(param);
    let mut encoded = stateless("stateless: an encoded Mcp-Name", "tools/call", None, &read, false);
    encoded
        .headers
        .push(("mcp-name", "=?base64?YWdlbnRvcy5tZW1fZ2V0?=".into()));
    probes.push(encoded);
    probes
}

/// One server of the comparison, with its agents and alice's session.
struct Side {
    server: Server,
    alice: String,
    bob: String,
    session: String,
}

const CONFIG: &str = "[approvals]\nrequire = [\"agentos.mcp_servers_list\"]\nwait_secs = 1\n";

async fn side(dir: &Path, fast: bool) -> Side {
    std::fs::create_dir_all(dir).unwrap();
    let server = Server::start_secure_configured(dir, &format!("{CONFIG}\n[http]\nmcp_fast_path = {fast}\n"));
    let tools = ["agentos.mem_*", "agentos.mcp_servers_list", "agentos.time_sleep"];
    let alice = server.register_agent("alice", &tools).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = server.register_agent("bob", &tools).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "corpus", "version": "1"}}});
    let response = http()
        .post(server.mcp_url())
        .bearer_auth(&alice)
        .header("accept", ACCEPT_BOTH)
        .json(&initialize)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let session = response.headers()["mcp-session-id"].to_str().unwrap().to_owned();
    let initialized = http()
        .post(server.mcp_url())
        .bearer_auth(&alice)
        .header("accept", ACCEPT_BOTH)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .unwrap();
    assert_eq!(initialized.status(), StatusCode::ACCEPTED);
    Side {
        server,
        alice,
        bob,
        session,
    }
}

/// What a client sees of an answer: status, the headers that describe the body, and the body
/// with the ids only one server could have made (approvals) replaced.
async fn send(side: &Side, probe: &Probe) -> (StatusCode, Vec<(String, String)>, String) {
    let token = match probe.session {
        Session::Foreign => &side.bob,
        _ => &side.alice,
    };
    let mut request = http()
        .post(side.server.mcp_url())
        .bearer_auth(token)
        .body(probe.body.clone());
    let mut headers = probe.headers.clone();
    if !headers.iter().any(|(name, _)| *name == "accept") {
        headers.push(("accept", ACCEPT_BOTH.into()));
    }
    if !headers.iter().any(|(name, _)| *name == "content-type") {
        headers.push(("content-type", "application/json".into()));
    }
    match probe.session {
        Session::Own | Session::Foreign => headers.push(("mcp-session-id", side.session.clone())),
        Session::Unknown => headers.push(("mcp-session-id", "not-a-session".into())),
        Session::None => {}
    }
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let described = [
        "content-type",
        "cache-control",
        "x-accel-buffering",
        "allow",
        "mcp-session-id",
    ]
    .iter()
    .filter_map(|name| {
        response
            .headers()
            .get(*name)
            .map(|value| ((*name).to_owned(), value.to_str().unwrap_or_default().to_owned()))
    })
    .collect();
    let body = response.text().await.unwrap();
    (status, described, without_times(&without_approval_ids(&body)))
}

/// Times in milliseconds (13 digits) differ between the servers; each becomes a placeholder.
fn without_times(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut digits = String::new();
    for c in body.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        out.push_str(if digits.len() == 13 { "<ms>" } else { &digits });
        digits.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

/// Approval ids are made per server; each one found is replaced by a placeholder.
fn without_approval_ids(body: &str) -> String {
    let mut body = body.to_owned();
    for marker in [r#""approvalId":""#, r#"\"approvalId\":\""#, r#"{\"id\": \""#] {
        while let Some(start) = body.find(marker).map(|at| at + marker.len()) {
            let end = body[start..]
                .find(['"', '\\'])
                .map_or(body.len(), |length| start + length);
            let id = body[start..end].to_owned();
            if id.is_empty() || id == "<approval>" {
                break;
            }
            body = body.replace(&id, "<approval>");
        }
    }
    body
}

async fn fast_answers(side: &Side) -> u64 {
    let metrics = http()
        .get(side.server.url("/metrics"))
        .bearer_auth(side.server.token())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("agentos_mcp_fast_path_total "))
        .and_then(|count| count.trim().parse().ok())
        .expect("the fast path's counter in /metrics")
}

async fn in_flight(side: &Side) -> u64 {
    let health: Value = http()
        .get(side.server.url("/health"))
        .bearer_auth(side.server.token())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["inFlight"].as_u64().expect("inFlight in /health")
}

/// Starts a 30 s call in alice's session, cancels it with `notifications/cancelled` once it
/// runs, and returns what its POST answered; the call must have stopped.
async fn cancelled_call(side: &Side) -> (StatusCode, Vec<(String, String)>, String) {
    let slow = in_session(
        "a slow call",
        call(json!(77), "agentos.time_sleep", json!({"seconds": 30})),
        true,
    );
    let running = async {
        crate::common::poll(std::time::Duration::from_secs(10), || async {
            (in_flight(side).await > 0).then_some(())
        })
        .await
        .expect("the slow call runs");
        let cancel = in_session(
            "cancel",
            json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 77, "reason": "enough"}}),
            false,
        );
        send(side, &cancel).await
    };
    let (answer, (cancel_status, _, _)) = tokio::join!(send(side, &slow), running);
    assert_eq!(cancel_status, StatusCode::ACCEPTED);
    crate::common::poll(std::time::Duration::from_secs(10), || async {
        (in_flight(side).await == 0).then_some(())
    })
    .await
    .expect("the cancelled call stopped");
    answer
}

/// Pings in alice's session until the fast path answers one (it waits for the session's
/// `notifications/initialized` to be handled, which rmcp does after answering 202); the same
/// number of pings then goes to `other`, so both sessions have numbered as many streams.
async fn until_fast_path_ready(fast: &Side, other: &Side) {
    let ping = in_session("ping", json!({"jsonrpc": "2.0", "id": 0, "method": "ping"}), true);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut pings = 0;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the fast path never took the session"
        );
        let before = fast_answers(fast).await;
        send(fast, &ping).await;
        pings += 1;
        if fast_answers(fast).await > before {
            break;
        }
    }
    for _ in 0..pings {
        send(other, &ping).await;
    }
}

#[tokio::test]
async fn the_fast_path_answers_what_the_transport_answers_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let fast = side(&dir.path().join("fast"), true).await;
    let full = side(&dir.path().join("full"), false).await;
    until_fast_path_ready(&fast, &full).await;
    let mut expected_fast = 0;
    for probe in corpus() {
        let before = fast_answers(&fast).await;
        let through_fast = send(&fast, &probe).await;
        let answered_fast = fast_answers(&fast).await - before;
        let through_full = send(&full, &probe).await;
        assert_eq!(
            through_fast, through_full,
            "{}: the fast path's answer (left) differs from the transport's (right)",
            probe.name
        );
        assert_eq!(
            answered_fast,
            u64::from(probe.fast),
            "{}: answered by the fast path: {answered_fast}",
            probe.name
        );
        expected_fast += u64::from(probe.fast);
    }
    assert!(expected_fast >= 13, "the corpus exercises the fast path");

    // A call the client cancels ends the same way too: its stream closes without an answer.
    let before = fast_answers(&fast).await;
    let cancelled_fast = cancelled_call(&fast).await;
    assert_eq!(
        fast_answers(&fast).await - before,
        1,
        "the slow call took the fast path"
    );
    assert_eq!(cancelled_fast, cancelled_call(&full).await);
    assert_eq!(
        fast_answers(&full).await,
        0,
        "with mcp_fast_path = false nothing takes it"
    );
}

/// The stream number of each answer in a session (the `N` of its `0/N` and `1/N` events).
fn stream_number(body: &str) -> Option<String> {
    let numbers: Vec<&str> = body
        .lines()
        .filter_map(|line| line.strip_prefix("id: "))
        .filter_map(|id| id.split_once('/').map(|(_, stream)| stream))
        .collect();
    let first = numbers.first()?;
    numbers.iter().all(|n| n == first).then(|| (*first).to_owned())
}

#[tokio::test]
async fn concurrent_calls_in_one_session_each_get_their_answer_and_their_own_stream() {
    let dir = tempfile::tempdir().unwrap();
    let fast = side(dir.path(), true).await;
    let full_dir = tempfile::tempdir().unwrap();
    let other = side(full_dir.path(), false).await;
    until_fast_path_ready(&fast, &other).await;
    let before = fast_answers(&fast).await;
    // Calls the fast path answers and listings rmcp answers, all at once in one session.
    let probes: Vec<Probe> = (0..40)
        .map(|n| {
            let body = if n % 4 == 0 {
                json!({"jsonrpc": "2.0", "id": 1000 + n, "method": "resources/list"})
            } else {
                call(json!(1000 + n), "agentos.mem_get", json!({"key": format!("k{n}")}))
            };
            in_session("concurrent", body, n % 4 != 0)
        })
        .collect();
    let answers = futures::future::join_all(probes.iter().map(|probe| send(&fast, probe))).await;
    let mut streams = std::collections::HashSet::new();
    for (n, (status, _, body)) in answers.iter().enumerate() {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert!(
            body.contains(&format!("\"id\":{}", 1000 + n)),
            "answer {n} is its own: {body}"
        );
        let stream = stream_number(body).unwrap_or_else(|| panic!("numbered events: {body}"));
        assert!(streams.insert(stream.clone()), "stream {stream} numbered twice");
    }
    assert_eq!(fast_answers(&fast).await - before, 30, "the calls took the fast path");
}

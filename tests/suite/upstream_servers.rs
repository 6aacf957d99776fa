//! Real upstream MCP servers proxied through the real `agentos` binary (issue 4): the official
//! `@modelcontextprotocol/server-everything` and `@modelcontextprotocol/server-memory` (npm) and
//! `mcp-server-time` (PyPI), installed by `scripts/install-test-deps`, which writes their paths
//! into `.cache/test-env.sh` (`scripts/test` sources it before `cargo test`). Nothing here uses
//! npx or the network.
//!
//! Without those variables every test fails and says how to get them, unless
//! `AGENTOS_SKIP_REAL_UPSTREAMS=1` is set.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::real_servers::{HttpEverything, Upstreams, upstreams};
use crate::common::{Client, Server, call, structured, text_of};
use rmcp::ServiceExt;
use rmcp::model::Tool;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

// ---------------------------------------------------------------- the installed servers

fn s(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_owned()
}

impl Upstreams {
    /// `agentos.mcp_server_add` input for server-everything over stdio.
    fn everything(&self, name: &str) -> Value {
        json!({"name": name, "command": s(&self.node), "args": [s(&self.everything_js), "stdio"]})
    }

    /// server-memory over stdio, keeping its graph in `file`.
    fn memory(&self, name: &str, file: &Path) -> Value {
        json!({"name": name, "command": s(&self.node), "args": [s(&self.memory_js)],
               "env": {"MEMORY_FILE_PATH": s(file)}})
    }

    fn time(&self, name: &str) -> Value {
        json!({"name": name, "command": s(&self.time_cmd), "args": ["--local-timezone", "UTC"]})
    }
}

// ---------------------------------------------------------------- helpers

async fn add_server(client: &Client, spec: Value) -> Vec<String> {
    let added = call(client, "agentos.mcp_server_add", spec.clone()).await;
    let body = structured(&added);
    body["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("mcp_server_add {spec} answered {body}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

async fn plain(server: &Server, body: Value) -> (u16, Value) {
    let response = common::http().post(server.mcp_url()).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("JSON from POST /mcp {body}: {e}: {text}"));
    (status, value)
}

async fn plain_add(server: &Server, spec: Value) -> Vec<String> {
    let (status, body) = plain(server, json!({"tool": "agentos.mcp_server_add", "input": spec})).await;
    assert_eq!(
        status,
        200,
        "mcp_server_add {spec}: {body}\nagentos log:\n{}",
        server.log()
    );
    body["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// A tool result as JSON: its structuredContent, or else its text parsed as JSON.
fn json_result(result: &rmcp::model::CallToolResult) -> Value {
    assert_ne!(result.is_error, Some(true), "tool failed: {}", text_of(result));
    result.structured_content.clone().unwrap_or_else(|| {
        let text = text_of(result);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("expected JSON text ({e}): {text}"))
    })
}

/// The tools of server-everything, listed by rmcp's client connected straight to it over stdio.
async fn everything_tools_directly(up: &Upstreams) -> Vec<Tool> {
    let mut command = tokio::process::Command::new(&up.node);
    command.arg(&up.everything_js).arg("stdio").kill_on_drop(true);
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .expect("start server-everything");
    let client = common::RecordingClient::default()
        .serve(transport)
        .await
        .expect("initialize server-everything directly");
    let tools = client.peer().list_all_tools().await.expect("tools/list directly");
    client.cancel().await.unwrap();
    tools
}

/// Checks that every tool `direct` lists appears in `listed` as `mcp.<server>.<tool>` with an
/// identical input schema, and that every proxied name of that server came from `added`.
fn assert_proxied(server: &str, direct: &[Tool], listed: &[Tool], added: &[String]) {
    assert!(direct.len() >= 10, "server-everything lists its tools: {direct:?}");
    for tool in direct {
        let name = format!("mcp.{server}.{}", tool.name);
        let proxied = listed
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} is not listed by agentos"));
        assert_eq!(
            Value::Object((*proxied.input_schema).clone()),
            Value::Object((*tool.input_schema).clone()),
            "{name} keeps the upstream input schema unchanged"
        );
        assert!(added.contains(&name), "mcp_server_add reported {name}: {added:?}");
    }
}

async fn echo(client: &Client, tool: &str, message: &str) {
    let result = call(client, tool, json!({"message": message})).await;
    assert_ne!(result.is_error, Some(true), "{tool} failed: {}", text_of(&result));
    assert_eq!(text_of(&result), format!("Echo: {message}"), "{tool}");
}

// ---------------------------------------------------------------- processes

/// Pids of live processes whose command line contains `needle` and whose parent chain leads to
/// `ancestor`.
fn descendants_running(ancestor: u32, needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if cmdline(pid).is_some_and(|c| c.contains(needle)) && has_ancestor(pid, ancestor) {
            found.push(pid);
        }
    }
    found
}

fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(String::from_utf8_lossy(&raw).replace('\0', " "))
}

/// (state, parent pid) from /proc/<pid>/stat.
fn stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

fn has_ancestor(pid: u32, ancestor: u32) -> bool {
    let mut current = pid;
    for _ in 0..64 {
        match stat(current) {
            Some((_, ppid)) if ppid == ancestor => return true,
            Some((_, ppid)) if ppid > 1 => current = ppid,
            _ => return false,
        }
    }
    false
}

/// Those of `pids` that still exist running `needle` (a zombie counts: it was not reaped).
fn still_there(pids: &[u32], needle: &str) -> Vec<(u32, char)> {
    pids.iter()
        .filter_map(|&pid| {
            let (state, _) = stat(pid)?;
            // A zombie has an empty cmdline; a reused pid runs something else.
            let same = state == 'Z' || cmdline(pid).is_some_and(|c| c.contains(needle));
            same.then_some((pid, state))
        })
        .collect()
}

async fn assert_gone(pids: &[u32], needle: &str, when: &str) {
    let gone = common::eventually(Duration::from_secs(10), || still_there(pids, needle).is_empty()).await;
    assert!(
        gone,
        "{when}: upstream processes left behind (pid, state): {:?}",
        still_there(pids, needle)
    );
}

/// An `agentos mcp` process started by `stdio_client`, found by its unique data directory.
fn agentos_mcp_pid(data_dir: &Path) -> u32 {
    let needle = s(data_dir);
    let bin = s(&common::agentos_bin());
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| cmdline(pid).is_some_and(|c| c.starts_with(&bin) && c.contains(&needle)))
        .collect();
    assert_eq!(pids.len(), 1, "one agentos mcp for {needle}: {pids:?}");
    pids[0]
}

// ---------------------------------------------------------------- (a) server-everything

#[tokio::test]
async fn everything_over_stdio_keeps_schemas_and_echoes_through_the_stdio_door() {
    let Some(up) = upstreams() else { return };
    let direct = everything_tools_directly(&up).await;
    let dir = tempfile::tempdir().unwrap();
    let (client, _, log) = common::stdio_client(dir.path(), &[]).await;
    let added = add_server(&client, up.everything("everything")).await;
    let listed = client.peer().list_all_tools().await.expect("tools/list");
    assert_proxied("everything", &direct, &listed, &added);
    echo(&client, "mcp.everything.echo", "hello over stdio ✓").await;
    // Another tool with arguments and a computed answer.
    let sum = call(&client, "mcp.everything.get-sum", json!({"a": 2, "b": 40})).await;
    assert!(
        text_of(&sum).contains("42"),
        "get-sum: {sum:?}\nlog:\n{}",
        log.lock().unwrap()
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn everything_over_stdio_keeps_schemas_and_echoes_through_the_http_door() {
    let Some(up) = upstreams() else { return };
    let direct = everything_tools_directly(&up).await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let added = add_server(&client, up.everything("everything")).await;
    let listed = client.peer().list_all_tools().await.expect("tools/list");
    assert_proxied("everything", &direct, &listed, &added);
    echo(&client, "mcp.everything.echo", "hello over HTTP ✓").await;
    // GET /tools lists the same schema.
    let tools: Value = common::http()
        .get(server.url("/tools"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed_echo = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "mcp.everything.echo")
        .expect("GET /tools lists mcp.everything.echo");
    let direct_echo = direct.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(
        listed_echo["inputSchema"],
        Value::Object((*direct_echo.input_schema).clone())
    );
    client.cancel().await.unwrap();
}

/// server-everything over streamable HTTP, straight and as an upstream added by URL (issue 4:
/// `url` for streamable HTTP upstreams).
#[tokio::test]
async fn everything_over_streamable_http_upstream() {
    let Some(up) = upstreams() else { return };
    let everything = HttpEverything::start(&up);
    // Straight to it, to prove the installed server and the exported CLI argument/path work.
    let (direct, _) = common::http_client(&everything.url).await;
    let direct_tools = direct
        .peer()
        .list_all_tools()
        .await
        .expect("tools/list over HTTP directly");
    echo(&direct, "echo", "direct over HTTP").await;
    direct.cancel().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let added = call(
        &client,
        "agentos.mcp_server_add",
        json!({"name": "everything", "url": everything.url}),
    )
    .await;
    assert_ne!(
        added.is_error,
        Some(true),
        "agentos could not add a streamable HTTP upstream by url: {}",
        text_of(&added)
    );
    let added: Vec<String> = structured(&added)["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    let listed = client.peer().list_all_tools().await.expect("tools/list");
    assert_proxied("everything", &direct_tools, &listed, &added);
    echo(&client, "mcp.everything.echo", "through agentos to HTTP").await;
    client.cancel().await.unwrap();
}

// ---------------------------------------------------------------- (b) server-memory

#[tokio::test]
async fn memory_server_creates_and_reads_entities() {
    let Some(up) = upstreams() else { return };
    let dir = tempfile::tempdir().unwrap();
    let graph_file = dir.path().join("memory.jsonl");
    let (client, _, _) = common::stdio_client(&dir.path().join("data"), &[]).await;
    let added = add_server(&client, up.memory("memory", &graph_file)).await;
    for tool in ["create_entities", "create_relations", "read_graph", "search_nodes"] {
        assert!(added.contains(&format!("mcp.memory.{tool}")), "{tool} in {added:?}");
    }
    let created = call(
        &client,
        "mcp.memory.create_entities",
        json!({"entities": [{"name": "agentos", "entityType": "project", "observations": ["routes MCP tools"]}]}),
    )
    .await;
    assert_ne!(created.is_error, Some(true), "create_entities: {}", text_of(&created));

    let graph = json_result(&call(&client, "mcp.memory.read_graph", json!({})).await);
    let entities = graph["entities"]
        .as_array()
        .unwrap_or_else(|| panic!("read_graph: {graph}"));
    let entity = entities
        .iter()
        .find(|e| e["name"] == "agentos")
        .unwrap_or_else(|| panic!("the entity is in the graph: {graph}"));
    assert_eq!(entity["entityType"], "project");
    assert_eq!(entity["observations"], json!(["routes MCP tools"]));
    // The upstream really kept it where it was told to.
    let stored = std::fs::read_to_string(&graph_file).expect("server-memory wrote its file");
    assert!(stored.contains("routes MCP tools"), "{stored}");
    client.cancel().await.unwrap();
}

// ---------------------------------------------------------------- (c) mcp-server-time

#[tokio::test]
async fn time_server_answers_get_current_time() {
    let Some(up) = upstreams() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (client, _, log) = common::stdio_client(dir.path(), &[]).await;
    let added = add_server(&client, up.time("time")).await;
    assert!(added.contains(&"mcp.time.get_current_time".to_owned()), "{added:?}");
    assert!(added.contains(&"mcp.time.convert_time".to_owned()), "{added:?}");
    let result = call(&client, "mcp.time.get_current_time", json!({"timezone": "Asia/Tokyo"})).await;
    let now = json_result(&result);
    assert_eq!(now["timezone"], "Asia/Tokyo", "{now}\nlog:\n{}", log.lock().unwrap());
    let datetime = now["datetime"].as_str().unwrap_or_else(|| panic!("{now}"));
    assert!(datetime.ends_with("+09:00"), "{datetime}");
    // Invalid input is the upstream's error, reported as a failed tool call, not a crash.
    let bad = client
        .peer()
        .call_tool(common::params(
            "mcp.time.get_current_time",
            json!({"timezone": "Not/AZone"}),
        ))
        .await;
    match bad {
        Ok(result) => assert_eq!(result.is_error, Some(true), "{result:?}"),
        Err(error) => assert!(!error.to_string().is_empty()),
    }
    // And the upstream is still there afterwards.
    let again = json_result(&call(&client, "mcp.time.get_current_time", json!({"timezone": "UTC"})).await);
    assert_eq!(again["timezone"], "UTC");
    client.cancel().await.unwrap();
}

// ---------------------------------------------------------------- (d) shared tool names

#[tokio::test]
async fn two_upstreams_with_the_same_tool_names_are_told_apart_by_server() {
    let Some(up) = upstreams() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    let (file1, file2) = (dir.path().join("one.jsonl"), dir.path().join("two.jsonl"));
    let added1 = add_server(&client, up.memory("memory", &file1)).await;
    let added2 = add_server(&client, up.memory("memory2", &file2)).await;
    let strip = |names: &[String], prefix: &str| -> Vec<String> {
        let mut v: Vec<String> = names
            .iter()
            .map(|n| n.strip_prefix(prefix).unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(strip(&added1, "mcp.memory."), strip(&added2, "mcp.memory2."));

    for (server_name, entity) in [("memory", "alpha"), ("memory2", "beta")] {
        let created = call(
            &client,
            &format!("mcp.{server_name}.create_entities"),
            json!({"entities": [{"name": entity, "entityType": "test", "observations": [server_name]}]}),
        )
        .await;
        assert_ne!(created.is_error, Some(true), "{}", text_of(&created));
    }
    let names = |graph: &Value| -> Vec<String> {
        graph["entities"]
            .as_array()
            .unwrap_or_else(|| panic!("{graph}"))
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let graph1 = json_result(&call(&client, "mcp.memory.read_graph", json!({})).await);
    let graph2 = json_result(&call(&client, "mcp.memory2.read_graph", json!({})).await);
    assert_eq!(names(&graph1), ["alpha"]);
    assert_eq!(names(&graph2), ["beta"]);

    // Two server-everything under two names, side by side with the memory servers.
    add_server(&client, up.everything("everything")).await;
    add_server(&client, up.everything("everything2")).await;
    echo(&client, "mcp.everything.echo", "one").await;
    echo(&client, "mcp.everything2.echo", "two").await;

    // Removing one leaves the other working.
    let removed = structured(&call(&client, "agentos.mcp_server_remove", json!({"name": "memory"})).await);
    assert_eq!(removed["removed"], true);
    let listed: Vec<String> = client
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(!listed.iter().any(|n| n.starts_with("mcp.memory.")), "{listed:?}");
    assert!(listed.contains(&"mcp.memory2.read_graph".to_owned()), "{listed:?}");
    let graph2 = json_result(&call(&client, "mcp.memory2.read_graph", json!({})).await);
    assert_eq!(names(&graph2), ["beta"]);
    client.cancel().await.unwrap();
}

// ---------------------------------------------------------------- (e) plain form with a server hint

#[tokio::test]
async fn plain_form_server_hint_resolves_to_the_upstream_tool() {
    let Some(up) = upstreams() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    plain_add(&server, up.everything("everything")).await;

    let (status, body) = plain(
        &server,
        json!({"tool": "echo", "server": "everything", "input": {"message": "plain ✓"}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], "Echo: plain ✓", "{body}");
    // The full name and the `arguments` alias reach the same tool.
    let (status, body) = plain(
        &server,
        json!({"tool": "mcp.everything.echo", "arguments": {"message": "full"}}),
    )
    .await;
    assert_eq!(
        (status, &body["result"]["content"][0]["text"]),
        (200, &json!("Echo: full")),
        "{body}"
    );
    // The upstream schema is enforced before the call: `message` is required.
    let (status, body) = plain(&server, json!({"tool": "echo", "server": "everything", "input": {}})).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_arguments", "{body}");
    // A server that is not connected: unknown tool.
    let (status, body) = plain(
        &server,
        json!({"tool": "echo", "server": "nowhere", "input": {"message": "x"}}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
}

// ---------------------------------------------------------------- (f) no orphaned processes

#[tokio::test]
async fn removing_a_server_or_stopping_agentos_leaves_no_orphaned_process() {
    let Some(up) = upstreams() else { return };
    let needle = s(&up.everything_js);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let agentos = server.pid();

    // Removal stops the upstream.
    plain_add(&server, up.everything("everything")).await;
    let first = descendants_running(agentos, &needle);
    assert!(!first.is_empty(), "server-everything runs under agentos {agentos}");
    let (status, body) = plain(
        &server,
        json!({"tool": "agentos.mcp_server_remove", "input": {"name": "everything"}}),
    )
    .await;
    assert_eq!((status, &body["result"]["removed"]), (200, &json!(true)), "{body}");
    assert_gone(&first, &needle, "after agentos.mcp_server_remove").await;
    let (status, _) = plain(
        &server,
        json!({"tool": "echo", "server": "everything", "input": {"message": "x"}}),
    )
    .await;
    assert_eq!(status, 404, "the removed server's tools are gone");

    // Stopping agentos (SIGTERM, as a service manager does) stops its upstreams.
    plain_add(&server, up.everything("everything")).await;
    plain_add(&server, up.everything("everything2")).await;
    let second = descendants_running(agentos, &needle);
    assert!(second.len() >= 2, "two server-everything under agentos: {second:?}");
    let status = Command::new("kill")
        .args(["-TERM", &agentos.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = common::eventually(Duration::from_secs(15), || {
        stat(agentos).is_none_or(|(state, _)| state == 'Z')
    })
    .await;
    assert!(exited, "agentos exits on SIGTERM; log:\n{}", server.log());
    assert_gone(&second, &needle, "after agentos serve exited on SIGTERM").await;
    drop(server);
    assert_gone(&second, &needle, "after agentos serve was reaped").await;
}

#[tokio::test]
async fn closing_the_stdio_door_leaves_no_orphaned_process() {
    let Some(up) = upstreams() else { return };
    let needle = s(&up.memory_js);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (client, _, _) = common::stdio_client(&data, &[]).await;
    let agentos = agentos_mcp_pid(&data);
    add_server(&client, up.memory("memory", &dir.path().join("m.jsonl"))).await;
    let pids = descendants_running(agentos, &needle);
    assert!(!pids.is_empty(), "server-memory runs under agentos mcp {agentos}");
    // The client closes agentos's stdin: agentos exits and takes its upstream with it.
    client.cancel().await.unwrap();
    let exited = common::eventually(Duration::from_secs(15), || {
        stat(agentos).is_none_or(|(state, _)| state == 'Z')
    })
    .await;
    assert!(exited, "agentos mcp exits when its stdin closes");
    assert_gone(&pids, &needle, "after agentos mcp exited").await;
}

#[tokio::test]
async fn a_killed_agentos_leaves_no_orphaned_process() {
    let Some(up) = upstreams() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&dir.path().join("data"), &[]);
    let agentos = server.pid();
    plain_add(&server, up.everything("everything")).await;
    plain_add(&server, up.memory("memory", &dir.path().join("m.jsonl"))).await;
    let (everything_js, memory_js) = (s(&up.everything_js), s(&up.memory_js));
    let everything = descendants_running(agentos, &everything_js);
    let memory = descendants_running(agentos, &memory_js);
    assert!(
        !everything.is_empty() && !memory.is_empty(),
        "{everything:?} {memory:?}"
    );
    // SIGKILL: agentos gets no chance to clean up, so its children must notice on their own (their
    // stdin closes) or be bound to it (parent-death signal). Once orphaned, reaping them is init's
    // job, so a zombie left to init does not count here.
    server.kill();
    let alive = |pids: &[u32], needle: &str| -> Vec<(u32, char)> {
        still_there(pids, needle)
            .into_iter()
            .filter(|&(_, state)| state != 'Z')
            .collect()
    };
    let gone = common::eventually(Duration::from_secs(10), || {
        alive(&everything, &everything_js).is_empty() && alive(&memory, &memory_js).is_empty()
    })
    .await;
    assert!(
        gone,
        "upstreams outlived a SIGKILLed agentos: {:?} {:?}",
        alive(&everything, &everything_js),
        alive(&memory, &memory_js)
    );
}

/// Progress of server-everything's long-running operation reaches our client through agentos,
/// and a call the client abandons is cancelled upstream (the server's in-flight count goes back
/// to zero on our side at once, and the next call is answered promptly).
#[tokio::test]
async fn upstream_progress_reaches_the_client_and_cancels_go_upstream() {
    let Some(up) = upstreams() else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    plain_add(&server, up.everything("everything")).await;
    let (client, observed) = common::http_client(&server.mcp_url()).await;

    let done = call(
        &client,
        "mcp.everything.trigger-long-running-operation",
        json!({"duration": 1, "steps": 4}),
    )
    .await;
    assert_ne!(done.is_error, Some(true), "{}", text_of(&done));
    let progress = observed.progress.lock().unwrap().clone();
    assert!(
        progress.len() >= 3,
        "progress notifications arrived through agentos: {progress:?}"
    );
    assert!(
        progress.windows(2).all(|w| w[0].progress <= w[1].progress),
        "{progress:?}"
    );

    // A long operation abandoned by the client stops counting as in flight right away.
    let peer = client.peer().clone();
    let slow = tokio::spawn(async move {
        peer.call_tool(common::params(
            "mcp.everything.trigger-long-running-operation",
            json!({"duration": 30, "steps": 30}),
        ))
        .await
    });
    let addr = server.addr.clone();
    let in_flight = move || {
        common::get_json_blocking(&addr, "/health")["inFlight"]
            .as_u64()
            .unwrap()
    };
    assert!(
        common::eventually(Duration::from_secs(10), || in_flight() == 1).await,
        "the call started"
    );
    slow.abort();
    assert!(
        common::eventually(Duration::from_secs(5), || in_flight() == 0).await,
        "the abandoned call was dropped"
    );
    let echo = call(&client, "mcp.everything.echo", json!({"message": "still here"})).await;
    assert!(text_of(&echo).contains("still here"), "{}", text_of(&echo));
    client.cancel().await.unwrap();
}

//! Resources and prompts of a real upstream (`@modelcontextprotocol/server-everything`) proxied
//! through the real `agentos` binary (issue 4): listed under `agentos+mcp://<server>/<uri>` and
//! `mcp.<server>.<prompt>`, read and got through rmcp's client over agentos stdio and HTTP, and
//! compared with what a client connected straight to server-everything gets. A caller whose tool
//! policy does not cover the server sees none of it.
//!
//! The servers come from `scripts/install-test-deps` (source `.cache/test-env.sh` before cargo
//! test); without them every test fails and says so, unless `AGENTOS_SKIP_REAL_UPSTREAMS=1`.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use crate::common::real_servers::{HttpEverything, Upstreams, upstreams};
use crate::common::{Client, Server, call, structured};
use rmcp::ServiceExt;
use rmcp::model::{GetPromptRequestParams, ReadResourceRequestParams, ReadResourceResult, ResourceContents};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

const SERVER: &str = "everything";

impl Upstreams {
    fn stdio_spec(&self) -> Value {
        json!({"name": SERVER, "command": self.node.to_str().unwrap(),
               "args": [self.everything_js.to_str().unwrap(), "stdio"]})
    }

    /// rmcp's client connected straight to server-everything over stdio.
    async fn direct(&self) -> Client {
        let mut command = tokio::process::Command::new(&self.node);
        command.arg(&self.everything_js).arg("stdio").kill_on_drop(true);
        let (transport, _) = TokioChildProcess::builder(command)
            .stderr(Stdio::null())
            .spawn()
            .expect("start server-everything");
        common::RecordingClient::default()
            .serve(transport)
            .await
            .expect("initialize server-everything directly")
    }
}

async fn add_server(client: &Client, spec: Value) {
    let added = call(client, "agentos.mcp_server_add", spec.clone()).await;
    let body = structured(&added);
    assert!(body["tools"].is_array(), "mcp_server_add {spec} answered {body}");
}

fn ours(uri: &str) -> String {
    format!("agentos+mcp://{SERVER}/{uri}")
}

async fn read(client: &Client, uri: &str) -> ReadResourceResult {
    client
        .peer()
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("resources/read {uri}: {e}"))
}

/// (uri, mime type, text or blob) of each content.
fn contents(result: &ReadResourceResult) -> Vec<(String, Option<String>, String)> {
    result
        .contents
        .iter()
        .map(|c| match c {
            ResourceContents::TextResourceContents {
                uri, mime_type, text, ..
            } => (uri.clone(), mime_type.clone(), text.clone()),
            ResourceContents::BlobResourceContents {
                uri, mime_type, blob, ..
            } => (uri.clone(), mime_type.clone(), blob.clone()),
            other => panic!("unexpected contents {other:?}"),
        })
        .collect()
}

/// Reads `original` directly and through agentos; the contents match, under our URI. Dynamic
/// resources embed the time of day to the second, so a mismatch is retried a few times.
async fn assert_reads_alike(client: &Client, direct: &Client, original: &str) {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let theirs = contents(&read(direct, original).await);
        let through = contents(&read(client, &ours(original)).await);
        assert!(!theirs.is_empty(), "{original} has contents");
        let expected: Vec<_> = theirs
            .into_iter()
            .map(|(uri, mime, body)| (ours(&uri), mime, body))
            .collect();
        if through == expected || attempts == 5 {
            assert_eq!(through, expected, "{original} read through agentos");
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Everything a client can do with server-everything's resources and prompts through agentos,
/// compared with a direct client.
async fn resources_and_prompts_match(client: &Client, direct: &Client) {
    // resources/list: every upstream resource, under our URI, otherwise unchanged.
    let theirs = direct
        .peer()
        .list_all_resources()
        .await
        .expect("resources/list directly");
    assert!(!theirs.is_empty(), "server-everything lists resources");
    let listed = client.peer().list_all_resources().await.expect("resources/list");
    let expected: Vec<Value> = theirs
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.uri = ours(&r.uri);
            serde_json::to_value(r).unwrap()
        })
        .collect();
    let listed_json: Vec<Value> = listed.iter().map(|r| serde_json::to_value(r).unwrap()).collect();
    assert_eq!(listed_json, expected, "resources/list through agentos");

    // resources/read of a listed (static) resource.
    let text = theirs
        .iter()
        .find(|r| r.mime_type.as_deref().is_some_and(|m| m.starts_with("text/")))
        .expect("a text resource");
    assert_reads_alike(client, direct, &text.uri).await;

    // resources/templates/list, and a read of a filled template.
    let templates = direct
        .peer()
        .list_all_resource_templates()
        .await
        .expect("templates directly");
    assert!(!templates.is_empty(), "server-everything lists resource templates");
    let listed = client.peer().list_all_resource_templates().await.expect("templates");
    let expected: Vec<String> = templates.iter().map(|t| ours(&t.uri_template)).collect();
    let got: Vec<String> = listed.iter().map(|t| t.uri_template.clone()).collect();
    assert_eq!(got, expected, "resources/templates/list through agentos");
    for template in &templates {
        let filled = template.uri_template.replace("{resourceId}", "7");
        assert!(!filled.contains('{'), "filled {filled}");
        // The client fills our template the same way and gets a URI that routes back.
        let ours_filled = listed
            .iter()
            .find(|t| t.uri_template == ours(&template.uri_template))
            .unwrap()
            .uri_template
            .replace("{resourceId}", "7");
        assert_eq!(ours_filled, ours(&filled));
        assert_reads_alike(client, direct, &filled).await;
    }

    // prompts/list: every upstream prompt as mcp.<server>.<prompt>, otherwise unchanged.
    let prompts = direct.peer().list_all_prompts().await.expect("prompts/list directly");
    assert!(prompts.iter().any(|p| p.name == "args-prompt"), "{prompts:?}");
    let listed = client.peer().list_all_prompts().await.expect("prompts/list");
    let expected: Vec<Value> = prompts
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p.name = format!("mcp.{SERVER}.{}", p.name);
            serde_json::to_value(p).unwrap()
        })
        .collect();
    let listed_json: Vec<Value> = listed.iter().map(|p| serde_json::to_value(p).unwrap()).collect();
    assert_eq!(listed_json, expected, "prompts/list through agentos");

    // prompts/get with and without arguments.
    for (name, arguments) in [
        ("args-prompt", json!({"city": "Lyon", "state": "Rhône"})),
        ("simple-prompt", json!({})),
    ] {
        let params = |name: String| {
            let mut params = GetPromptRequestParams::new(name);
            params.arguments = arguments.as_object().cloned().filter(|a| !a.is_empty());
            params
        };
        let theirs = direct
            .peer()
            .get_prompt(params(name.into()))
            .await
            .expect("prompts/get directly");
        let through = client
            .peer()
            .get_prompt(params(format!("mcp.{SERVER}.{name}")))
            .await
            .unwrap_or_else(|e| panic!("prompts/get {name} through agentos: {e}"));
        assert!(!theirs.messages.is_empty());
        assert_eq!(
            serde_json::to_value(&through.messages).unwrap(),
            serde_json::to_value(&theirs.messages).unwrap(),
            "prompts/get {name} through agentos"
        );
        if name == "args-prompt" {
            let text = serde_json::to_string(&through.messages).unwrap();
            assert!(text.contains("Lyon"), "the arguments reached the upstream: {text}");
        }
    }

    // Unknown resources and prompts are errors, not hangs.
    let unknown = client
        .peer()
        .read_resource(ReadResourceRequestParams::new(ours("demo://nope")))
        .await;
    assert!(unknown.is_err(), "reading an unknown resource fails: {unknown:?}");
    let unknown = client
        .peer()
        .read_resource(ReadResourceRequestParams::new("agentos+mcp://nosuchserver/demo://x"))
        .await;
    assert!(unknown.is_err(), "reading from an unknown server fails: {unknown:?}");
    let unknown = client
        .peer()
        .get_prompt(GetPromptRequestParams::new(format!("mcp.{SERVER}.no-such-prompt")))
        .await;
    assert!(unknown.is_err(), "an unknown prompt fails: {unknown:?}");
}

#[tokio::test]
async fn resources_and_prompts_through_the_stdio_door() {
    let Some(up) = upstreams() else { return };
    let direct = up.direct().await;
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let info = client.peer().peer_info().expect("agentos answered initialize");
    assert!(info.capabilities.resources.is_some(), "agentos declares resources");
    assert!(info.capabilities.prompts.is_some(), "agentos declares prompts");
    // Nothing proxied yet: empty listings, not errors.
    assert!(client.peer().list_all_resources().await.unwrap().is_empty());
    assert!(client.peer().list_all_prompts().await.unwrap().is_empty());
    add_server(&client, up.stdio_spec()).await;
    resources_and_prompts_match(&client, &direct).await;
    client.cancel().await.unwrap();
    direct.cancel().await.unwrap();
}

#[tokio::test]
async fn resources_and_prompts_through_the_http_door_from_an_http_upstream() {
    let Some(up) = upstreams() else { return };
    let direct = up.direct().await;
    let upstream = HttpEverything::start(&up);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    add_server(&client, json!({"name": SERVER, "url": upstream.url})).await;
    resources_and_prompts_match(&client, &direct).await;
    client.cancel().await.unwrap();
    direct.cancel().await.unwrap();
}

#[tokio::test]
async fn resources_and_prompts_through_the_http_door_from_a_stdio_upstream() {
    let Some(up) = upstreams() else { return };
    let direct = up.direct().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    add_server(&client, up.stdio_spec()).await;
    resources_and_prompts_match(&client, &direct).await;
    client.cancel().await.unwrap();
    direct.cancel().await.unwrap();
}

#[tokio::test]
async fn a_caller_not_allowed_the_server_sees_none_of_its_resources_or_prompts() {
    let Some(up) = upstreams() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (client, _, log) = common::stdio_client(dir.path(), &["--allow-tools", "agentos.*"]).await;
    add_server(&client, up.stdio_spec()).await;
    let tools = client.peer().list_all_tools().await.unwrap();
    assert!(
        !tools.iter().any(|t| t.name.starts_with("mcp.")),
        "no proxied tools: {tools:?}"
    );
    let peer = client.peer();
    assert!(
        peer.list_all_resources().await.unwrap().is_empty(),
        "no proxied resources"
    );
    assert!(
        peer.list_all_resource_templates().await.unwrap().is_empty(),
        "no proxied templates"
    );
    assert!(peer.list_all_prompts().await.unwrap().is_empty(), "no proxied prompts");
    let denied = peer
        .read_resource(ReadResourceRequestParams::new(ours(
            "demo://resource/static/document/architecture.md",
        )))
        .await;
    assert!(denied.is_err(), "a denied read fails: {denied:?}");
    let denied = peer
        .get_prompt(GetPromptRequestParams::new(format!("mcp.{SERVER}.simple-prompt")))
        .await;
    assert!(
        denied.is_err(),
        "a denied prompt fails: {denied:?}\nlog:\n{}",
        log.lock().unwrap()
    );
    client.cancel().await.unwrap();
}

/// Issue 10: a resource read and a prompt get pass the pipeline like a tool call. Each is in the
/// audit trail (`resource:<uri>`, the prompt's name), in the traces, counted in the metrics, and
/// held for approval when a rule names it.
#[tokio::test]
async fn reads_and_prompt_gets_are_audited_traced_and_approved_like_calls() {
    let Some(up) = upstreams() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(
        &config,
        "[approvals]\nrequire = [\"resource:agentos+mcp://everything/demo://resource/dynamic/*\"]\nwait_secs = 1\n",
    )
    .unwrap();
    let server = Server::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    let (client, _) = common::http_client(&server.mcp_url()).await;
    add_server(&client, up.stdio_spec()).await;
    let document = "demo://resource/static/document/architecture.md";
    read(&client, &ours(document)).await;
    client
        .peer()
        .get_prompt(GetPromptRequestParams::new(format!("mcp.{SERVER}.simple-prompt")))
        .await
        .expect("prompts/get");
    // A read the approval rule names is held: the client is told which approval it waits for.
    let held = client
        .peer()
        .read_resource(ReadResourceRequestParams::new(ours("demo://resource/dynamic/text/1")))
        .await
        .expect_err("a held read has no contents yet")
        .to_string();
    assert!(held.contains("approval"), "{held}");
    // Approved, the read runs as its caller and its contents become the approval's result.
    let pending = structured(&call(&client, "agentos.approvals_list", json!({"status": "pending"})).await);
    let id = pending["approvals"][0]["id"]
        .as_str()
        .expect("a pending approval")
        .to_owned();
    assert!(
        pending["approvals"][0]["tool"]
            .as_str()
            .unwrap()
            .starts_with("resource:"),
        "{pending}"
    );
    call(
        &client,
        "agentos.approval_decide",
        json!({"id": id, "decision": "approve"}),
    )
    .await;
    let mut outcome = Value::Null;
    for _ in 0..100 {
        outcome = structured(&call(&client, "agentos.approval_result", json!({"id": id})).await);
        if outcome["status"] != "approved" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(outcome["status"], "completed", "{outcome}");
    let uri = &outcome["result"]["content"][0]["resource"]["uri"];
    assert_eq!(uri, &json!(ours("demo://resource/dynamic/text/1")), "{outcome}");

    let record_of = |records: &[Value], tool: &str| records.iter().find(|r| r["tool"] == tool).cloned();
    let resource_name = format!("resource:{}", ours(document));
    let prompt_name = format!("mcp.{SERVER}.simple-prompt");
    let mut found = (None, None, None);
    assert!(
        common::eventually(Duration::from_secs(15), || {
            let records = common::get_json_blocking(&server.addr, "/api/audit?limit=100")["records"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            found = (
                record_of(&records, &resource_name),
                record_of(&records, &prompt_name),
                records.iter().find(|r| r["outcome"] == "approval_pending").cloned(),
            );
            found.0.is_some() && found.1.is_some() && found.2.is_some()
        })
        .await,
        "audit records of the read, the prompt and the held read: {found:?}"
    );
    let (resource, prompt, pending) = found;
    let (resource, prompt, pending) = (resource.unwrap(), prompt.unwrap(), pending.unwrap());
    assert_eq!(
        (resource["outcome"].as_str(), resource["origin"].as_str()),
        (Some("ok"), Some("mcp"))
    );
    assert_eq!(prompt["outcome"], "ok", "{prompt}");
    assert!(pending["tool"].as_str().unwrap().starts_with("resource:"), "{pending}");

    let traces = common::get_json_blocking(&server.addr, "/api/traces?limit=100");
    let traced: Vec<&str> = traces["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tool"].as_str().unwrap())
        .collect();
    assert!(traced.contains(&resource_name.as_str()), "{traced:?}");
    assert!(traced.contains(&prompt_name.as_str()), "{traced:?}");
    let metrics = common::http()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("tool=\"mcp.{SERVER}.resources\"")),
        "reads are counted per server, not per URI"
    );
    client.cancel().await.unwrap();
}

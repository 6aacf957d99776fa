//! Skills under attack and under policy, with the real binary: every way a skill could reach
//! past what it was granted ends that call with a clear error while other calls keep working,
//! host calls run as the calling agent narrowed by the skill (and are audited and traced with
//! the skill named), and publishing refuses what agentos cannot run safely.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::skills_market::{built, install, register, rest};
use crate::common::{self, Server, call, http_client_as, structured, text_of};

/// The manifest and component of a built skill, the manifest edited by `edit`.
fn package(dir: &Path, edit: impl FnOnce(String) -> String) -> Value {
    let manifest = std::fs::read_to_string(dir.join("skill.toml")).unwrap();
    let component = std::fs::read(dir.join("skill.wasm")).unwrap();
    json!({
        "manifest": edit(manifest),
        "component": base64::engine::general_purpose::STANDARD.encode(component),
    })
}

async fn publish(server: &Server, body: Value) -> (StatusCode, Value) {
    rest(server, server.token(), "POST", "/api/skills/publish", Some(body)).await
}

fn start(dir: &Path, extra: &str) -> Server {
    Server::start_secure_configured(
        dir,
        &format!("[rate_limits]\nenabled = false\n[network]\nallow_private_addresses = true\n{extra}"),
    )
}

/// A page with a title, a description and links of every kind, on 127.0.0.1.
async fn page_server() -> String {
    let html = r##"<html><head><title>The &amp; Page</title>
        <meta name="description" content="A test page"></head><body>
        <a href="/about">About us</a> <a href="docs/intro.html">Intro</a>
        <a href="https://example.com/x">Elsewhere</a> <a href="#top">Top</a>
        <a href="mailto:a@example.com">Mail</a></body></html>"##;
    let app = axum::Router::new().route(
        "/dir/page",
        axum::routing::get(move || async move { ([("content-type", "text/html; charset=utf-8")], html) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn use_skill(server: &Server, token: &str, slug: &str, capability: &str, params: Value) -> (StatusCode, Value) {
    let body = json!({"skill_slug": slug, "capability": capability, "params": params});
    rest(server, token, "POST", "/api/skills/use", Some(body)).await
}

fn message(body: &Value) -> String {
    body["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn host_calls_run_as_the_agent_narrowed_by_the_skill_and_are_recorded() {
    let (Some(page_links), Some(probe)) = (built("page-links"), built("probe")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let site = page_server().await;
    let (status, body) = publish(&server, package(&page_links, |m| m)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["capabilities"][0]["tool"], "skill.page-links.read-page");
    let narrow = package(&page_links, |m| {
        m.replace("slug = \"page-links\"", "slug = \"page-links-narrow\"")
            .replace("domains = [\"*\"]", "domains = [\"example.com\"]")
    });
    assert_eq!(publish(&server, narrow).await.0, StatusCode::CREATED);
    assert_eq!(publish(&server, package(&probe, |m| m)).await.0, StatusCode::CREATED);

    let alice = register(&server, "alice", &["*"], &[]).await;
    // Carol may use skills but not the network tool the skill needs.
    let carol = register(
        &server,
        "carol",
        &["agentos.skill_*", "agentos.skills_*", "skill.*"],
        &[],
    )
    .await;
    // Dave may reach example.com only.
    let dave = register(&server, "dave", &["*"], &["example.com"]).await;
    for token in [&alice, &carol, &dave] {
        install(&server, token, "page-links").await;
    }
    install(&server, &alice, "page-links-narrow").await;
    install(&server, &alice, "probe").await;

    let url = format!("{site}/dir/page");
    let (status, read) = use_skill(&server, &alice, "page-links", "read-page", json!({"url": url})).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let page = &read["result"];
    assert_eq!(page["title"], "The & Page");
    assert_eq!(page["description"], "A test page");
    assert_eq!(page["status"], 200);
    let links: Vec<(&str, &str)> = page["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["href"].as_str().unwrap(), l["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        links,
        [
            (format!("{site}/about").as_str(), "About us"),
            (format!("{site}/dir/docs/intro.html").as_str(), "Intro"),
            ("https://example.com/x", "Elsewhere"),
        ]
    );

    // Carol's own policy forbids the tool the skill declares.
    let (status, refused) = use_skill(&server, &carol, "page-links", "read-page", json!({"url": url})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        message(&refused).contains("no tool `agentos.net_http_get` is available to this skill"),
        "{refused}"
    );
    // Dave's allowedDomains do not include the host, whatever the skill allows.
    let (_, refused) = use_skill(&server, &dave, "page-links", "read-page", json!({"url": url})).await;
    assert!(
        message(&refused).contains("is not in this agent's allowedDomains"),
        "{refused}"
    );
    // The skill's own domains do not include it, whatever the agent allows.
    let (_, refused) = use_skill(&server, &alice, "page-links-narrow", "read-page", json!({"url": url})).await;
    assert!(
        message(&refused).contains("not among the domains skill `page-links-narrow@1.0.0` declares"),
        "{refused}"
    );
    // A tool outside the skill's permissions, though Alice may call it herself.
    let (_, refused) = use_skill(
        &server,
        &alice,
        "probe",
        "call",
        json!({"tool": "agentos.mem_get", "inputJson": "{\"key\": \"x\"}"}),
    )
    .await;
    assert!(
        message(&refused).contains("no tool `agentos.mem_get` is available to this skill"),
        "{refused}"
    );
    // Skills cannot call skills.
    let (_, refused) = use_skill(
        &server,
        &alice,
        "probe",
        "call",
        json!({"tool": "skill.probe.greet", "inputJson": "{}"}),
    )
    .await;
    assert!(message(&refused).contains("cannot call another skill"), "{refused}");
    let (status, allowed) = use_skill(
        &server,
        &alice,
        "probe",
        "call",
        json!({"tool": "agentos.time_now", "inputJson": "{}"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{allowed}");
    assert!(
        allowed["result"]["result"].as_str().unwrap().contains("iso"),
        "{allowed}"
    );

    // The host call is in Alice's audit trail, with the skill named.
    let audited = common::poll(Duration::from_secs(10), || async {
        let (_, body) = rest(&server, &alice, "GET", "/api/audit?tool=agentos.net_http_get", None).await;
        let records = body["records"].as_array().cloned().unwrap_or_default();
        (records.len() >= 2).then_some(records)
    })
    .await
    .expect("the host calls were audited");
    let ok = audited
        .iter()
        .find(|r| r["outcome"] == "ok")
        .expect("a successful host call");
    assert_eq!(ok["agentId"], "alice");
    assert_eq!(ok["skill"], "page-links@1.0.0");
    let refused = audited
        .iter()
        .find(|r| r["skill"] == "page-links-narrow@1.0.0")
        .unwrap();
    assert_eq!(refused["outcome"], "error");
    // Carol's call never reached a tool she may not use: it is hers, as an unknown tool.
    let (_, carols) = rest(&server, server.token(), "GET", "/api/audit?agentId=carol", None).await;
    assert!(
        carols["records"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["tool"] == "agentos.net_http_get"
                && r["outcome"] == "unknown_tool"
                && r["skill"] == "page-links@1.0.0"),
        "{carols}"
    );

    // And in the trace of the skill's call (made through /api/skills/use: agentos.skill_use),
    // as a call inside the skill's tool span.
    let trace = common::poll(Duration::from_secs(10), || async {
        let (_, body) = rest(&server, &alice, "GET", "/api/traces?tool=agentos.skill_use", None).await;
        for summary in body["traces"].as_array()? {
            let id = summary["traceId"].as_str()?;
            let (_, trace) = rest(&server, &alice, "GET", &format!("/api/traces/{id}"), None).await;
            let text = trace.to_string();
            if text.contains("skill.page-links.read-page") && text.contains("\"outcome\":\"ok\"") {
                return Some(trace);
            }
        }
        None
    })
    .await
    .expect("the skill's call was traced");
    let text = trace.to_string();
    assert!(text.contains("\"skill\":\"page-links@1.0.0\""), "{trace}");
    assert!(text.contains("agentos.net_http_get"), "{trace}");
}

async fn greet(client: &common::Client) {
    let result = call(client, "skill.probe.greet", json!({"name": "Ada", "mood": "calm"})).await;
    assert_eq!(structured(&result)["text"], "Hello, Ada!");
}

#[tokio::test]
async fn each_attack_ends_its_own_call_and_nothing_else() {
    let Some(probe) = built("probe") else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    assert_eq!(publish(&server, package(&probe, |m| m)).await.0, StatusCode::CREATED);
    let alice = register(&server, "alice", &["*"], &[]).await;
    let bob = register(&server, "bob", &["*"], &[]).await;
    install(&server, &alice, "probe").await;
    install(&server, &bob, "probe").await;
    let (client, _) = http_client_as(&server.mcp_url(), &alice).await;
    let (bob_client, _) = http_client_as(&server.mcp_url(), &bob).await;

    let attacks = [
        ("spin", json!({}), "used all its fuel"),
        ("hog", json!({"megabytes": 512}), "more than 67108864 bytes of memory"),
        ("recurse", json!({"depth": 10_000_000}), "recursed too deeply"),
        (
            "big-output",
            json!({"bytes": 2_000_000}),
            "more than 1048576 (limits.output_bytes)",
        ),
        ("call-many", json!({"times": 1000}), "more than 100 host calls"),
        ("fail", json!({"message": "on purpose"}), "on purpose"),
    ];
    for (capability, input, expected) in attacks {
        let name = format!("skill.probe.{capability}");
        // Bob's calls run beside the attack and are unharmed.
        let (attacked, ()) = tokio::join!(call(&client, &name, input), greet(&bob_client));
        assert_eq!(attacked.is_error, Some(true), "{capability}: {attacked:?}");
        assert!(
            text_of(&attacked).contains(expected),
            "{capability}: {}",
            text_of(&attacked)
        );
        greet(&client).await;
    }
    let health = common::http().get(server.url("/health")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test]
async fn publishing_refuses_what_cannot_run_and_a_tampered_component_is_not_loaded() {
    let (Some(probe), Some(forbidden)) = (built("probe"), built("forbidden")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let alice = register(&server, "alice", &["*"], &[]).await;

    let (status, body) = publish(&server, package(&forbidden, |m| m)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        message(&body).contains("imports `agentos-test:forbidden/raw-socket`"),
        "{body}"
    );

    // `wasi:http` would reach the network around the registry: refused, by name. (A component
    // in the text format, which the compiler reads as well as the binary one.)
    let mut http = package(&probe, |m| m);
    http["component"] = json!(base64::engine::general_purpose::STANDARD.encode(
        r#"(component
             (import "wasi:http/outgoing-handler@0.2.0" (instance (export "ping" (func (result u32))))))"#
    ));
    let (status, body) = publish(&server, http).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        message(&body).contains("imports `wasi:http/outgoing-handler@0.2.0`"),
        "{body}"
    );

    let mut garbage = package(&probe, |m| m);
    garbage["component"] = json!(base64::engine::general_purpose::STANDARD.encode(b"\0asm not really"));
    let (status, body) = publish(&server, garbage).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("could not be compiled"), "{body}");

    let mut not_base64 = package(&probe, |m| m);
    not_base64["component"] = json!("***");
    let (status, body) = publish(&server, not_base64).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("not base64"), "{body}");

    let (status, body) = publish(
        &server,
        package(&probe, |m| m.replace("slug = \"probe\"", "slug = \"Bad_Slug\"")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(message(&body).contains("`slug`"), "{body}");
    let (_, body) = publish(
        &server,
        package(&probe, |m| m.replace("[capabilities.greet]", "[capabilities.wave]")),
    )
    .await;
    assert!(
        message(&body).contains("`wave`: the component exports no function"),
        "{body}"
    );
    let (_, body) = publish(&server, package(&probe, |m| format!("{m}\nsurprise = 1\n"))).await;
    assert!(message(&body).contains("unknown field"), "{body}");

    // Agents cannot publish: the route's tool does not exist for them.
    let (status, _) = rest(
        &server,
        &alice,
        "POST",
        "/api/skills/publish",
        Some(package(&probe, |m| m)),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Nothing refused is in the catalog.
    let (_, listed) = rest(&server, &alice, "GET", "/api/skills", None).await;
    assert_eq!(listed["pagination"]["total"], 0, "{listed}");

    // A component changed on disk after publishing is refused when it is loaded.
    let (status, body) = publish(&server, package(&probe, |m| m)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sha256 = body["sha256"].as_str().unwrap();
    let stored = dir.path().join(format!("data/skills/components/{sha256}.wasm"));
    let mut bytes = std::fs::read(&stored).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&stored, bytes).unwrap();
    install(&server, &alice, "probe").await;
    let (status, body) = use_skill(&server, &alice, "probe", "greet", json!({"name": "A", "mood": "calm"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(message(&body).contains("has been changed on disk"), "{body}");
}

#[tokio::test]
async fn a_component_larger_than_the_cap_is_refused_before_it_is_read() {
    let Some(probe) = built("probe") else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "[skills]\nmax_component_bytes = 1048576\n");
    let (status, body) = publish(&server, package(&probe, |m| m)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(message(&body).contains("limited to"), "{body}");
}

fn agentos(args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::agentos_bin())
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap()
}

#[tokio::test]
async fn with_required_signatures_only_skills_signed_by_a_trusted_key_are_published() {
    let Some(probe) = built("probe") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (trusted_key, stranger_key) = (dir.path().join("acme.key"), dir.path().join("stranger.key"));
    let made = agentos(&[
        "skills",
        "keygen",
        "--out",
        trusted_key.to_str().unwrap(),
        "--name",
        "acme",
    ]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let printed = String::from_utf8_lossy(&made.stdout).into_owned();
    let trust_line = printed
        .lines()
        .find(|l| l.starts_with("trusted_keys"))
        .unwrap()
        .to_owned();
    assert!(trust_line.contains("\"acme:"), "{printed}");
    assert!(
        agentos(&["skills", "keygen", "--out", stranger_key.to_str().unwrap()])
            .status
            .success()
    );
    let again = agentos(&["skills", "keygen", "--out", trusted_key.to_str().unwrap()]);
    assert!(!again.status.success(), "an existing key file is never overwritten");

    let server = start(
        dir.path(),
        &format!("[skills]\nrequire_signatures = true\n{trust_line}\n"),
    );
    let (status, body) = publish(&server, package(&probe, |m| m)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(message(&body).contains("requires signed skills"), "{body}");

    // Signed by a stranger: refused.
    let copy = dir.path().join("probe");
    std::fs::create_dir_all(&copy).unwrap();
    for file in ["skill.toml", "skill.wasm"] {
        std::fs::copy(probe.join(file), copy.join(file)).unwrap();
    }
    let sign = |key: &Path| agentos(&["skills", "sign", copy.to_str().unwrap(), "--key", key.to_str().unwrap()]);
    assert!(sign(&stranger_key).status.success());
    let signed = |edit: fn(String) -> String| {
        let mut body = package(&copy, edit);
        body["signature"] = json!(std::fs::read_to_string(copy.join("skill.sig")).unwrap().trim());
        body
    };
    let (status, body) = publish(&server, signed(|m| m)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(message(&body).contains("does not verify"), "{body}");

    // Signed by the trusted key, but the manifest changed after signing: refused.
    assert!(sign(&trusted_key).status.success());
    let (status, body) = publish(&server, signed(|m| m.replace("Sandbox probe", "Sandbox probe!"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // As signed: published, and the key named.
    let (status, body) = publish(&server, signed(|m| m)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["signed_by"], "acme");
}

#[tokio::test]
async fn a_component_that_reaches_for_files_environment_and_arguments_through_wasi_gets_nothing() {
    let Some(escape) = built("wasi-escape") else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), "");
    let (status, body) = publish(&server, package(&escape, |m| m)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let alice = register(&server, "alice", &["*"], &[]).await;
    install(&server, &alice, "wasi-escape").await;
    let (client, _) = http_client_as(&server.mcp_url(), &alice).await;
    let answer = |result: rmcp::model::CallToolResult| structured(&result)["result"].clone();

    let secret = dir.path().join("host-secret.txt");
    std::fs::write(&secret, "host data").unwrap();
    for path in [
        "/etc/passwd",
        secret.to_str().unwrap(),
        "Cargo.toml",
        "../../etc/hostname",
    ] {
        let read = answer(call(&client, "skill.wasi-escape.read-file", json!({"path": path})).await);
        assert!(read.as_str().unwrap().starts_with("error:"), "{path}: {read}");
    }
    for path in ["/", ".", ".."] {
        let listed = answer(call(&client, "skill.wasi-escape.list-dir", json!({"path": path})).await);
        assert!(listed.as_str().unwrap().starts_with("error:"), "{path}: {listed}");
    }
    let planted = dir.path().join("planted.txt");
    let written = answer(
        call(
            &client,
            "skill.wasi-escape.write-file",
            json!({"path": planted.to_str().unwrap()}),
        )
        .await,
    );
    assert!(written.as_str().unwrap().starts_with("error:"), "{written}");
    assert!(!planted.exists(), "the skill wrote a file on the host");
    // No environment (the server's has PATH, HOME, its secrets key variable...) and no arguments.
    assert_eq!(answer(call(&client, "skill.wasi-escape.env", json!({})).await), "empty");
    assert_eq!(answer(call(&client, "skill.wasi-escape.args", json!({})).await), 0);
    // What the sandbox does give: clocks.
    let now = answer(call(&client, "skill.wasi-escape.clock", json!({})).await);
    assert!(now.as_u64().unwrap() > 0, "{now}");
}

#[tokio::test]
async fn a_python_component_that_imports_all_of_wasi_gets_no_socket_name_or_file() {
    let Some(escape) = built("py-escape") else { return };
    let dir = tempfile::tempdir().unwrap();
    // Publishing compiles the whole CPython component (~30 s alone on 2 cores, over a minute
    // while the speech tests share the cores): the default call deadline would cut it short.
    let server = start(dir.path(), "[limits]\ncall_timeout_secs = 300\n");
    let (status, body) = publish(&server, package(&escape, |m| m)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let alice = register(&server, "alice", &["*"], &[]).await;
    install(&server, &alice, "py-escape").await;
    let (client, _) = http_client_as(&server.mcp_url(), &alice).await;
    let answer = |result: rmcp::model::CallToolResult| structured(&result)["result"].as_str().unwrap().to_owned();

    // A listener the skill would like to reach: it must never see a connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let connected = answer(
        call(
            &client,
            "skill.py-escape.tcp-connect",
            json!({"host": "127.0.0.1", "port": port}),
        )
        .await,
    );
    assert!(connected.starts_with("error:"), "{connected}");
    assert!(listener.accept().is_err(), "the skill reached the listener");
    let resolved = answer(call(&client, "skill.py-escape.resolve", json!({"host": "localhost"})).await);
    assert!(resolved.starts_with("error:"), "{resolved}");
    let read = answer(call(&client, "skill.py-escape.read-file", json!({"path": "/etc/passwd"})).await);
    assert!(read.starts_with("error:"), "{read}");
    let planted = dir.path().join("planted-by-python.txt");
    let written = answer(
        call(
            &client,
            "skill.py-escape.write-file",
            json!({"path": planted.to_str().unwrap()}),
        )
        .await,
    );
    assert!(written.starts_with("error:"), "{written}");
    assert!(!planted.exists());
    assert_eq!(answer(call(&client, "skill.py-escape.env", json!({})).await), "empty");
}

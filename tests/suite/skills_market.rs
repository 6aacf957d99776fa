//! Skills end to end, with the real binary: the probe skill (`tests/skills/probe`, JavaScript,
//! built from source by `scripts/build-skills`) published with `agentos skills publish`,
//! installed by one agent and called through every front door (MCP over HTTP and stdio, the
//! plain form, `/api/skills/use`); another agent sees nothing until it installs it; uninstall
//! takes it out of live sessions; installs survive a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, Server, agentos_bin, call, http_client_as, stdio_client, structured, text_of};

/// The directory `scripts/build-skills` built skill `name` into, or `None` when skill builds
/// are skipped on purpose (`AGENTOS_SKIP_SKILL_BUILDS`).
pub fn built(name: &str) -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("AGENTOS_TEST_SKILLS") else {
        assert!(
            std::env::var_os("AGENTOS_SKIP_SKILL_BUILDS").is_some(),
            "AGENTOS_TEST_SKILLS is not set: run scripts/install-test-deps and scripts/build-skills, then \
             `. .cache/test-env.sh` before cargo test (scripts/test does all three), or set \
             AGENTOS_SKIP_SKILL_BUILDS=1 to skip these tests"
        );
        return None;
    };
    Some(Path::new(&dir).join(name))
}

/// `agentos skills publish <dir>` into `data_dir`; its stdout, or its stderr as the error.
pub fn publish_cli(data_dir: &Path, dir: &Path) -> Result<String, String> {
    let output = std::process::Command::new(agentos_bin())
        .args(["skills", "publish", "--data-dir"])
        .arg(data_dir)
        .arg(dir)
        .env("RUST_BACKTRACE", "0")
        .current_dir(common::working_dir(data_dir))
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// A server with rate limits off (the attack tests make many calls quickly).
pub fn start(dir: &Path) -> Server {
    Server::start_secure_configured(dir, "[rate_limits]\nenabled = false\n")
}

pub async fn rest(server: &Server, token: &str, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let client = common::http();
    let request = match method {
        "GET" => client.get(server.url(path)),
        _ => client.post(server.url(path)),
    };
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.bearer_auth(token).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Registers `agent` allowed `tools` (and `domains`, when given); returns its token.
pub async fn register(server: &Server, agent: &str, tools: &[&str], domains: &[&str]) -> String {
    let response = common::http()
        .post(server.url("/register"))
        .bearer_auth(server.token())
        .json(&json!({"agentId": agent, "name": agent, "allowedTools": tools, "allowedDomains": domains}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "registering {agent}");
    let body: Value = response.json().await.unwrap();
    body["token"].as_str().unwrap().to_owned()
}

pub async fn install(server: &Server, token: &str, skill: &str) -> Value {
    let (status, body) = rest(
        server,
        token,
        "POST",
        "/api/skills/install",
        Some(json!({"skill_id": skill})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "install {skill}: {body}");
    body
}

async fn tool_names(client: &common::Client) -> Vec<String> {
    client
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect()
}

async fn lists_eventually(client: &common::Client, name: &str, present: bool) -> bool {
    common::poll(Duration::from_secs(10), || async {
        (tool_names(client).await.iter().any(|n| n == name) == present).then_some(())
    })
    .await
    .is_some()
}

#[tokio::test]
async fn an_installed_skill_is_one_agents_tool_through_every_door() {
    let Some(probe) = built("probe") else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let printed = publish_cli(&data, &probe).expect("publish the probe");
    assert!(printed.contains("published probe 0.1.0"), "{printed}");
    assert!(printed.contains("skill.probe.greet"), "{printed}");
    let again = publish_cli(&data, &probe).unwrap_err();
    assert!(again.contains("not newer than the published 0.1.0"), "{again}");

    let server = start(dir.path());
    let alice = register(&server, "alice", &["*"], &[]).await;
    let bob = register(&server, "bob", &["*"], &[]).await;

    // The marketplace is public.
    let listed: Value = common::http()
        .get(server.url("/api/skills?search=sandbox"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["pagination"],
        json!({"page": 1, "limit": 50, "total": 1}),
        "{listed}"
    );
    let skill_id = listed["skills"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed["skills"][0]["latest_version"], "0.1.0");

    let (alice_mcp, alice_seen) = http_client_as(&server.mcp_url(), &alice).await;
    let (bob_mcp, _) = http_client_as(&server.mcp_url(), &bob).await;
    assert!(!tool_names(&alice_mcp).await.iter().any(|n| n.starts_with("skill.")));

    let installed = install(&server, &alice, &skill_id).await;
    assert_eq!(installed["new_install"], true, "{installed}");
    assert!(
        installed["installed"]["tools"]
            .as_array()
            .unwrap()
            .contains(&json!("skill.probe.greet")),
        "{installed}"
    );
    // Alice's live session is told, and lists it; Bob's does not.
    let told = common::eventually(Duration::from_secs(10), || *alice_seen.list_changed.lock().unwrap() > 0).await;
    assert!(told, "no list_changed after the install");
    assert!(lists_eventually(&alice_mcp, "skill.probe.greet", true).await);
    assert!(!tool_names(&bob_mcp).await.iter().any(|n| n.starts_with("skill.")));

    // MCP over HTTP.
    let greeting = call(&alice_mcp, "skill.probe.greet", json!({"name": "Ada", "mood": "loud"})).await;
    assert_eq!(
        structured(&greeting),
        json!({"text": "Hello, Ada!", "nameLength": 3, "shout": "HELLO, ADA!"})
    );
    assert_eq!(
        greeting.meta.as_ref().and_then(|m| m.0.get("agentos/skillLog")),
        Some(&json!("info: greeting Ada\n")),
        "the skill's log comes back with its result"
    );
    // A result that is not a record is answered under `result`.
    let described = call(
        &alice_mcp,
        "skill.probe.describe",
        json!({"shape": "dot", "tags": [], "pair": [1, false]}),
    )
    .await;
    assert_eq!(structured(&described), json!({"result": "dot [] 1 false"}));

    // The plain form, by the strict spelling too.
    let (status, _, body) = server
        .plain(&alice, "skill_probe_greet", json!({"name": "Bo", "mood": "calm"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["text"], "Hello, Bo!");

    // /api/skills/use, the reference's shape.
    let (status, used) = rest(
        &server,
        &alice,
        "POST",
        "/api/skills/use",
        Some(json!({"skill_slug": "probe", "capability": "greet", "params": {"name": "Cy", "mood": "calm"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{used}");
    assert_eq!(used["success"], true);
    assert_eq!(used["result"]["text"], "Hello, Cy!");
    assert!(used["execution_time_ms"].as_f64().unwrap() > 0.0, "{used}");
    let (status, bad) = rest(
        &server,
        &alice,
        "POST",
        "/api/skills/use",
        Some(json!({"skill_slug": "probe", "capability": "greet", "params": {"name": 7}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

    // MCP over stdio, as Alice, on the same data directory.
    let (stdio, _, _) = stdio_client(&data, &["--token", &alice]).await;
    let over_stdio = call(&stdio, "skill.probe.greet", json!({"name": "Di", "mood": "calm"})).await;
    assert_eq!(structured(&over_stdio)["text"], "Hello, Di!");
    stdio.cancel().await.unwrap();

    // Bob cannot call what he has not installed: it does not exist for him.
    let (status, _, body) = server
        .plain(&bob, "skill.probe.greet", json!({"name": "Bob", "mood": "calm"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = rest(
        &server,
        &bob,
        "POST",
        "/api/skills/use",
        Some(json!({"skill_slug": "probe", "capability": "greet", "params": {"name": "B", "mood": "calm"}})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("agentos.skill_install"),
        "{body}"
    );
    install(&server, &bob, "probe").await;
    assert!(lists_eventually(&bob_mcp, "skill.probe.greet", true).await);

    let (status, mine) = rest(&server, &alice, "GET", "/api/skills/installed", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(mine["installed_skills"][0]["skill"]["slug"], "probe", "{mine}");
    assert_eq!(mine["installed_skills"][0]["version"], "0.1.0");
    let (_, popular) = rest(&server, &alice, "GET", "/api/skills", None).await;
    assert_eq!(popular["skills"][0]["installs"], 2);

    // Uninstall: gone from Alice's live session, still Bob's.
    let (status, body) = rest(
        &server,
        &alice,
        "POST",
        "/api/skills/uninstall",
        Some(json!({"skill_id": "probe"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(lists_eventually(&alice_mcp, "skill.probe.greet", false).await);
    let gone = alice_mcp
        .peer()
        .call_tool(common::params(
            "skill.probe.greet",
            json!({"name": "A", "mood": "calm"}),
        ))
        .await;
    assert!(
        gone.is_err() || gone.as_ref().is_ok_and(|r| r.is_error == Some(true)),
        "{gone:?}"
    );
    let (status, _) = rest(
        &server,
        &alice,
        "POST",
        "/api/skills/uninstall",
        Some(json!({"skill_id": "probe"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Installs, the catalog and compiled components survive a restart.
    drop((alice_mcp, bob_mcp));
    drop(server);
    let server = start(dir.path());
    let (bob_mcp, _) = http_client_as(&server.mcp_url(), &bob).await;
    assert!(tool_names(&bob_mcp).await.contains(&"skill.probe.greet".to_owned()));
    let after = call(&bob_mcp, "skill.probe.greet", json!({"name": "Eve", "mood": "calm"})).await;
    assert_eq!(structured(&after)["text"], "Hello, Eve!", "{}", text_of(&after));
}

#[tokio::test]
async fn the_marketplace_lists_searches_sorts_and_pages_fifty_skills() {
    let Some(probe) = built("probe") else { return };
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let manifest = std::fs::read_to_string(probe.join("skill.toml")).unwrap();
    let component = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        std::fs::read(probe.join("skill.wasm")).unwrap(),
    );
    // Fifty skills from the probe under other slugs (one component, compiled once), in three
    // categories and two authors; the names count down so name order is not publish order.
    for n in 0..50 {
        let category = ["web", "text", "data"][n % 3];
        let author = if n % 2 == 0 { "Ada" } else { "Bob" };
        let edited = manifest
            .replace("slug = \"probe\"", &format!("slug = \"skill-{n:02}\""))
            .replace("name = \"Sandbox probe\"", &format!("name = \"Skill {:02}\"", 49 - n))
            .replace("author = \"agentos tests\"", &format!("author = \"{author}\""))
            .replace("category = \"testing\"", &format!("category = \"{category}\""))
            .replace(
                "description = \"Pushes",
                &format!(
                    "tags = [\"{}\"]\ndescription = \"Pushes",
                    if n == 7 { "lucky" } else { "plain" }
                ),
            );
        let body = json!({"manifest": edited, "component": component});
        let (status, answer) = rest(&server, server.token(), "POST", "/api/skills/publish", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "skill {n}: {answer}");
    }
    let get = |path: &'static str| {
        let url = server.url(path);
        async move {
            let response = common::http().get(url).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    let slugs = |page: &Value| -> Vec<String> {
        page["skills"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["slug"].as_str().unwrap().to_owned())
            .collect()
    };

    let first = get("/api/skills").await;
    assert_eq!(first["pagination"], json!({"page": 1, "limit": 50, "total": 50}));
    assert_eq!(slugs(&first).len(), 50);
    let third = get("/api/skills?limit=20&page=3&sort=name").await;
    assert_eq!(third["pagination"], json!({"page": 3, "limit": 20, "total": 50}));
    // By name: "Skill 00" is skill-49, ..., so page 3 of 20 holds names 40-49: skill-09 .. skill-00.
    assert_eq!(
        slugs(&third),
        (0..10).rev().map(|n| format!("skill-{n:02}")).collect::<Vec<_>>()
    );
    let past = get("/api/skills?limit=20&page=4").await;
    assert!(slugs(&past).is_empty());
    assert_eq!(past["pagination"]["total"], 50);

    let web = get("/api/skills?category=web").await;
    assert_eq!(web["pagination"]["total"], 17);
    assert!(web["skills"].as_array().unwrap().iter().all(|s| s["category"] == "web"));
    let ada_text = get("/api/skills?category=text&author=ada").await;
    assert_eq!(ada_text["pagination"]["total"], 8, "{ada_text}");
    let lucky = get("/api/skills?search=lucky").await;
    assert_eq!(slugs(&lucky), ["skill-07"]);
    let both_words = get("/api/skills?search=sandbox%20skill-1").await;
    assert_eq!(both_words["pagination"]["total"], 10);

    let newest = get("/api/skills?sort=newest&limit=3").await;
    assert_eq!(slugs(&newest), ["skill-49", "skill-48", "skill-47"]);
    // Popular: most installed first.
    let alice = register(&server, "alice", &["*"], &[]).await;
    let bob = register(&server, "bob", &["*"], &[]).await;
    install(&server, &alice, "skill-31").await;
    install(&server, &bob, "skill-31").await;
    install(&server, &alice, "skill-05").await;
    let popular = get("/api/skills?sort=popular&limit=2").await;
    assert_eq!(slugs(&popular), ["skill-31", "skill-05"]);
    assert_eq!(popular["skills"][0]["installs"], 2);

    for bad in [
        "/api/skills?page=0",
        "/api/skills?limit=101",
        "/api/skills?sort=random",
        "/api/skills?nonsense=1",
    ] {
        let response = common::http().get(server.url(bad)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// `wasm` with a custom section of `padding` bytes appended: a larger component that runs the
/// same (custom sections carry no code).
fn padded(mut wasm: Vec<u8>, padding: usize) -> Vec<u8> {
    fn leb128(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"agentos-test-padding";
    let mut body = Vec::with_capacity(padding + 32);
    leb128(name.len(), &mut body);
    body.extend_from_slice(name);
    body.resize(body.len() + padding, 0x5a);
    wasm.push(0);
    leb128(body.len(), &mut wasm);
    wasm.extend_from_slice(&body);
    wasm
}

/// Publishing takes components past 20 MB both ways: over HTTP (the one route whose body may
/// pass `http.max_body_bytes`) and from a directory with the CLI; both then run.
#[tokio::test]
async fn a_component_past_twenty_megabytes_publishes_over_http_and_from_the_cli() {
    let Some(probe) = built("probe") else { return };
    let manifest = std::fs::read_to_string(probe.join("skill.toml")).unwrap();
    let large = padded(std::fs::read(probe.join("skill.wasm")).unwrap(), 22 * 1024 * 1024);
    assert!(large.len() > 23 * 1024 * 1024);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let package = dir.path().join("big-cli");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&package).unwrap();
    std::fs::write(
        package.join("skill.toml"),
        manifest.replace("slug = \"probe\"", "slug = \"big-cli\""),
    )
    .unwrap();
    std::fs::write(package.join("skill.wasm"), &large).unwrap();
    let printed = publish_cli(&data, &package).expect("publish from the directory");
    assert!(printed.contains("published big-cli 0.1.0"), "{printed}");

    let server = start(dir.path());
    let body = json!({
        "manifest": manifest.replace("slug = \"probe\"", "slug = \"big-http\""),
        "component": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &large),
    });
    let (status, answer) = rest(&server, server.token(), "POST", "/api/skills/publish", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");

    let alice = register(&server, "alice", &["*"], &[]).await;
    for slug in ["big-cli", "big-http"] {
        install(&server, &alice, slug).await;
        let (status, used) = rest(
            &server,
            &alice,
            "POST",
            "/api/skills/use",
            Some(json!({"skill_slug": slug, "capability": "greet", "params": {"name": "Ada", "mood": "calm"}})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{slug}: {used}");
        assert_eq!(used["result"]["text"], "Hello, Ada!", "{slug}: {used}");
    }
}

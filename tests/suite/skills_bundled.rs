//! The bundled skills of `tools/skills/` (one per language: JavaScript, Python, C), each built
//! from source by `scripts/build-skills`, published with `agentos skills publish`, installed by
//! one agent and called through every front door: MCP over stdio and over HTTP, the plain form
//! and `/api/skills/use`. Another agent does not see them.

use std::path::Path;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::skills_market::{built, install, publish_cli, register, rest};
use crate::common::{Server, call, http_client_as, stdio_client, structured};

/// One capability call and what its answer must hold.
struct Case {
    skill: &'static str,
    tool: &'static str,
    input: Value,
    check: fn(&Value),
}

/// A page with a title and two links, on 127.0.0.1.
async fn page_server() -> String {
    let html = "<html><head><title>Bundled</title></head><body>\
                <a href=\"/one\">One</a> <a href=\"two.html\">Two</a></body></html>";
    let app = axum::Router::new().route(
        "/page",
        axum::routing::get(move || async move { ([("content-type", "text/html")], html) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn cases(site: &str) -> Vec<Case> {
    vec![
        Case {
            skill: "text-stats",
            tool: "skill.text-stats.analyze",
            input: json!({"text": "One fish. Two fish!\nRed fish?"}),
            check: |answer| {
                assert_eq!(answer["words"], 6, "{answer}");
                assert_eq!(answer["sentences"], 3, "{answer}");
                assert_eq!(answer["lines"], 2, "{answer}");
            },
        },
        Case {
            skill: "notes",
            tool: "skill.notes.add",
            input: json!({"title": "Groceries", "body": "milk and eggs"}),
            check: |answer| {
                assert_eq!(answer["title"], "Groceries", "{answer}");
                assert!(!answer["id"].as_str().unwrap().is_empty(), "{answer}");
            },
        },
        Case {
            skill: "page-links",
            tool: "skill.page-links.read-page",
            input: json!({"url": format!("{site}/page")}),
            check: |answer| {
                assert_eq!(answer["title"], "Bundled", "{answer}");
                assert_eq!(answer["links"].as_array().unwrap().len(), 2, "{answer}");
            },
        },
    ]
}

async fn use_via_rest(server: &Server, token: &str, case: &Case) -> Value {
    let (slug, capability) = case.tool["skill.".len()..].split_once('.').unwrap();
    let body = json!({"skill_slug": slug, "capability": capability, "params": case.input});
    let (status, used) = rest(server, token, "POST", "/api/skills/use", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{}: {used}", case.tool);
    assert_eq!(used["success"], true);
    used["result"].clone()
}

#[tokio::test]
async fn every_bundled_skill_is_built_published_installed_and_called_through_every_door() {
    let Some(probe) = built("probe") else { return };
    let built_dir = probe.parent().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let site = page_server().await;
    let cases = cases(&site);
    let bundled: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/skills"))
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.unwrap();
            entry
                .path()
                .join("skill.toml")
                .exists()
                .then(|| entry.file_name().to_string_lossy().into_owned())
        })
        .collect();
    for skill in &bundled {
        assert!(
            cases.iter().any(|case| case.skill == skill),
            "the bundled skill {skill} has no case in this test"
        );
        let printed = publish_cli(&data, &built_dir.join(skill)).unwrap_or_else(|e| panic!("publish {skill}: {e}"));
        assert!(printed.contains(&format!("published {skill} ")), "{printed}");
    }

    let server = Server::start_secure_configured(
        dir.path(),
        "[rate_limits]\nenabled = false\n[network]\nallow_private_addresses = true\n",
    );
    let alice = register(&server, "alice", &["*"], &[]).await;
    let bob = register(&server, "bob", &["*"], &[]).await;
    for skill in &bundled {
        install(&server, &alice, skill).await;
    }
    let (alice_http, _) = http_client_as(&server.mcp_url(), &alice).await;
    let (bob_http, _) = http_client_as(&server.mcp_url(), &bob).await;
    // The same configuration (private addresses allowed, for the page server) over stdio.
    let config = dir.path().join("agentos.toml");
    let (alice_stdio, _, _) = stdio_client(&data, &["--token", &alice, "--config", config.to_str().unwrap()]).await;
    let bob_sees: Vec<String> = bob_http
        .peer()
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    for case in &cases {
        assert!(!bob_sees.iter().any(|n| n == case.tool), "bob sees {}", case.tool);
        let over_http = call(&alice_http, case.tool, case.input.clone()).await;
        (case.check)(&structured(&over_http));
        let over_stdio = call(&alice_stdio, case.tool, case.input.clone()).await;
        (case.check)(&structured(&over_stdio));
        let (status, _, plain) = server.plain(&alice, case.tool, case.input.clone()).await;
        assert_eq!(status, StatusCode::OK, "{}: {plain}", case.tool);
        (case.check)(&plain["result"]);
        (case.check)(&use_via_rest(&server, &alice, case).await);
        let (status, _, _) = server.plain(&bob, case.tool, case.input.clone()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{} is not bob's", case.tool);
    }
    // The notes skill kept what it was given in Alice's own memory, through host calls.
    let found = call(&alice_http, "skill.notes.search", json!({"query": "EGGS"})).await;
    assert_eq!(
        structured(&found)["result"].as_array().unwrap().len(),
        4,
        "one note per door"
    );
    let (_, _, memory) = server
        .plain(&alice, "agentos.mem_list", json!({"prefix": "notes:"}))
        .await;
    assert!(memory.to_string().contains("notes:index"), "{memory}");
    alice_stdio.cancel().await.unwrap();
}

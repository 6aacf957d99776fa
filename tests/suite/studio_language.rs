//! The studio's command language over `POST /api/studio/command`, with the real binary: every
//! command parses and explains itself, a mutating command runs once and only through its
//! preview's token, tokens are bound to their caller, command and time, and a limited agent's
//! studio does only what its policy allows.

use std::time::{Duration, Instant};

use agentos::adapters::studio::commands::{COMMANDS, Target};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{self, Server};

async fn studio(server: &Server, token: &str, body: Value) -> Value {
    let response = common::http()
        .post(server.url("/api/studio/command"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{body}");
    response.json().await.unwrap()
}

async fn run(server: &Server, token: &str, command: &str) -> Value {
    studio(server, token, json!({"command": command})).await
}

/// `command` previewed, then confirmed with its token: the confirmed answer.
async fn confirmed(server: &Server, token: &str, command: &str) -> Value {
    let preview = run(server, token, command).await;
    assert_eq!(preview["kind"], "preview", "{command}: {preview}");
    let confirm = preview["confirmToken"].as_str().unwrap();
    studio(server, token, json!({"command": command, "confirmToken": confirm})).await
}

fn start(dir: &std::path::Path) -> Server {
    Server::start_secure_configured(dir, "[rate_limits]\nenabled = false\n[studio]\nconfirm_ttl_secs = 1\n")
}

#[tokio::test]
async fn every_command_parses_and_explains_itself() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let owner = server.token();

    let help = run(&server, owner, "help").await;
    assert_eq!(help["kind"], "help", "{help}");
    let listed: Vec<&str> = help["result"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    let all: Vec<&str> = COMMANDS.iter().map(|c| c.name).collect();
    assert_eq!(listed, all, "the owner may run every command");
    assert!(help["snippet"].as_str().unwrap().contains("/api/studio/command"));

    for command in COMMANDS {
        let explained = run(&server, owner, &format!("help {}", command.name)).await;
        assert_eq!(explained["kind"], "help", "{}: {explained}", command.name);
        let usage = explained["result"]["usage"].as_str().unwrap();
        assert!(usage.starts_with(command.name), "{usage}");
        assert_eq!(explained["result"]["example"], command.example);
        if let Target::Tool(tool) = command.target {
            assert_eq!(explained["result"]["tool"], tool);
            for field in command.positional {
                assert!(usage.contains(field), "{}: `{field}` is in `{usage}`", command.name);
            }
        }
        // Its example parses into a call of its tool: it previews, answers, or fails in the
        // tool (a made-up id), never in the language.
        if command.example.contains("...") {
            continue;
        }
        let answer = studio(
            &server,
            owner,
            json!({"command": command.example, "advancedMode": true}),
        )
        .await;
        let kind = answer["kind"].as_str().unwrap();
        assert!(
            matches!(kind, "preview" | "result" | "help") || answer["result"]["tool"].is_string(),
            "{}: {answer}",
            command.example
        );
        if let (Target::Tool(tool), "preview" | "error") = (command.target, kind) {
            assert_eq!(answer["result"]["tool"], tool, "{answer}");
        }
        assert!(answer["snippet"].as_str().unwrap().contains("curl -sS"), "{answer}");
    }

    let health = run(&server, owner, "health").await;
    assert_eq!(health["result"]["status"], "healthy", "{health}");
    assert_eq!(health["result"]["services"]["store"]["status"], "healthy", "{health}");
    assert!(health["result"].get("connections").is_none(), "{health}");

    let read = run(&server, owner, "mem list").await;
    assert_eq!(read["kind"], "result", "{read}");
    let snippet = read["snippet"].as_str().unwrap();
    assert!(
        snippet.contains(r#""method":"tools/call""#) && snippet.contains(r#""name":"agentos.mem_list""#),
        "{snippet}"
    );
    assert!(
        snippet.contains(r#"-d '{"input":{},"tool":"agentos.mem_list"}'"#),
        "{snippet}"
    );

    for (typed, suggested) in [
        ("mem gte k", "mem get"),
        ("aprovals list", "approvals list"),
        ("tols", "tools list"),
        ("tools", "tools list"),
    ] {
        let wrong = run(&server, owner, typed).await;
        assert_eq!(wrong["kind"], "error", "{wrong}");
        assert_eq!(wrong["result"]["suggestion"], suggested, "{wrong}");
        assert!(
            wrong["summary"]
                .as_str()
                .unwrap()
                .contains(&format!("did you mean `{suggested}`"))
        );
    }
    for (malformed, says) in [
        ("", "empty"),
        ("mem get", "`key` is missing"),
        ("mem get a b", "too many words"),
        (r#"mem set k {"open": 1"#, "not closed"),
        ("mem set k v ttlSeconds=soon", "`ttlSeconds` takes integer"),
        ("mem set k v ttlSeconds=0", "invalid arguments for `agentos.mem_set`"),
        (
            r#"call agentos.hash {"text": 1}"#,
            "invalid arguments for `agentos.hash`",
        ),
        ("call", "needs a tool"),
        ("call agentos.nothing_here {}", "unknown tool"),
        ("help teleport", "no command `teleport`"),
    ] {
        let answer = run(&server, owner, malformed).await;
        assert_eq!(answer["kind"], "error", "{malformed}: {answer}");
        let summary = answer["summary"].as_str().unwrap();
        assert!(summary.contains(says), "{malformed}: {summary}");
    }
    let not_a_command = common::http()
        .post(server.url("/api/studio/command"))
        .bearer_auth(owner)
        .json(&json!({"commandd": "help"}))
        .send()
        .await
        .unwrap();
    assert_eq!(not_a_command.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_mutating_command_runs_once_and_only_through_its_preview() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let owner = server.token();

    let preview = run(&server, owner, r#"mem set plan {"step": 1}"#).await;
    assert_eq!(preview["kind"], "preview", "{preview}");
    assert_eq!(preview["result"]["tool"], "agentos.mem_set");
    assert_eq!(preview["result"]["input"], json!({"key": "plan", "value": {"step": 1}}));
    assert_eq!(preview["expiresInSecs"], 1);
    // Nothing happened yet.
    let before = run(&server, owner, "mem get plan").await;
    assert_eq!(before["result"]["found"], false, "{before}");

    let token = preview["confirmToken"].as_str().unwrap();
    let body = json!({"command": r#"mem set plan {"step": 1}"#, "confirmToken": token});
    let ran = studio(&server, owner, body.clone()).await;
    assert_eq!(ran["kind"], "result", "{ran}");
    assert_eq!(ran["result"]["created"], true);
    let after = run(&server, owner, "mem get plan").await;
    assert_eq!(after["result"]["value"], json!({"step": 1}));

    let again = studio(&server, owner, body).await;
    assert_eq!(again["kind"], "error", "{again}");
    assert!(again["summary"].as_str().unwrap().contains("already used"), "{again}");
    // Exactly one write reached the registry: once the audit trail (written in order, in the
    // background) holds the read made after the refused reuse, it holds every call before it.
    run(&server, owner, "mem get plan").await;
    let records = |tool: &'static str| {
        let server = &server;
        async move {
            let audit = run(server, owner, &format!("audit tool={tool}")).await;
            audit["result"]["records"].as_array().map_or(0, Vec::len)
        }
    };
    let reads = common::poll(Duration::from_secs(10), || async {
        (records("agentos.mem_get").await >= 3).then_some(())
    })
    .await;
    assert!(reads.is_some(), "the audit trail records the reads");
    assert_eq!(records("agentos.mem_set").await, 1);

    let deleted = confirmed(&server, owner, "mem delete plan").await;
    assert_eq!(deleted["result"]["deleted"], true, "{deleted}");
}

#[tokio::test]
async fn tokens_are_bound_to_their_caller_command_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let alice = server.register_agent("alice", &["*"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = server.register_agent("bob", &["*"]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let preview = run(&server, &alice, "mem set k 1").await;
    let token = preview["confirmToken"].as_str().unwrap();

    let stolen = studio(&server, &bob, json!({"command": "mem set k 1", "confirmToken": token})).await;
    assert_eq!(stolen["kind"], "error");
    assert!(
        stolen["summary"].as_str().unwrap().contains("another caller"),
        "{stolen}"
    );
    let swapped = studio(
        &server,
        &alice,
        json!({"command": "mem set k 2", "confirmToken": token}),
    )
    .await;
    assert_eq!(swapped["kind"], "error");
    assert!(
        swapped["summary"].as_str().unwrap().contains("another command"),
        "{swapped}"
    );
    let bob_sees = run(&server, &bob, "mem get k").await;
    assert_eq!(bob_sees["result"]["found"], false);

    // The token outlives those mistakes, but not its time.
    let later = run(&server, &alice, "mem set late 1").await;
    let late_token = later["confirmToken"].as_str().unwrap().to_owned();
    // Issued before its answer arrived, so it expires at most 1 s after now.
    let issued = Instant::now();
    assert!(
        common::eventually(Duration::from_secs(10), || issued.elapsed()
            > Duration::from_millis(1100))
        .await
    );
    let expired = studio(
        &server,
        &alice,
        json!({"command": "mem set late 1", "confirmToken": late_token}),
    )
    .await;
    assert_eq!(expired["kind"], "error");
    assert!(expired["summary"].as_str().unwrap().contains("expired"), "{expired}");
    let made_up = studio(
        &server,
        &alice,
        json!({"command": "mem set k 1", "confirmToken": "cfm_made_up"}),
    )
    .await;
    assert!(made_up["summary"].as_str().unwrap().contains("unknown"), "{made_up}");
    assert_eq!(run(&server, &alice, "mem get late").await["result"]["found"], false);

    // Raw SQL needs advancedMode, previews included.
    let sql = run(&server, &alice, "db query SELECT 1 AS one").await;
    assert_eq!(sql["kind"], "error");
    assert!(sql["summary"].as_str().unwrap().contains("advancedMode"), "{sql}");
    let advanced = studio(
        &server,
        &alice,
        json!({"command": "db query SELECT 1 AS one", "advancedMode": true}),
    )
    .await;
    assert_eq!(advanced["kind"], "result", "{advanced}");
    let call_sql = run(&server, &alice, r#"call agentos.db_exec {"sql": "CREATE TABLE t (x)"}"#).await;
    assert!(
        call_sql["summary"].as_str().unwrap().contains("advancedMode"),
        "{call_sql}"
    );
}

#[tokio::test]
async fn a_limited_agent_studio_does_only_what_its_policy_allows() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let reader = server
        .register_agent("reader", &["agentos.mem_get", "agentos.mem_list"])
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let help = run(&server, &reader, "help").await;
    let listed: Vec<&str> = help["result"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["help", "call", "mem get", "mem list"], "{help}");
    assert_eq!(run(&server, &reader, "mem list").await["kind"], "result");

    // What its policy denies looks unknown, as through every other door, and nothing previews.
    for denied in [
        "mem set k 1",
        "agents list",
        "audit",
        "call agentos.fs_list {}",
        "db query SELECT 1",
    ] {
        let answer = studio(&server, &reader, json!({"command": denied, "advancedMode": true})).await;
        assert_eq!(answer["kind"], "error", "{denied}: {answer}");
        assert!(
            answer["summary"].as_str().unwrap().contains("unknown tool"),
            "{denied}: {answer}"
        );
        assert!(answer.get("confirmToken").is_none());
    }
    let explained = run(&server, &reader, "help agents list").await;
    assert_eq!(explained["kind"], "error", "{explained}");
}

//! The `agentos.fs_*` tools through MCP: a per-agent virtual filesystem kept in the store.

use crate::common;

use std::path::Path;

use crate::common::{call, structured, text_of};
use agentos::app::App;
use agentos::config::Config;
use agentos::config::FilesConfig;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The message of a call that must fail as a tool failure (isError), not a protocol error.
fn failure(result: &CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a failure, got {}",
        text_of(result)
    );
    text_of(result)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

fn paths(listing: &Value) -> Vec<String> {
    listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn files_round_trip_over_mcp_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;

    let text = "héllo ✓"; // 10 bytes
    let written = structured(
        &call(
            &client,
            "agentos.fs_write",
            json!({"path": "notes/today.md", "content": text}),
        )
        .await,
    );
    assert_eq!(
        written,
        json!({"path": "/notes/today.md", "bytes": 10, "created": true})
    );
    let appended = structured(
        &call(
            &client,
            "agentos.fs_write",
            json!({"path": "/notes/today.md", "content": " more", "append": true}),
        )
        .await,
    );
    assert_eq!(
        appended,
        json!({"path": "/notes/today.md", "bytes": 15, "created": false})
    );

    let read = structured(&call(&client, "agentos.fs_read", json!({"path": "/notes/today.md"})).await);
    assert_eq!(
        read,
        json!({"path": "/notes/today.md", "content": "héllo ✓ more", "encoding": "text",
               "offset": 0, "bytes": 15, "totalBytes": 15, "eof": true})
    );
    let range = structured(
        &call(
            &client,
            "agentos.fs_read",
            json!({"path": "/notes/today.md", "offset": 1, "length": 2}),
        )
        .await,
    );
    assert_eq!(
        (&range["content"], &range["eof"], &range["bytes"]),
        (&json!("é"), &json!(false), &json!(2))
    );
    let split = failure(
        &call(
            &client,
            "agentos.fs_read",
            json!({"path": "/notes/today.md", "offset": 1, "length": 1}),
        )
        .await,
    );
    assert!(split.contains("not valid UTF-8") && split.contains("base64"), "{split}");

    let stat = structured(&call(&client, "agentos.fs_stat", json!({"path": "/notes/today.md"})).await);
    assert_eq!(stat["exists"], true);
    assert_eq!(stat["bytes"], 15);
    assert_eq!(stat["sha256"], sha256_hex("héllo ✓ more".as_bytes()));
    assert!(stat["createdAtMs"].as_i64().unwrap() <= stat["updatedAtMs"].as_i64().unwrap());
    let missing = structured(&call(&client, "agentos.fs_stat", json!({"path": "/nope"})).await);
    assert_eq!(missing, json!({"path": "/nope", "exists": false}));

    // Binary content travels as base64, byte for byte.
    let bytes = [0u8, 255, 1, 2, 0xC3];
    let encoded = STANDARD.encode(bytes);
    structured(
        &call(
            &client,
            "agentos.fs_write",
            json!({"path": "/bin/blob", "content": encoded, "encoding": "base64"}),
        )
        .await,
    );
    let back = structured(
        &call(
            &client,
            "agentos.fs_read",
            json!({"path": "/bin/blob", "encoding": "base64"}),
        )
        .await,
    );
    assert_eq!((&back["content"], &back["totalBytes"]), (&json!(encoded), &json!(5)));
    let as_text = failure(&call(&client, "agentos.fs_read", json!({"path": "/bin/blob"})).await);
    assert!(as_text.contains("encoding \"base64\""), "{as_text}");

    // Listing: a directory at any depth, a raw prefix, pages with a cursor, and the quota in use.
    for (path, content) in [("/notes/b.md", "b"), ("/notes/sub/c.md", "cc"), ("/other.txt", "ddd")] {
        structured(&call(&client, "agentos.fs_write", json!({"path": path, "content": content})).await);
    }
    let first = structured(&call(&client, "agentos.fs_list", json!({"dir": "/notes", "limit": 2})).await);
    assert_eq!(paths(&first), ["/notes/b.md", "/notes/sub/c.md"]);
    let cursor = first["nextCursor"].as_str().expect("a next page");
    let second = structured(
        &call(
            &client,
            "agentos.fs_list",
            json!({"dir": "/notes", "limit": 2, "cursor": cursor}),
        )
        .await,
    );
    assert_eq!(paths(&second), ["/notes/today.md"]);
    assert!(second.get("nextCursor").is_none());
    assert_eq!(second["entries"][0]["bytes"], 15);
    let prefixed = structured(&call(&client, "agentos.fs_list", json!({"prefix": "/notes/s"})).await);
    assert_eq!(paths(&prefixed), ["/notes/sub/c.md"]);
    let everything = structured(&call(&client, "agentos.fs_list", json!({})).await);
    assert_eq!(
        paths(&everything),
        [
            "/bin/blob",
            "/notes/b.md",
            "/notes/sub/c.md",
            "/notes/today.md",
            "/other.txt"
        ]
    );
    assert_eq!(everything["usedBytes"], 5 + 1 + 2 + 15 + 3);
    assert_eq!(everything["quotaBytes"], 100 * 1024 * 1024);

    let deleted = structured(&call(&client, "agentos.fs_delete", json!({"path": "other.txt"})).await);
    assert_eq!(deleted, json!({"path": "/other.txt", "deleted": true}));
    let again = structured(&call(&client, "agentos.fs_delete", json!({"path": "/other.txt"})).await);
    assert_eq!(again["deleted"], false);
    client.cancel().await.unwrap();

    // Nothing lives on the host filesystem under those names; everything is in the store.
    assert!(!dir.path().join("notes").exists());
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let read = structured(&call(&client, "agentos.fs_read", json!({"path": "/notes/today.md"})).await);
    assert_eq!(read["content"], "héllo ✓ more");
    let listing = structured(&call(&client, "agentos.fs_list", json!({})).await);
    assert_eq!(listing["entries"].as_array().unwrap().len(), 4);
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_refused_with_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let write = |path: &str| json!({"path": path, "content": "x"});
    for (args, says) in [
        (write("../etc/passwd"), "`path` must not contain `..`"),
        (write("/a/../../b"), "`path` must not contain `..`"),
        (write("/a//b"), "`path` has an empty segment"),
        (write("/dir/"), "`path` has an empty segment"),
        (write("/"), "`path` names no file"),
        (write("/a\u{0}b"), "`path` must not contain control characters"),
        (write("/a\nb"), "`path` must not contain control characters"),
        (write(&"x".repeat(1024)), "`path` is longer than 1024 characters"),
        (
            json!({"path": "/b", "content": "%%%", "encoding": "base64"}),
            "`content` is not valid base64",
        ),
    ] {
        let message = failure(&call(&client, "agentos.fs_write", args.clone()).await);
        assert!(message.contains(says), "{args}: {message}");
    }
    let missing = failure(&call(&client, "agentos.fs_read", json!({"path": "/missing.txt"})).await);
    assert!(
        missing.contains("no file at `/missing.txt`") && missing.contains("agentos.fs_list"),
        "{missing}"
    );
    structured(&call(&client, "agentos.fs_write", json!({"path": "/short", "content": "abc"})).await);
    let past = failure(&call(&client, "agentos.fs_read", json!({"path": "/short", "offset": 4})).await);
    assert!(
        past.contains("`offset` 4 is past the end") && past.contains("3 bytes"),
        "{past}"
    );
    let at_end = structured(&call(&client, "agentos.fs_read", json!({"path": "/short", "offset": 3})).await);
    assert_eq!((&at_end["content"], &at_end["eof"]), (&json!(""), &json!(true)));
    let both = failure(&call(&client, "agentos.fs_list", json!({"dir": "/a", "prefix": "/a"})).await);
    assert!(both.contains("not both"), "{both}");
    let dots = failure(&call(&client, "agentos.fs_list", json!({"dir": "/a/.."})).await);
    assert!(dots.contains("`dir`"), "{dots}");

    // What the schema already rules out never reaches the tool, and the answer names the field.
    for (tool, args, field) in [
        (
            "agentos.fs_write",
            json!({"path": "/a", "content": "x", "encoding": "utf16"}),
            "`encoding`",
        ),
        (
            "agentos.fs_write",
            json!({"path": "/a", "content": "x", "mode": "w"}),
            "`mode`",
        ),
        (
            "agentos.fs_write",
            json!({"path": "x".repeat(1100), "content": "x"}),
            "`path`",
        ),
        ("agentos.fs_read", json!({"path": "/a", "offset": -1}), "`offset`"),
    ] {
        let message = failure(&call(&client, tool, args.clone()).await);
        assert!(
            message.contains("invalid arguments") && message.contains(field),
            "{args}: {message}"
        );
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn limits_from_the_config_file_apply() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(&config, "[files]\nquota_bytes = 100\nmax_file_bytes = 60\n").unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--config", config.to_str().unwrap()]).await;
    let write = |path: &str, size: usize| json!({"path": path, "content": "x".repeat(size)});

    let too_big = failure(&call(&client, "agentos.fs_write", write("/big", 61)).await);
    assert!(
        too_big.contains("files.max_file_bytes") && too_big.contains("60 bytes"),
        "{too_big}"
    );
    structured(&call(&client, "agentos.fs_write", write("/a", 50)).await);
    structured(&call(&client, "agentos.fs_write", write("/b", 40)).await);
    let over = failure(&call(&client, "agentos.fs_write", write("/c", 20)).await);
    assert!(
        over.contains("files.quota_bytes is 100") && over.contains("use 90 bytes") && over.contains("needs 20"),
        "names the quota, what is used and what is needed: {over}"
    );
    let stat = structured(&call(&client, "agentos.fs_stat", json!({"path": "/c"})).await);
    assert_eq!(stat["exists"], false, "a refused write leaves nothing behind");

    // Appending counts the growth; a file may not grow past max_file_bytes either.
    let append = |size: usize| json!({"path": "/b", "content": "y".repeat(size), "append": true});
    let over = failure(&call(&client, "agentos.fs_write", append(15)).await);
    assert!(over.contains("files.quota_bytes"), "{over}");
    assert_eq!(
        structured(&call(&client, "agentos.fs_write", append(10)).await)["bytes"],
        50
    );
    let long = failure(
        &call(
            &client,
            "agentos.fs_write",
            json!({"path": "/a", "content": "z".repeat(11), "append": true}),
        )
        .await,
    );
    assert!(long.contains("would be 61 bytes"), "{long}");
    let read = structured(&call(&client, "agentos.fs_read", json!({"path": "/a"})).await);
    assert_eq!(read["content"], "x".repeat(50), "a refused append changes nothing");

    // Replacing a file frees what it held; deleting frees it all.
    structured(&call(&client, "agentos.fs_write", write("/a", 10)).await);
    structured(&call(&client, "agentos.fs_write", write("/c", 20)).await);
    let listing = structured(&call(&client, "agentos.fs_list", json!({})).await);
    assert_eq!(
        (&listing["usedBytes"], &listing["quotaBytes"]),
        (&json!(80), &json!(100))
    );
    structured(&call(&client, "agentos.fs_delete", json!({"path": "/b"})).await);
    structured(&call(&client, "agentos.fs_write", write("/d", 60)).await);
    client.cancel().await.unwrap();
}

async fn app_with_files(dir: &Path, files: FilesConfig) -> App {
    App::build(common::on_test_store(Config {
        data_dir: dir.to_owned(),
        files,
        ..Config::default()
    }))
    .await
    .expect("build agentos in process")
}

async fn as_agent(app: &App, agent: &str, tool: &str, input: Value) -> CallToolResult {
    common::call_as(app, agent, tool, input)
        .await
        .unwrap_or_else(|e| panic!("{agent} {tool}: {e}"))
}

#[tokio::test]
async fn agents_cannot_reach_each_others_files() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_files(
        dir.path(),
        FilesConfig {
            quota_bytes: 64,
            max_file_bytes: 64,
        },
    )
    .await;
    let plan = json!({"path": "/private/plan.txt", "content": "A's plan"});
    structured(&as_agent(&app, "agent-a", "agentos.fs_write", plan).await);
    let path = json!({"path": "/private/plan.txt"});

    let read = failure(&as_agent(&app, "agent-b", "agentos.fs_read", path.clone()).await);
    assert!(read.contains("no file at"), "{read}");
    let stat = structured(&as_agent(&app, "agent-b", "agentos.fs_stat", path.clone()).await);
    assert_eq!(stat["exists"], false);
    let listing = structured(&as_agent(&app, "agent-b", "agentos.fs_list", json!({})).await);
    assert_eq!((&listing["entries"], &listing["usedBytes"]), (&json!([]), &json!(0)));
    let deleted = structured(&as_agent(&app, "agent-b", "agentos.fs_delete", path.clone()).await);
    assert_eq!(deleted["deleted"], false);
    let appended = structured(
        &as_agent(
            &app,
            "agent-b",
            "agentos.fs_write",
            json!({"path": "/private/plan.txt", "content": "B", "append": true}),
        )
        .await,
    );
    assert_eq!(
        (&appended["created"], &appended["bytes"]),
        (&json!(true), &json!(1)),
        "B's own new file"
    );
    let overwritten = structured(
        &as_agent(
            &app,
            "agent-b",
            "agentos.fs_write",
            json!({"path": "/private/plan.txt", "content": "B's"}),
        )
        .await,
    );
    assert_eq!(overwritten["created"], false);

    let a = structured(&as_agent(&app, "agent-a", "agentos.fs_read", path.clone()).await);
    assert_eq!(a["content"], "A's plan", "A's file is untouched");
    let b = structured(&as_agent(&app, "agent-b", "agentos.fs_read", path.clone()).await);
    assert_eq!(b["content"], "B's");

    // Quotas are per agent: A filling its own leaves B's room alone.
    let fill = json!({"path": "/fill", "content": "f".repeat(56)});
    structured(&as_agent(&app, "agent-a", "agentos.fs_write", fill.clone()).await);
    let full = failure(
        &as_agent(
            &app,
            "agent-a",
            "agentos.fs_write",
            json!({"path": "/more", "content": "m"}),
        )
        .await,
    );
    assert!(
        full.contains("files.quota_bytes is 64") && full.contains("use 64 bytes"),
        "{full}"
    );
    structured(&as_agent(&app, "agent-b", "agentos.fs_write", fill).await);
    let a_list = structured(&as_agent(&app, "agent-a", "agentos.fs_list", json!({})).await);
    assert_eq!(paths(&a_list), ["/fill", "/private/plan.txt"]);
    assert_eq!(a_list["usedBytes"], 64);
}

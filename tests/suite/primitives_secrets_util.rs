//! Secrets and utility tools through MCP: encryption at rest, limits, isolation, bad input.

use crate::common;

use crate::common::{call, structured, text_of};
use serde_json::json;

#[tokio::test]
async fn secrets_round_trip_and_are_encrypted_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let set = structured(
        &call(
            &client,
            "agentos.secret_set",
            json!({"name": "GITHUB_TOKEN", "value": "ghp_plaintext_canary"}),
        )
        .await,
    );
    assert_eq!(set["created"], true);
    let got = structured(&call(&client, "agentos.secret_get", json!({"name": "GITHUB_TOKEN"})).await);
    assert_eq!(got["value"], "ghp_plaintext_canary");
    let listed = structured(&call(&client, "agentos.secret_list", json!({})).await);
    assert_eq!(listed["secrets"][0]["name"], "GITHUB_TOKEN");
    assert!(listed["secrets"][0].get("value").is_none(), "names only");
    let missing = structured(&call(&client, "agentos.secret_get", json!({"name": "NOPE"})).await);
    assert_eq!(missing["found"], false);
    let bad = call(
        &client,
        "agentos.secret_set",
        json!({"name": "has space", "value": "v"}),
    )
    .await;
    assert!(text_of(&bad).contains("`name`"), "{}", text_of(&bad));
    client.cancel().await.unwrap();

    // Nothing on disk holds the plaintext; the key file is private.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(20).any(|w| w == b"ghp_plaintext_canary"),
                "{} contains the plaintext",
                path.display()
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("secrets.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A restart reads them back with the same key; delete removes them.
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let again = structured(&call(&client, "agentos.secret_get", json!({"name": "GITHUB_TOKEN"})).await);
    assert_eq!(again["value"], "ghp_plaintext_canary");
    let deleted = structured(&call(&client, "agentos.secret_delete", json!({"name": "GITHUB_TOKEN"})).await);
    assert_eq!(deleted["deleted"], true);
    assert_eq!(
        structured(&call(&client, "agentos.secret_list", json!({})).await)["secrets"],
        json!([])
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn secret_limits_and_a_key_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(&config, "[secrets]\nmax_value_bytes = 8\nmax_secrets_per_agent = 1\n").unwrap();
    let mut command = tokio::process::Command::new(common::agentos_bin());
    // 32 bytes of 0x07, base64.
    command
        .args(["mcp", "--config", config.to_str().unwrap(), "--data-dir"])
        .arg(dir.path())
        .env("AGENTOS_SECRETS_KEY", "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=");
    let transport = rmcp::transport::TokioChildProcess::new(command).unwrap();
    let client = rmcp::ServiceExt::serve(common::RecordingClient::default(), transport)
        .await
        .unwrap();
    let long = call(
        &client,
        "agentos.secret_set",
        json!({"name": "A", "value": "123456789"}),
    )
    .await;
    assert!(text_of(&long).contains("limited to 8 bytes"), "{}", text_of(&long));
    structured(&call(&client, "agentos.secret_set", json!({"name": "A", "value": "1234"})).await);
    let second = call(&client, "agentos.secret_set", json!({"name": "B", "value": "1"})).await;
    assert!(text_of(&second).contains("secret_delete"), "{}", text_of(&second));
    assert!(
        !dir.path().join("secrets.key").exists(),
        "no key file when the key comes from the environment"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn agents_cannot_reach_each_others_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let app = common::in_process_app(dir.path()).await;
    let ok = |r: Result<rmcp::model::CallToolResult, agentos::registry::CallError>| structured(&r.unwrap());
    ok(common::call_as(
        &app,
        "agent-a",
        "agentos.secret_set",
        json!({"name": "K", "value": "a-only"}),
    )
    .await);
    assert_eq!(
        ok(common::call_as(&app, "agent-b", "agentos.secret_get", json!({"name": "K"})).await)["found"],
        false
    );
    assert_eq!(
        ok(common::call_as(&app, "agent-b", "agentos.secret_list", json!({})).await)["secrets"],
        json!([])
    );
    assert_eq!(
        ok(common::call_as(&app, "agent-b", "agentos.secret_delete", json!({"name": "K"})).await)["deleted"],
        false
    );
    ok(common::call_as(
        &app,
        "agent-b",
        "agentos.secret_set",
        json!({"name": "K", "value": "b's"}),
    )
    .await);
    assert_eq!(
        ok(common::call_as(&app, "agent-a", "agentos.secret_get", json!({"name": "K"})).await)["value"],
        "a-only"
    );
}

#[tokio::test]
async fn utility_tools_work_and_explain_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let ids = structured(&call(&client, "agentos.uuid_new", json!({"count": 3})).await);
    let ids: Vec<&str> = ids["uuids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));
    assert_ne!(ids[0], ids[1]);

    let sha = structured(&call(&client, "agentos.hash", json!({"text": "abc"})).await);
    assert_eq!(
        sha["hex"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let blake = structured(
        &call(
            &client,
            "agentos.hash",
            json!({"base64": "YWJj", "algorithm": "blake3"}),
        )
        .await,
    );
    assert_eq!(
        blake["hex"],
        "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
    );
    let both = call(&client, "agentos.hash", json!({"text": "a", "base64": "YQ=="})).await;
    assert!(text_of(&both).contains("exactly one"), "{}", text_of(&both));
    let algo = call(&client, "agentos.hash", json!({"text": "a", "algorithm": "md5"})).await;
    assert!(text_of(&algo).contains("algorithm"), "{}", text_of(&algo));

    let doc = json!({"items": [{"name": "x"}, {"name": "y"}]});
    let names = structured(
        &call(
            &client,
            "agentos.json_query",
            json!({"document": doc, "query": "items[*].name"}),
        )
        .await,
    );
    assert_eq!(names["value"], json!(["x", "y"]));
    let pointer = structured(
        &call(
            &client,
            "agentos.json_query",
            json!({"document": doc, "query": "/items/1"}),
        )
        .await,
    );
    assert_eq!(pointer["value"], json!({"name": "y"}));

    let described = structured(&call(&client, "agentos.tools_describe", json!({"name": "agentos.mem_set"})).await);
    assert_eq!(described["strictName"], "agentos_mem_set");
    assert_eq!(described["origin"], "primitive");
    assert_eq!(described["inputSchema"]["required"], json!(["key", "value"]));
    let unknown = call(&client, "agentos.tools_describe", json!({"name": "agentos.nope"})).await;
    assert_eq!(unknown.is_error, Some(true));
    assert!(text_of(&unknown).contains("tools_search"));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn tools_describe_hides_denied_tools() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) =
        common::stdio_client(dir.path(), &["--allow-tools", "agentos.tools_describe,agentos.mem_*"]).await;
    let denied = call(&client, "agentos.tools_describe", json!({"name": "agentos.secret_get"})).await;
    let unknown = call(&client, "agentos.tools_describe", json!({"name": "agentos.secret_gex"})).await;
    assert_eq!(
        text_of(&denied).replace("secret_get", "N"),
        text_of(&unknown).replace("secret_gex", "N")
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn tools_list_pages_by_name_and_shows_only_what_policy_allows() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--allow-tools", "agentos.tools_list,agentos.mem_*"]).await;
    let mut names = Vec::new();
    let mut cursor = None;
    loop {
        let mut input = json!({"limit": 2});
        if let Some(cursor) = cursor.take() {
            input["cursor"] = cursor;
        }
        let page = structured(&call(&client, "agentos.tools_list", input).await);
        assert!(page["tools"].as_array().unwrap().len() <= 2);
        assert_eq!(page["total"], 6, "tools_list and the five mem_* tools: {page}");
        names.extend(
            page["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_owned()),
        );
        match page.get("nextCursor") {
            Some(next) => cursor = Some(next.clone()),
            None => break,
        }
    }
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "name order, each once");
    assert_eq!(names.len(), 6);
    assert!(!names.iter().any(|n| n.starts_with("agentos.secret")), "{names:?}");

    let family = structured(&call(&client, "agentos.tools_list", json!({"pattern": "agentos.mem_*"})).await);
    assert_eq!(family["total"], 5);
    let set = structured(&call(&client, "agentos.tools_list", json!({"contains": "MEM_SE"})).await);
    let listed = &set["tools"].as_array().unwrap();
    assert!(
        listed
            .iter()
            .any(|t| t["name"] == "agentos.mem_set" && t["readOnly"] == false)
    );
    assert!(
        listed
            .iter()
            .any(|t| t["name"] == "agentos.mem_search" && t["readOnly"] == true)
    );
    let bad = call(&client, "agentos.tools_list", json!({"pattern": "a*b*"})).await;
    assert_eq!(bad.is_error, Some(true));
    assert!(text_of(&bad).contains("pattern"), "{}", text_of(&bad));
    client.cancel().await.unwrap();
}

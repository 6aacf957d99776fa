//! Memory and knowledge through MCP: search, expiry, limits, and isolation between agents.

use crate::common;

use std::time::Duration;

use crate::common::{call, structured, text_of};
use serde_json::json;

#[tokio::test]
async fn memory_search_ranks_matches_and_expiry_hides_values() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    for (key, value) in [
        ("project/alpha/deadline", json!("the alpha deadline is friday")),
        ("project/beta/owner", json!({"name": "Ana", "role": "owner of beta"})),
        ("groceries", json!(["milk", "eggs"])),
    ] {
        structured(&call(&client, "agentos.mem_set", json!({"key": key, "value": value})).await);
    }
    let found = structured(&call(&client, "agentos.mem_search", json!({"query": "alpha deadline"})).await);
    let results = found["results"].as_array().unwrap();
    assert_eq!(results[0]["key"], "project/alpha/deadline", "{found}");
    assert!(results.iter().all(|r| r["key"] != "groceries"));
    let prefix = structured(&call(&client, "agentos.mem_search", json!({"query": "gro"})).await);
    assert_eq!(prefix["results"][0]["key"], "groceries", "prefix match: {prefix}");
    // Overwrites and deletes keep the index exact.
    structured(
        &call(
            &client,
            "agentos.mem_set",
            json!({"key": "groceries", "value": "bread"}),
        )
        .await,
    );
    let old = structured(&call(&client, "agentos.mem_search", json!({"query": "milk"})).await);
    assert_eq!(old["results"], json!([]), "replaced values are not found: {old}");
    structured(&call(&client, "agentos.mem_delete", json!({"key": "project/beta/owner"})).await);
    let gone = structured(&call(&client, "agentos.mem_search", json!({"query": "Ana"})).await);
    assert_eq!(gone["results"], json!([]));

    let bad = call(&client, "agentos.mem_search", json!({"query": "?!"})).await;
    assert_eq!(bad.is_error, Some(true));
    assert!(text_of(&bad).contains("`query`"), "{}", text_of(&bad));

    structured(
        &call(
            &client,
            "agentos.mem_set",
            json!({"key": "brief", "value": 1, "ttlSeconds": 1}),
        )
        .await,
    );
    assert_eq!(
        structured(&call(&client, "agentos.mem_get", json!({"key": "brief"})).await)["found"],
        true
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        structured(&call(&client, "agentos.mem_get", json!({"key": "brief"})).await)["found"],
        false
    );
    let zero_ttl = call(
        &client,
        "agentos.mem_set",
        json!({"key": "k", "value": 1, "ttlSeconds": 0}),
    )
    .await;
    assert!(text_of(&zero_ttl).contains("ttlSeconds"), "{}", text_of(&zero_ttl));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn memory_pages_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(&config, "[limits]\nmax_page_size = 2\n").unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--config", config.to_str().unwrap()]).await;
    for key in ["a/1", "a/2", "a/3"] {
        structured(&call(&client, "agentos.mem_set", json!({"key": key, "value": key})).await);
    }
    let first = structured(&call(&client, "agentos.mem_list", json!({"prefix": "a/"})).await);
    assert_eq!(first["entries"].as_array().unwrap().len(), 2);
    let cursor = first["nextCursor"].as_str().unwrap();
    let second = structured(
        &call(
            &client,
            "agentos.mem_list",
            json!({"prefix": "a/", "cursor": cursor, "includeValues": true}),
        )
        .await,
    );
    assert_eq!(
        second["entries"],
        json!([{"key": "a/3", "updatedAtMs": second["entries"][0]["updatedAtMs"], "value": "a/3"}])
    );
    let too_many = call(&client, "agentos.mem_list", json!({"limit": 3})).await;
    assert!(text_of(&too_many).contains("between 1 and 2"), "{}", text_of(&too_many));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn knowledge_is_chunked_searched_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let long = (0..40)
        .map(|i| format!("Paragraph {i} talks about rivers and mountains in some detail."))
        .collect::<Vec<_>>()
        .join("\n\n");
    let added = structured(
        &call(
            &client,
            "agentos.knowledge_add",
            json!({"id": "geo", "text": long, "title": "Geography", "metadata": {"project": "alpha", "year": 2026}}),
        )
        .await,
    );
    assert!(added["chunks"].as_u64().unwrap() > 1, "long text is chunked: {added}");
    structured(
        &call(
            &client,
            "agentos.knowledge_add",
            json!({"id": "cook", "text": "Rivers of chocolate: a dessert recipe.", "metadata": {"project": "beta"}}),
        )
        .await,
    );
    let all = structured(
        &call(
            &client,
            "agentos.knowledge_search",
            json!({"query": "rivers", "limit": 50}),
        )
        .await,
    );
    let ids: Vec<&str> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"geo") && ids.contains(&"cook"), "{ids:?}");
    let filtered = structured(
        &call(
            &client,
            "agentos.knowledge_search",
            json!({"query": "rivers", "filter": {"project": "beta"}}),
        )
        .await,
    );
    let results = filtered["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "{filtered}");
    assert_eq!(results[0]["id"], "cook");
    let by_number = structured(
        &call(
            &client,
            "agentos.knowledge_search",
            json!({"query": "rivers", "filter": {"year": 2026}}),
        )
        .await,
    );
    assert!(
        by_number["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] == "geo")
    );
    assert_eq!(by_number["results"][0]["title"], "Geography");

    let bad_filter = call(
        &client,
        "agentos.knowledge_search",
        json!({"query": "x", "filter": {"a": [1]}}),
    )
    .await;
    assert!(text_of(&bad_filter).contains("filter.a"), "{}", text_of(&bad_filter));

    // Replacing and deleting keep the index exact.
    let replaced = structured(
        &call(
            &client,
            "agentos.knowledge_add",
            json!({"id": "cook", "text": "Pancakes."}),
        )
        .await,
    );
    assert_eq!(replaced["replaced"], true);
    let after = structured(&call(&client, "agentos.knowledge_search", json!({"query": "chocolate"})).await);
    assert_eq!(after["results"], json!([]));
    assert_eq!(
        structured(&call(&client, "agentos.knowledge_delete", json!({"id": "geo"})).await)["deleted"],
        true
    );
    let none = structured(&call(&client, "agentos.knowledge_search", json!({"query": "mountains"})).await);
    assert_eq!(none["results"], json!([]));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn knowledge_limits_come_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(
        &config,
        "[knowledge]\nmax_document_chars = 100\nmax_documents_per_agent = 1\n",
    )
    .unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--config", config.to_str().unwrap()]).await;
    let long = call(&client, "agentos.knowledge_add", json!({"text": "x".repeat(101)})).await;
    assert!(text_of(&long).contains("limited to 100"), "{}", text_of(&long));
    structured(&call(&client, "agentos.knowledge_add", json!({"id": "one", "text": "first"})).await);
    let second = call(&client, "agentos.knowledge_add", json!({"id": "two", "text": "second"})).await;
    assert!(text_of(&second).contains("knowledge_delete"), "{}", text_of(&second));
    // Replacing an existing document is not a new one.
    structured(
        &call(
            &client,
            "agentos.knowledge_add",
            json!({"id": "one", "text": "first again"}),
        )
        .await,
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn agents_cannot_reach_each_others_memory_or_knowledge() {
    let dir = tempfile::tempdir().unwrap();
    let app = common::in_process_app(dir.path()).await;
    let ok = |r: Result<rmcp::model::CallToolResult, agentos::registry::CallError>| structured(&r.unwrap());
    ok(common::call_as(
        &app,
        "agent-a",
        "agentos.mem_set",
        json!({"key": "plan", "value": "a's secret plan"}),
    )
    .await);
    ok(common::call_as(
        &app,
        "agent-a",
        "agentos.knowledge_add",
        json!({"id": "doc", "text": "confidential roadmap"}),
    )
    .await);

    let got = ok(common::call_as(&app, "agent-b", "agentos.mem_get", json!({"key": "plan"})).await);
    assert_eq!(got["found"], false, "B cannot read A's key");
    let listed = ok(common::call_as(&app, "agent-b", "agentos.mem_list", json!({})).await);
    assert_eq!(listed["entries"], json!([]), "B cannot list A's keys");
    let searched = ok(common::call_as(&app, "agent-b", "agentos.mem_search", json!({"query": "secret plan"})).await);
    assert_eq!(searched["results"], json!([]), "B cannot search A's values");
    let knowledge = ok(common::call_as(&app, "agent-b", "agentos.knowledge_search", json!({"query": "roadmap"})).await);
    assert_eq!(knowledge["results"], json!([]), "B cannot search A's knowledge");
    let deleted = ok(common::call_as(&app, "agent-b", "agentos.knowledge_delete", json!({"id": "doc"})).await);
    assert_eq!(deleted["deleted"], false, "B cannot delete A's document");

    let created = ok(common::call_as(
        &app,
        "agent-b",
        "agentos.mem_set",
        json!({"key": "plan", "value": "b's"}),
    )
    .await);
    assert_eq!(created["created"], true, "B's write creates B's own key");
    let removed = ok(common::call_as(&app, "agent-b", "agentos.mem_delete", json!({"key": "plan"})).await);
    assert_eq!(removed["deleted"], true);
    let still = ok(common::call_as(&app, "agent-a", "agentos.mem_get", json!({"key": "plan"})).await);
    assert_eq!(
        still["value"], "a's secret plan",
        "A's value untouched by B's overwrite and delete"
    );
    let own = ok(common::call_as(&app, "agent-a", "agentos.knowledge_search", json!({"query": "roadmap"})).await);
    assert_eq!(own["results"][0]["id"], "doc");
}

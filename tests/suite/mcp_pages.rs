//! MCP list pagination through the real binary: `tools/list`, `resources/list`,
//! `resources/templates/list` and `prompts/list` answer `mcp_page_size` items with a
//! `nextCursor`, following the cursors gives every item once in the listing's order (a proxied
//! server's order is kept), and a cursor agentos did not make is -32602.

use rmcp::ServiceError;
use rmcp::model::{ErrorCode, PaginatedRequestParams};
use serde_json::json;

use crate::common::real_servers::upstreams;
use crate::common::{self, call, structured};

const PAGE: usize = 3;

fn invalid_params<T: std::fmt::Debug>(answer: Result<T, ServiceError>) {
    match answer {
        Err(ServiceError::McpError(error)) => {
            assert_eq!(error.code, ErrorCode::INVALID_PARAMS, "{error:?}");
            assert!(error.message.contains("cursor"), "{error:?}");
        }
        other => panic!("expected -32602, got {other:?}"),
    }
}

fn cursor(value: &str) -> Option<PaginatedRequestParams> {
    Some(PaginatedRequestParams::default().with_cursor(Some(value.to_owned())))
}

#[tokio::test]
async fn lists_come_in_pages_and_refuse_cursors_not_made_here() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(&config, format!("mcp_page_size = {PAGE}\n")).unwrap();
    let (client, _, _) = common::stdio_client(&dir.path().join("data"), &["--config", config.to_str().unwrap()]).await;
    let peer = client.peer();

    let first = peer.list_tools(None).await.unwrap();
    assert_eq!(first.tools.len(), PAGE);
    let next = first.next_cursor.clone().expect("more than one page of tools");
    let second = peer.list_tools(cursor(&next)).await.unwrap();
    assert_eq!(second.tools.len(), PAGE);
    assert!(
        second
            .tools
            .iter()
            .all(|t| !first.tools.iter().any(|f| f.name == t.name)),
        "no repeats"
    );

    let all = peer.list_all_tools().await.unwrap();
    let total = structured(&call(&client, "agentos.tools_list", json!({"limit": 1})).await)["total"].clone();
    assert_eq!(json!(all.len()), total, "every tool once");
    let mut names: Vec<_> = all.iter().map(|t| t.name.to_string()).collect();
    names.dedup();
    assert_eq!(names.len(), all.len());
    assert_eq!(all[..PAGE], first.tools[..], "the first page starts the listing");

    for bad in ["not-a-cursor", "", "YWZ0ZXI6"] {
        invalid_params(peer.list_tools(cursor(bad)).await);
        invalid_params(peer.list_resources(cursor(bad)).await);
        invalid_params(peer.list_resource_templates(cursor(bad)).await);
        invalid_params(peer.list_prompts(cursor(bad)).await);
    }

    // A proxied server's resources and prompts page the same way, in the server's own order.
    if let Some(up) = upstreams() {
        up.add_everything(&client, "everything").await;
        let resources = peer.list_all_resources().await.unwrap();
        assert!(
            resources.len() > PAGE,
            "more than a page of resources: {}",
            resources.len()
        );
        let page = peer.list_resources(None).await.unwrap();
        assert_eq!(page.resources.len(), PAGE);
        assert!(page.next_cursor.is_some());
        assert_eq!(page.resources[..], resources[..PAGE]);
        let prompts = peer.list_all_prompts().await.unwrap();
        assert!(!prompts.is_empty());
        let templates = peer.list_all_resource_templates().await.unwrap();
        assert!(!templates.is_empty());
    }
    client.cancel().await.unwrap();
}

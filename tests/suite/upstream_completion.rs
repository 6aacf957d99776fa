//! `completion/complete` through the real binary, proxied to the real server-everything: a
//! prompt argument (with the context of another) and a resource-template variable complete as
//! they do directly, under agentos's names; an unknown or forbidden reference is -32602.

use std::process::Stdio;

use rmcp::ServiceError;
use rmcp::ServiceExt;
use rmcp::model::{ArgumentInfo, CompleteRequestParams, CompletionContext, ErrorCode, Reference};
use rmcp::transport::TokioChildProcess;
use serde_json::json;

use crate::common::real_servers::upstreams;
use crate::common::{self, Client};

fn request(reference: Reference, name: &str, value: &str) -> CompleteRequestParams {
    CompleteRequestParams::new(reference, ArgumentInfo::new(name, value))
}

async fn values(client: &Client, request: CompleteRequestParams) -> Vec<String> {
    client
        .peer()
        .complete(request)
        .await
        .expect("completion/complete")
        .completion
        .values
}

fn invalid_params<T: std::fmt::Debug>(answer: Result<T, ServiceError>) {
    match answer {
        Err(ServiceError::McpError(error)) => assert_eq!(error.code, ErrorCode::INVALID_PARAMS, "{error:?}"),
        other => panic!("expected -32602, got {other:?}"),
    }
}

#[tokio::test]
async fn prompt_and_template_arguments_complete_as_they_do_directly() {
    let Some(up) = upstreams() else { return };
    let mut command = tokio::process::Command::new(&up.node);
    command.arg(&up.everything_js).arg("stdio").kill_on_drop(true);
    let (transport, _) = TokioChildProcess::builder(command)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let direct: Client = common::RecordingClient::default().serve(transport).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    assert!(client.peer().peer_info().unwrap().capabilities.completions.is_some());
    up.add_everything(&client, "everything").await;

    let theirs = values(
        &direct,
        request(Reference::for_prompt("completable-prompt"), "department", "S"),
    )
    .await;
    assert_eq!(theirs, ["Sales", "Support"]);
    let ours = values(
        &client,
        request(
            Reference::for_prompt("mcp.everything.completable-prompt"),
            "department",
            "S",
        ),
    )
    .await;
    assert_eq!(ours, theirs);

    let mut with_context = request(Reference::for_prompt("mcp.everything.completable-prompt"), "name", "");
    with_context.context =
        Some(serde_json::from_value::<CompletionContext>(json!({"arguments": {"department": "Engineering"}})).unwrap());
    assert_eq!(values(&client, with_context).await, ["Alice", "Bob", "Charlie"]);

    let template = "agentos+mcp://everything/demo://resource/dynamic/text/{resourceId}";
    assert_eq!(
        values(&client, request(Reference::for_resource(template), "resourceId", "7")).await,
        ["7"]
    );

    invalid_params(
        client
            .peer()
            .complete(request(Reference::for_prompt("mcp.nowhere.prompt"), "a", ""))
            .await,
    );
    invalid_params(
        client
            .peer()
            .complete(request(Reference::for_prompt("not-namespaced"), "a", ""))
            .await,
    );
    client.cancel().await.unwrap();

    // A caller whose policy does not cover the server: its prompts look unknown.
    let limited_dir = tempfile::tempdir().unwrap();
    let (limited, _, _) = common::stdio_client(limited_dir.path(), &["--allow-tools", "agentos.*"]).await;
    invalid_params(
        limited
            .peer()
            .complete(request(
                Reference::for_prompt("mcp.everything.completable-prompt"),
                "department",
                "S",
            ))
            .await,
    );
    limited.cancel().await.unwrap();
    direct.cancel().await.unwrap();
}

//! Requests an upstream makes of the client while serving a call (sampling, elicitation) reach
//! the client whose call it is, through the real binary and the project's fixture server
//! (`src/bin/mcp_fixture`) as a streamable-HTTP upstream: two clients sampling through the same
//! shared upstream at once each answer only their own request, and a client that did not declare
//! elicitation makes the upstream's request fail with the protocol's error. The same for
//! 2026-07-28 clients, which are asked through `input_required` results and answer by retrying.
#![allow(deprecated)] // sampling is deprecated by 2026-07-28 but defined by the revisions spoken here

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientCapabilities, ClientConfig, CreateMessageRequestParams,
    CreateMessageResult, ErrorCode, ErrorData, Implementation, InputRequest, Role, SamplingMessage,
    SamplingMessageContentBlock,
};
use rmcp::service::{RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::json;

use crate::common::{self, Server, call, structured, text_of};

/// A client that answers sampling with its own name.
#[derive(Clone)]
struct Sampler(&'static str);

impl ClientHandler for Sampler {
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        capabilities.sampling = Some(Default::default());
        ClientConfig::new(capabilities, Implementation::new(self.0, "1.0.0"))
    }

    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let message = SamplingMessage::new(
            Role::Assistant,
            SamplingMessageContentBlock::text(format!("answer of {}", self.0)),
        );
        Ok(CreateMessageResult::new(message, "test-model".into()))
    }
}

async fn connect(url: &str, sampler: Sampler) -> RunningService<RoleClient, Sampler> {
    let transport =
        StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(url.to_owned()));
    sampler.serve(transport).await.expect("initialize agentos")
}

/// `mcp_fixture http` on a free port: the process and its URL.
fn fixture() -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp_fixture"))
        .args(["http", "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mcp_fixture");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = lines
        .find_map(|line| line.ok()?.strip_prefix("listening on ").map(str::to_owned))
        .expect("the fixture says where it listens");
    (child, url)
}

/// agentos with the fixture server added as `fixture`; the fixture is stopped when dropped.
struct Setup {
    upstream: Child,
    server: Server,
    _dir: tempfile::TempDir,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.upstream.kill();
        let _ = self.upstream.wait();
    }
}

/// agentos with the fixture behind it over streamable HTTP, and the owner's client.
async fn fixture_behind_agentos() -> (Setup, common::Client) {
    let (upstream, upstream_url) = fixture();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (owner, _) = common::http_client(&server.mcp_url()).await;
    let added = call(
        &owner,
        "agentos.mcp_server_add",
        json!({"name": "fixture", "url": upstream_url}),
    )
    .await;
    assert!(structured(&added)["tools"].is_array(), "{added:?}");
    let setup = Setup {
        upstream,
        server,
        _dir: dir,
    };
    (setup, owner)
}

#[tokio::test]
async fn each_client_answers_only_the_requests_of_its_own_calls() {
    let (setup, owner) = fixture_behind_agentos().await;

    let url = setup.server.mcp_url();
    let (ada, bob) = tokio::join!(connect(&url, Sampler("ada")), connect(&url, Sampler("bob")));
    let ask = |client: &RunningService<RoleClient, Sampler>| {
        let peer = client.peer().clone();
        async move {
            let params = CallToolRequestParams::new("mcp.fixture.test_sampling")
                .with_arguments(json!({"prompt": "who are you?"}).as_object().unwrap().clone());
            peer.call_tool(params).await.expect("tools/call")
        }
    };
    for _ in 0..5 {
        let (for_ada, for_bob) = tokio::join!(ask(&ada), ask(&bob));
        assert_eq!(text_of(&for_ada), "LLM response: answer of ada");
        assert_eq!(text_of(&for_bob), "LLM response: answer of bob");
    }

    // The owner's client declared no elicitation: the upstream hears so, and says so.
    let refused = call(&owner, "mcp.fixture.test_elicitation", json!({"message": "your name?"})).await;
    assert!(
        text_of(&refused).contains("does not support elicitation"),
        "{}",
        text_of(&refused)
    );
    ada.cancel().await.unwrap();
    bob.cancel().await.unwrap();
    owner.cancel().await.unwrap();
    drop(setup);
}

/// A 2026-07-28 client has no session to be sent requests on: the upstream's question comes back
/// as an `input_required` result, and the client's retry with the answer resumes the same call.
#[tokio::test]
async fn a_stateless_client_answers_through_input_required_rounds() {
    let (setup, owner) = fixture_behind_agentos().await;
    let url = setup.server.mcp_url();
    let (ada, bob) = tokio::join!(
        common::stateless_client(&url, Sampler("ada")),
        common::stateless_client(&url, Sampler("bob"))
    );
    let sampling = || {
        CallToolRequestParams::new("mcp.fixture.test_sampling")
            .with_arguments(json!({"prompt": "who are you?"}).as_object().unwrap().clone())
    };

    // One round by hand: the question, under a key, with the state to send back.
    let first = ada.peer().call_tool_once(sampling()).await.expect("tools/call");
    let CallToolResponse::InputRequired(asked) = first else {
        panic!("expected input_required, got {first:?}")
    };
    let requests = asked.input_requests.clone().expect("input requests");
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(matches!(requests.values().next(), Some(InputRequest::CreateMessage(_))));
    let state = asked.request_state.clone().expect("request state");
    // A state agentos did not make (or already used) is refused, and nothing runs.
    let forged = ada
        .peer()
        .call_tool_once(sampling().with_request_state("rs_forged"))
        .await;
    match forged {
        Err(rmcp::ServiceError::McpError(error)) => {
            assert_eq!(error.code, ErrorCode::INVALID_PARAMS);
            assert!(error.message.contains("requestState"), "{}", error.message);
        }
        other => panic!("expected invalid params, got {other:?}"),
    }
    let (key, _) = requests.into_iter().next().unwrap();
    let answer = serde_json::to_value(CreateMessageResult::new(
        SamplingMessage::new(Role::Assistant, SamplingMessageContentBlock::text("by hand")),
        "test-model".into(),
    ))
    .unwrap();
    let resumed = ada
        .peer()
        .call_tool_once(
            sampling()
                .with_request_state(state.clone())
                .with_input_responses([(key, answer)].into_iter().collect()),
        )
        .await
        .expect("the retry");
    let CallToolResponse::Complete(result) = resumed else {
        panic!("expected the result, got {resumed:?}")
    };
    assert_eq!(text_of(&result), "LLM response: by hand");
    let reused = ada.peer().call_tool_once(sampling().with_request_state(state)).await;
    assert!(matches!(reused, Err(rmcp::ServiceError::McpError(_))), "{reused:?}");

    // rmcp's client drives the rounds itself; two clients at once each answer their own.
    for _ in 0..3 {
        let (for_ada, for_bob) = tokio::join!(ada.call_tool(sampling()), bob.call_tool(sampling()));
        assert_eq!(text_of(&for_ada.unwrap()), "LLM response: answer of ada");
        assert_eq!(text_of(&for_bob.unwrap()), "LLM response: answer of bob");
    }
    // No elicitation declared: the upstream hears so at once, with no round.
    let refused = ada
        .call_tool(
            CallToolRequestParams::new("mcp.fixture.test_elicitation")
                .with_arguments(json!({"message": "your name?"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert!(
        text_of(&refused).contains("does not support elicitation"),
        "{}",
        text_of(&refused)
    );
    ada.cancel().await.unwrap();
    bob.cancel().await.unwrap();
    owner.cancel().await.unwrap();
    drop(setup);
}

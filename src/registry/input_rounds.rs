//! Multi-round-trip tool calls (2026-07-28, SEP-2322). A stateless client cannot be sent a
//! request, so when a tool's server asks for sampling, elicitation or roots while serving a
//! call, the call is parked and the client is answered `input_required` with the questions; its
//! retry, carrying the answers and the request state, resumes that same call (the server is still
//! waiting for its answer) instead of starting another.
// Roots are deprecated by the 2026-07-28 revision (SEP-2577), but it keeps them as input requests.
#![allow(deprecated)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::{
    CallToolResult, ClientCapabilities, CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult,
    ElicitRequest, ElicitRequestParams, ElicitResult, ErrorCode, ErrorData, InputRequest, InputRequests,
    InputRequiredResult, InputResponses, ListRootsRequest, ListRootsResult, LoggingMessageNotificationParam,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{CallContext, CallError, ClientChannel, FailureKind, Registry};

/// How long a parked call waits for its client's next round beyond its own deadline, so one the
/// client abandoned is cancelled rather than kept forever.
const ROUND_GRACE: Duration = Duration::from_secs(30);

/// What a client's retry carries back.
pub struct Resume {
    pub request_state: String,
    pub responses: InputResponses,
}

/// Where a call stands after one round.
pub enum Round {
    Done(Result<CallToolResult, CallError>),
    /// Parked: the client must answer these and retry.
    InputRequired(InputRequiredResult),
}

#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    #[error(
        "unknown requestState: the call it resumed has finished, expired or belongs to another caller or tool; \
         call the tool again without it"
    )]
    UnknownState,
}

/// Calls parked between rounds, by request state.
pub(super) struct InputRounds {
    parked: Mutex<HashMap<String, Parked>>,
    grace: Duration,
}

impl Default for InputRounds {
    fn default() -> Self {
        Self {
            parked: Mutex::default(),
            grace: ROUND_GRACE,
        }
    }
}

struct Parked {
    agent_id: Arc<str>,
    tool: String,
    run: Run,
}

type Called = Result<CallToolResult, CallError>;

/// A call in progress: polled by the request that waits for it, until it is parked; a parked
/// call runs on its own task (its deadline and the server's answer still need it polled).
enum Calling {
    Here(BoxFuture<'static, Called>),
    Parked(JoinHandle<Called>),
    Gone,
}

impl Calling {
    /// Waits for the result; cancel-safe (the call goes on if the wait is dropped).
    async fn finish(&mut self, name: &str) -> Called {
        let stopped = |error: String| CallError::Failed {
            kind: FailureKind::Failed,
            message: format!("the call to `{name}` stopped unexpectedly: {error}"),
            approval_id: None,
        };
        match self {
            Calling::Here(call) => call.await,
            Calling::Parked(task) => task.await.unwrap_or_else(|error| Err(stopped(error.to_string()))),
            Calling::Gone => Err(stopped("it was already answered".into())),
        }
    }

    fn park(&mut self) {
        if let Calling::Here(call) = std::mem::replace(self, Calling::Gone) {
            *self = Calling::Parked(tokio::spawn(call));
        }
    }
}

/// A call, and the questions it has asked its client.
struct Run {
    call: Calling,
    asks: mpsc::UnboundedReceiver<Ask>,
    /// Questions put to the client, by key, and where their answers go.
    waiting: HashMap<String, oneshot::Sender<Result<Value, ErrorData>>>,
    next_key: u64,
    cancel: CancellationToken,
    /// How long the call may still be parked.
    patience: Duration,
}

impl Drop for Run {
    fn drop(&mut self) {
        // A call nobody will resume any more is cancelled, upstream too.
        self.cancel.cancel();
        if let Calling::Parked(task) = &self.call {
            task.abort();
        }
    }
}

struct Ask {
    request: InputRequest,
    answer: oneshot::Sender<Result<Value, ErrorData>>,
}

impl InputRounds {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Parked>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Registry {
    /// Runs (or, with `resume`, continues) a call for a client that can be asked only through
    /// `input_required` results: what the tool's server asks of the client ends this round with
    /// the questions, and the call waits, parked, for the retry that answers them.
    pub async fn call_in_rounds(
        self: &Arc<Self>,
        ctx: CallContext,
        name: &str,
        input: Value,
        capabilities: ClientCapabilities,
        resume: Option<Resume>,
    ) -> Result<Round, RoundError> {
        let (run, agent_id) = match resume {
            Some(resume) => {
                let parked = self
                    .input_rounds
                    .lock()
                    .remove(&resume.request_state)
                    .ok_or(RoundError::UnknownState)?;
                if parked.agent_id != ctx.caller.agent_id || parked.tool != name {
                    // Someone else's state: put it back untouched.
                    self.input_rounds.lock().insert(resume.request_state, parked);
                    return Err(RoundError::UnknownState);
                }
                let mut run = parked.run;
                run.answer(resume.responses);
                (run, parked.agent_id)
            }
            None => (
                self.start_run(ctx.clone(), name, input, capabilities),
                ctx.caller.agent_id.clone(),
            ),
        };
        Ok(self.next_round(run, agent_id, name).await)
    }

    fn start_run(
        self: &Arc<Self>,
        ctx: CallContext,
        name: &str,
        input: Value,
        capabilities: ClientCapabilities,
    ) -> Run {
        let (asks_tx, asks) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let patience = ctx.deadline.saturating_duration_since(tokio::time::Instant::now()) + self.input_rounds.grace;
        // The call outlives the request that started it: it gets its own cancellation.
        let ctx = ctx
            .with_cancel(cancel.clone())
            .with_client_channel(Arc::new(AskingClient {
                asks: asks_tx,
                capabilities,
            }));
        let registry = self.clone();
        let name = name.to_owned();
        Run {
            call: Calling::Here(async move { registry.call(&ctx, &name, input).await }.boxed()),
            asks,
            waiting: HashMap::new(),
            next_key: 0,
            cancel,
            patience,
        }
    }

    /// Waits for the call to finish or to ask its client something; parks it in the latter case.
    async fn next_round(self: &Arc<Self>, mut run: Run, agent_id: Arc<str>, name: &str) -> Round {
        let first = tokio::select! {
            biased;
            finished = run.call.finish(name) => return Round::Done(finished),
            ask = run.asks.recv() => match ask {
                Some(ask) => Some(ask),
                // Nothing can ask any more: the call is finishing.
                None => return Round::Done(run.call.finish(name).await),
            },
        };
        let mut requests = InputRequests::new();
        // Questions asked together go out together.
        let mut next = first;
        while let Some(ask) = next {
            run.next_key += 1;
            let key = format!("q{}", run.next_key);
            requests.insert(key.clone(), ask.request);
            run.waiting.insert(key, ask.answer);
            next = run.asks.try_recv().ok();
        }
        let state = match request_state() {
            Ok(state) => state,
            Err(error) => {
                return Round::Done(Err(CallError::Failed {
                    kind: FailureKind::Failed,
                    message: format!("agentos could not park the call to `{name}`: {error}"),
                    approval_id: None,
                }));
            }
        };
        let patience = run.patience;
        run.call.park();
        self.input_rounds.lock().insert(
            state.clone(),
            Parked {
                agent_id,
                tool: name.to_owned(),
                run,
            },
        );
        let registry = Arc::downgrade(self);
        let expiring = state.clone();
        tokio::spawn(async move {
            tokio::time::sleep(patience).await;
            if let Some(registry) = registry.upgrade() {
                // Dropped (and so cancelled) outside the lock.
                let abandoned = registry.input_rounds.lock().remove(&expiring);
                drop(abandoned);
            }
        });
        Round::InputRequired(InputRequiredResult::new(Some(requests), Some(state)))
    }

    /// Calls parked waiting for their client's next round.
    pub fn parked_calls(&self) -> usize {
        self.input_rounds.lock().len()
    }
}

/// An unguessable handle: the state is all a retry shows of whose call it resumes (the caller
/// is checked too).
fn request_state() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(format!(
        "rs_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

impl Run {
    /// Hands the client's answers to the questions they answer; a question left unanswered
    /// fails at the server that asked it.
    fn answer(&mut self, mut responses: InputResponses) {
        for (key, answer) in self.waiting.drain() {
            let reply = responses.remove(&key).ok_or_else(|| {
                ErrorData::new(
                    ErrorCode::INVALID_REQUEST,
                    format!("the client's retry did not answer input request `{key}`"),
                    None,
                )
            });
            // The server may have given up waiting: nothing to deliver to.
            let _ = answer.send(reply);
        }
    }
}

/// A stateless client as a call's channel: what the server asks becomes a question for the
/// next `input_required` result, if the client declared it can answer such questions.
struct AskingClient {
    asks: mpsc::UnboundedSender<Ask>,
    capabilities: ClientCapabilities,
}

impl AskingClient {
    async fn ask<T: DeserializeOwned>(&self, offered: bool, what: &str, request: InputRequest) -> Result<T, ErrorData> {
        if !offered {
            return Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("the client of this call does not support {what}"),
                None,
            ));
        }
        let (answer, answered) = oneshot::channel();
        self.asks
            .send(Ask { request, answer })
            .map_err(|_| ErrorData::internal_error("the call's client is gone", None))?;
        let value = answered
            .await
            .map_err(|_| ErrorData::internal_error("the client never answered; the call was abandoned", None))??;
        serde_json::from_value(value).map_err(|error| {
            ErrorData::invalid_params(format!("the client's answer to {what} is malformed: {error}"), None)
        })
    }
}

impl ClientChannel for AskingClient {
    fn sample(&self, params: CreateMessageRequestParams) -> BoxFuture<'_, Result<CreateMessageResult, ErrorData>> {
        let offered = self.capabilities.sampling.is_some();
        let request = InputRequest::CreateMessage(CreateMessageRequest::new(params));
        async move { self.ask(offered, "sampling", request).await }.boxed()
    }

    fn elicit(&self, params: ElicitRequestParams) -> BoxFuture<'_, Result<ElicitResult, ErrorData>> {
        let offered = self.capabilities.elicitation.is_some();
        let request = InputRequest::Elicitation(ElicitRequest::new(params));
        async move { self.ask(offered, "elicitation", request).await }.boxed()
    }

    fn roots(&self) -> BoxFuture<'_, Result<ListRootsResult, ErrorData>> {
        let offered = self.capabilities.roots.is_some();
        let request = InputRequest::ListRoots(ListRootsRequest::default());
        async move { self.ask(offered, "roots", request).await }.boxed()
    }

    fn log(&self, params: LoggingMessageNotificationParam) -> BoxFuture<'_, ()> {
        // A stateless request has no channel for log messages (the revision deprecates them).
        tracing::debug!(level = ?params.level, "a server's log message about a stateless call was dropped");
        async {}.boxed()
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{Role, SamplingMessage, SamplingMessageContentBlock};
    use serde_json::json;

    use super::*;
    use crate::registry::{Audience, Caller, Origin, Tool, ToolPolicy, ToolResult, ToolSpec};

    /// Asks its client to sample, and answers with what it got.
    struct Asking(ToolSpec);

    impl Tool for Asking {
        fn spec(&self) -> &ToolSpec {
            &self.0
        }
        fn call<'a>(&'a self, _input: Value, ctx: &'a CallContext) -> BoxFuture<'a, ToolResult> {
            async move {
                let channel = ctx.client_channel.clone().expect("a client channel");
                let params = CreateMessageRequestParams::new(
                    vec![SamplingMessage::new(
                        Role::User,
                        SamplingMessageContentBlock::text("hi"),
                    )],
                    10,
                );
                let text = match channel.sample(params).await {
                    Ok(result) => serde_json::to_string(&result.message).unwrap_or_default(),
                    Err(error) => format!("refused: {}", error.message),
                };
                Ok(CallToolResult::success(vec![rmcp::model::ContentBlock::text(text)]))
            }
            .boxed()
        }
    }

    fn registry() -> Arc<Registry> {
        registry_timing_out_after(Duration::from_secs(60))
    }

    /// Calls time out after `timeout`, and parked ones are dropped right then.
    fn registry_timing_out_after(timeout: Duration) -> Arc<Registry> {
        let mut registry = Registry::new(timeout);
        registry.input_rounds.grace = Duration::ZERO;
        let registry = Arc::new(registry);
        let schema = json!({"type": "object"});
        let spec = ToolSpec {
            name: "test.ask".into(),
            title: None,
            description: "asks".into(),
            input_schema: Arc::new(schema.as_object().cloned().unwrap_or_default()),
            output_schema: None,
            annotations: None,
            origin: Origin::Mcp,
            audience: Audience::ByPolicy,
        };
        registry.register(vec![Arc::new(Asking(spec))]).unwrap();
        registry
    }

    fn ctx(registry: &Registry, agent: &str) -> CallContext {
        let mut caller = Caller::owner(ToolPolicy::allow_all());
        caller.agent_id = agent.into();
        CallContext::new(Arc::new(caller), "r1", registry.default_timeout())
    }

    fn sampling() -> ClientCapabilities {
        let mut capabilities = ClientCapabilities::default();
        capabilities.sampling = Some(Default::default());
        capabilities
    }

    async fn first_round(registry: &Arc<Registry>) -> InputRequiredResult {
        let round = registry
            .call_in_rounds(ctx(registry, "ada"), "test.ask", json!({}), sampling(), None)
            .await
            .unwrap();
        match round {
            Round::InputRequired(asked) => asked,
            Round::Done(done) => panic!("expected a question, got {:?}", done.map(|r| r.content)),
        }
    }

    #[tokio::test]
    async fn another_caller_cannot_resume_a_parked_call() {
        let registry = registry();
        let asked = first_round(&registry).await;
        let state = asked.request_state.unwrap();
        let resume = Resume {
            request_state: state.clone(),
            responses: InputResponses::new(),
        };
        let stolen = registry
            .call_in_rounds(ctx(&registry, "bob"), "test.ask", json!({}), sampling(), Some(resume))
            .await;
        assert!(matches!(stolen, Err(RoundError::UnknownState)));
        assert_eq!(registry.parked_calls(), 1, "still parked for its caller");
    }

    #[tokio::test]
    async fn an_abandoned_call_is_cancelled_after_its_deadline() {
        let registry = registry_timing_out_after(Duration::from_millis(50));
        first_round(&registry).await;
        assert_eq!(registry.parked_calls(), 1);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while registry.parked_calls() > 0 && tokio::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(registry.parked_calls(), 0);
    }

    #[tokio::test]
    async fn a_client_without_the_capability_is_refused_at_once_with_no_round() {
        let registry = registry();
        let round = registry
            .call_in_rounds(
                ctx(&registry, "ada"),
                "test.ask",
                json!({}),
                ClientCapabilities::default(),
                None,
            )
            .await
            .unwrap();
        let Round::Done(Ok(result)) = round else {
            panic!("expected an answer")
        };
        let text = crate::registry::result_text(&result);
        assert!(text.contains("does not support sampling"), "{text}");
        assert_eq!(registry.parked_calls(), 0);
    }
}

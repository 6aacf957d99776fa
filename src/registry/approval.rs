//! The approval stage of the pipeline: calls to tools that `approvals.require` names wait for a
//! human's decision before they run. The gate behind it (storage, waiting, deciding) is plugged
//! in with [`Registry::set_approval_gate`]; this file holds the contract and the pipeline step.
//!
//! An approved call runs later through [`Registry::call`] again, so it is authorized afresh as
//! its original caller. [`run_approved`] marks that one run so the gate lets it through.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use rmcp::model::CallToolResult;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pipeline::failure_result;
use super::target::Target;
use super::{CallContext, CallError, Caller, FailureKind, Registry, Role, ToolFailure, ToolPolicy};

/// The approval tools themselves never need approval: that would lock the deciders out.
pub const APPROVAL_TOOLS: [&str; 3] = [
    "agentos.approval_decide",
    "agentos.approval_result",
    "agentos.approvals_list",
];

/// The `_meta` key of a pending result naming its approval, so adapters need not parse text.
const APPROVAL_ID_META: &str = "agentos/approvalId";

/// What became of a call held for approval.
#[derive(Debug)]
pub enum Hold {
    /// Approved while the caller waited; this is the approved run's result.
    Ran(CallToolResult),
    /// Denied; the message says by whom and why.
    Denied(String),
    /// Still undecided (or approved and still running) when the wait ended.
    Pending { id: String, message: String },
    /// The approval could not be recorded, expired, or its run failed to start.
    Failed(String),
    /// The client cancelled while waiting; the approval stays pending.
    Cancelled,
}

/// Stores pending approvals and waits for their decisions.
pub trait ApprovalGate: Send + Sync {
    /// Whether calls to `tool` need approval: a tool's native name, `resource:<uri>` or a
    /// prompt's name.
    fn requires(&self, tool: &str) -> bool;
    /// Records a pending approval of this call and waits for its decision, reporting progress.
    /// The wait is the gate's own (`approvals.wait_secs`), not the call's deadline. `tool` is
    /// the operation's encoding ([`super::Operation::encode`]); run it with
    /// [`Registry::perform`] of [`super::Operation::decode`] inside [`run_approved`]. `shown`
    /// is `input` as it may be stored and shown to deciders (sensitive values redacted, see
    /// [`super::Redaction`]); the real `input` must be kept out of sight until the call runs.
    fn hold<'a>(
        &'a self,
        ctx: &'a CallContext,
        tool: &'a str,
        input: &'a Value,
        shown: &'a Value,
    ) -> BoxFuture<'a, Hold>;
    /// Expires pending approvals past their time and wakes whoever waits on them.
    fn sweep(&self) -> BoxFuture<'_, usize>;
    /// Denies every pending approval of a disabled agent, so nobody can approve a call it can
    /// no longer make, and wakes whoever waits on them.
    fn withdraw(&self, agent_id: &str) -> BoxFuture<'_, usize>;
}

impl Registry {
    /// The approve stage: `None` lets the call run now; `Some` is the held call's answer.
    pub(super) async fn approve(
        &self,
        target: &Target,
        ctx: &CallContext,
        input: &Value,
    ) -> Option<Result<CallToolResult, CallError>> {
        let gate = self.approvals.get()?;
        let name = &target.record;
        if APPROVAL_TOOLS.contains(&&**name) || !gate.requires(name) || take_approved(&target.encoded) {
            return None;
        }
        if ctx.caller.skill.is_some() {
            // A skill cannot wait for a person, and an approved run later would run outside the
            // skill's limits: refuse it, and let the agent call the tool itself.
            return Some(Ok(failure_result(ToolFailure::forbidden(format!(
                "`{name}` needs a person's approval, which a skill's host call cannot wait for; \
                 call `{name}` yourself instead of through the skill"
            )))));
        }
        tracing::info!("call held for approval");
        let redaction = target.redaction();
        let shown = redaction.input(input).value;
        Some(match gate.hold(ctx, &target.encoded, input, &shown).await {
            Hold::Ran(result) => Ok(result),
            Hold::Denied(message) => Ok(failure_result(ToolFailure::new(message).with_kind(FailureKind::Denied))),
            Hold::Pending { id, message } => {
                let mut result = failure_result(ToolFailure::new(message).with_kind(FailureKind::Pending));
                if let Some(meta) = &mut result.meta {
                    meta.0.insert(APPROVAL_ID_META.into(), Value::String(id));
                }
                Ok(result)
            }
            Hold::Failed(message) => Ok(failure_result(ToolFailure::new(message))),
            Hold::Cancelled => Err(CallError::Cancelled(name.to_string())),
        })
    }
}

/// The approval a pending result waits for.
pub fn approval_id_of(result: &CallToolResult) -> Option<&str> {
    result.meta.as_ref()?.0.get(APPROVAL_ID_META)?.as_str()
}

tokio::task_local! {
    static APPROVED: ApprovedRun;
}

/// The one call an approval allows. A task-local rather than a context field: contexts are
/// cloned into nested calls (workflow steps), and only the approved call itself may pass.
struct ApprovedRun {
    tool: Arc<str>,
    used: AtomicBool,
}

/// Runs `call` (a [`Registry::call`] of `tool`) as the execution of an approved approval: its
/// first pass through the approve stage for `tool` is let through; any other call is gated.
pub async fn run_approved<F: Future>(tool: &str, call: F) -> F::Output {
    let run = ApprovedRun {
        tool: Arc::from(tool),
        used: AtomicBool::new(false),
    };
    APPROVED.scope(run, call).await
}

fn take_approved(tool: &str) -> bool {
    APPROVED
        .try_with(|run| &*run.tool == tool && !run.used.swap(true, Ordering::SeqCst))
        .unwrap_or(false)
}

/// A fresh approval id: `apr_` and 32 hex digits.
pub fn new_approval_id() -> String {
    format!("apr_{}", uuid::Uuid::new_v4().simple())
}

/// Whether `id` has the shape of an approval id (checked before any lookup).
pub fn is_approval_id(id: &str) -> bool {
    id.strip_prefix("apr_")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// The caller as it was when it asked, kept with the approval for when no directory can say
/// who the agent is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallerSnapshot {
    pub agent_id: String,
    pub role: Role,
    pub account_id: Option<String>,
    pub tools: ToolPolicy,
    pub domains: Vec<String>,
}

impl From<&Caller> for CallerSnapshot {
    fn from(caller: &Caller) -> Self {
        Self {
            agent_id: caller.agent_id.to_string(),
            role: caller.role,
            account_id: caller.account_id.as_deref().map(str::to_owned),
            tools: caller.tools.clone(),
            domains: caller.allowed_domains.to_vec(),
        }
    }
}

impl From<CallerSnapshot> for Caller {
    fn from(snapshot: CallerSnapshot) -> Self {
        Caller {
            agent_id: Arc::from(snapshot.agent_id),
            role: snapshot.role,
            account_id: snapshot.account_id.map(Arc::from),
            tools: snapshot.tools,
            allowed_domains: Arc::from(snapshot.domains),
            // A skill's host calls are never held (see `approve`).
            skill: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_shape() {
        let id = new_approval_id();
        assert!(is_approval_id(&id), "{id}");
        assert!(!is_approval_id("apr_xyz"));
        assert!(!is_approval_id(&id.to_uppercase()));
        assert!(!is_approval_id(&format!("{id}0")));
        assert!(!is_approval_id("../etc/passwd"));
    }

    #[test]
    fn snapshots_round_trip_a_caller() {
        let mut caller = Caller::agent(
            "a1",
            ToolPolicy::parse(&["mcp.x.*"]).unwrap(),
            vec!["example.com".into()],
        );
        caller.role = Role::Operator;
        caller.account_id = Some(Arc::from("acct"));
        let snapshot = CallerSnapshot::from(&caller);
        let text = serde_json::to_string(&snapshot).unwrap();
        let back: CallerSnapshot = serde_json::from_str(&text).unwrap();
        let restored = Caller::from(back);
        assert_eq!(&*restored.agent_id, "a1");
        assert_eq!(restored.role, Role::Operator);
        assert_eq!(restored.account_id.as_deref(), Some("acct"));
        assert!(restored.tools.allows("mcp.x.y") && !restored.tools.allows("mcp.z.y"));
        assert_eq!(&*restored.allowed_domains, ["example.com".to_owned()]);
    }

    #[tokio::test]
    async fn an_approved_run_passes_once_and_only_for_its_tool() {
        assert!(!take_approved("t"), "outside an approved run nothing passes");
        run_approved("t", async {
            assert!(!take_approved("other"));
            assert!(take_approved("t"));
            assert!(!take_approved("t"), "a nested call of the same tool is gated again");
        })
        .await;
    }
}

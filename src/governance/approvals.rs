//! Approvals: calls to tools named in `approvals.require` wait for a human's decision. The gate
//! (`gate`) holds them in the pipeline; the tools here list, decide and fetch approvals, with the
//! same visibility rule as the audit trail. REST's `/api/approvals` routes call these tools.

mod coverage;
mod gate;
mod rules;

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::Governance;
use super::access::{may_name, may_see_approval, visibility};
use crate::registry::{AgentStop, Audience, Hints, StopKind, Tool, ToolBuilder, ToolFailure};
use crate::store::{ApprovalRecord, ApprovalStatus};

pub use coverage::{CoverageError, check_coverage};
pub use gate::Approvals;

/// How often pending approvals past their time are expired.
const SWEEP_EVERY: Duration = Duration::from_secs(15);

/// Creates the gate, plugs it into `registry`'s pipeline and returns the approval tools.
pub(super) fn install(gov: &Governance) -> Vec<Arc<dyn Tool>> {
    let Some(registry) = gov.registry() else {
        return Vec::new();
    };
    let gate = Arc::new(Approvals::new(
        gov.store.clone(),
        Arc::downgrade(&registry),
        &gov.config.approvals,
        gov.config.call_timeout(),
        gov.sealer.clone(),
    ));
    gate.follow_store();
    if !registry.set_approval_gate(gate.clone()) {
        tracing::warn!("an approval gate was already installed; keeping it");
    }
    tools(gate, gov)
}

/// Expires undecided approvals (waking their waiters), and withdraws those of agents that get
/// disabled, until `shutdown`.
pub(super) fn start(gov: &Governance, shutdown: CancellationToken) {
    let Some(registry) = gov.registry() else {
        return;
    };
    let Some(gate) = registry.approval_gate() else {
        return;
    };
    let mut stops = registry.agent_stops();
    drop(registry);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => {
                    let expired = gate.sweep().await;
                    if expired > 0 {
                        tracing::info!(expired, "expired undecided approvals");
                    }
                }
                stop = stops.recv() => match stop {
                    Ok(AgentStop { agent_id, kind: StopKind::Disabled }) => {
                        let withdrawn = gate.withdraw(&agent_id).await;
                        if withdrawn > 0 {
                            tracing::info!(agent = %agent_id, withdrawn, "withdrew a disabled agent's approvals");
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "missed agent stops; their approvals expire on their own");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Decision {
    Approve,
    Deny,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum StatusArg {
    Pending,
    Approved,
    Denied,
    Completed,
    Failed,
    Expired,
}

impl StatusArg {
    fn status(self) -> ApprovalStatus {
        match self {
            Self::Pending => ApprovalStatus::Pending,
            Self::Approved => ApprovalStatus::Approved,
            Self::Denied => ApprovalStatus::Denied,
            Self::Completed => ApprovalStatus::Completed,
            Self::Failed => ApprovalStatus::Failed,
            Self::Expired => ApprovalStatus::Expired,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DecideArgs {
    /// The approval's id (`apr_` and 32 hex digits), from agentos.approvals_list.
    #[schemars(pattern(r"^apr_[0-9a-f]{32}$"))]
    id: String,
    /// `approve` runs the held call now, as the agent that made it; `deny` refuses it.
    decision: Decision,
    /// Why; the requesting agent sees it (most useful with `deny`).
    #[schemars(length(max = 1000))]
    note: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct IdArgs {
    /// The approval's id (`apr_` and 32 hex digits), as the held call's message named it.
    #[schemars(pattern(r"^apr_[0-9a-f]{32}$"))]
    id: String,
}

fn default_limit() -> u32 {
    50
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListArgs {
    /// Only approvals in this state; `pending` ones await a decision.
    status: Option<StatusArg>,
    /// Only this agent's requests (yourself, or an agent you oversee).
    agent_id: Option<String>,
    /// Most approvals to return (1-200), newest first.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 200))]
    limit: u32,
}

/// An approval as the tools show it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ApprovalOut {
    id: String,
    /// `pending` (awaiting a decision), `approved` (running), `denied`, `completed` (ran; see
    /// `result`), `failed` (approved but could not run; see `error`) or `expired`.
    status: String,
    /// The held tool call's tool.
    tool: String,
    /// The agent that made the call.
    agent_id: String,
    /// RFC 3339.
    created_at: String,
    /// When a pending approval expires undecided (RFC 3339).
    expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_at: Option<String>,
    /// The agent that decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    /// The call's input, pretty-printed and cut at about 2 KB (listings only).
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<String>,
    /// Once `completed`: the call's MCP result (`content`, `structuredContent`, `isError`).
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    /// Once `failed`: why the approved call could not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ListResult {
    /// Newest first.
    approvals: Vec<ApprovalOut>,
    count: usize,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn out(record: ApprovalRecord, with_preview: bool) -> ApprovalOut {
    let (result, error) = match record.status {
        ApprovalStatus::Completed => (
            record.result.as_deref().and_then(|r| serde_json::from_str(r).ok()),
            None,
        ),
        ApprovalStatus::Failed => (None, record.result),
        _ => (None, None),
    };
    ApprovalOut {
        id: record.id,
        status: record.status.as_str().to_owned(),
        tool: record.tool,
        agent_id: record.agent_id,
        created_at: rfc3339(record.created_at),
        expires_at: rfc3339(record.expires_at),
        decided_at: record.decided_at.map(rfc3339),
        decided_by: record.decided_by,
        note: record.note,
        preview: with_preview.then_some(record.preview),
        result,
        error,
    }
}

fn tools(gate: Arc<Approvals>, gov: &Governance) -> Vec<Arc<dyn Tool>> {
    let (decide_gate, result_gate, list_gate) = (gate.clone(), gate.clone(), gate);
    let gov = gov.clone();
    // A held call's message sends its agent here, so once calls can be held every agent may
    // fetch its outcome, whatever its policy (the tool shows no one else's approvals). Without
    // approval rules nothing is ever held, and the tool follows the policy like any other.
    let result_audience = if gov.config.approvals.require.is_empty() {
        Audience::ByPolicy
    } else {
        Audience::Everyone
    };
    vec![
        ToolBuilder::new("agentos.approval_decide")
            .title("Approve or deny a held tool call")
            .description(
                "Decides a pending approval: a tool call an agent made that needs a human's \
                 consent before it runs. Read the approval's tool and input preview first \
                 (agentos.approvals_list). `approve` runs the call at once, exactly as the agent \
                 made it and with that agent's current permissions; its result then appears in \
                 agentos.approval_result (and reaches the agent directly if it is still waiting). \
                 `deny` refuses it; your note is shown to the agent. You may decide approvals of \
                 agents you oversee, but never your own (unless you are an ops-admin). Only pending \
                 approvals can be decided.",
            )
            .hints(Hints {
                read_only: false,
                destructive: true,
                idempotent: false,
                open_world: true,
            })
            .handler(move |args: DecideArgs, ctx| {
                let gate = decide_gate.clone();
                async move {
                    let approve = matches!(args.decision, Decision::Approve);
                    let decided = gate
                        .decide(&ctx.caller, &args.id, approve, args.note.as_deref())
                        .await?;
                    Ok(out(decided, false))
                }
            }),
        ToolBuilder::new("agentos.approval_result")
            .title("Get the outcome of an approval")
            .description(
                "Returns where an approval stands: `pending` (no decision yet), `approved` (the \
                 call is running), `denied` (with the decider's note), `expired`, `failed` (approved \
                 but it could not run; see `error`), or `completed` with `result`: the held call's \
                 own MCP result. Use the id from the message of a call that was held for approval. \
                 Works for your own approvals and those of agents you oversee.",
            )
            .hints(Hints::READ_ONLY)
            .audience(result_audience)
            .handler(move |args: IdArgs, ctx| {
                let gate = result_gate.clone();
                async move {
                    let record = gate
                        .store()
                        .approval_get(&args.id)
                        .await?
                        .filter(|record| may_see_approval(&ctx.caller, record))
                        .ok_or_else(|| rules::not_found(&args.id))?;
                    Ok(out(record, false))
                }
            }),
        ToolBuilder::new("agentos.approvals_list")
            .title("List approvals")
            .description(
                "Lists approvals of held tool calls, newest first, with each call's tool and a \
                 preview of its input. You see your own; an operator also sees its account's \
                 agents', an ops-admin everyone's. Use status=pending to find what awaits a \
                 decision, then agentos.approval_decide.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: ListArgs, ctx| {
                let (gate, gov) = (list_gate.clone(), gov.clone());
                async move {
                    if let Some(agent) = &args.agent_id {
                        let registry = gov.registry();
                        if !may_name(&ctx.caller, registry.as_deref(), agent).await {
                            return Err(ToolFailure::forbidden(format!(
                                "you may only list your own approvals (and, as an operator, those of \
                                 your account's agents); `{agent}` is not one of them"
                            )));
                        }
                    }
                    let limit = usize::try_from(args.limit.clamp(1, 200)).unwrap_or(200);
                    let records = gate
                        .store()
                        .approval_list(
                            &visibility(&ctx.caller),
                            args.status.map(StatusArg::status),
                            args.agent_id.as_deref(),
                            limit,
                        )
                        .await?;
                    let approvals: Vec<ApprovalOut> = records.into_iter().map(|r| out(r, true)).collect();
                    Ok(ListResult {
                        count: approvals.len(),
                        approvals,
                    })
                }
            }),
    ]
}

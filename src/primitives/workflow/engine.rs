//! Executing a planned workflow: one registry call per step, in order, recording each step as
//! it starts and ends.
//!
//! Steps pass each other their real outputs in memory; what is recorded (stored, and returned
//! as the run's steps) is redacted by each step's tool (`registry::Redaction`), and every value
//! a step's input or output held as sensitive is scrubbed from the records of every later step
//! too, since a later step may echo what it was handed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::refs::{self, StepNames};
use super::{OnError, StepInfo, WorkflowResult};
use crate::primitives::Services;
use crate::registry::{CallContext, Caller, Registry, Secrets, bounded_json, output_of, result_text};
use crate::store::{StepOutcome, Store, WORKFLOW_RUNNING, now_ms};

/// A workflow whose steps were checked and stored.
pub(super) struct Plan {
    pub id: String,
    pub owner: String,
    pub names: StepNames,
    pub steps: Vec<PlannedStep>,
    pub background: bool,
    pub created_at_ms: i64,
}

pub(super) struct PlannedStep {
    pub id: String,
    /// The native name.
    pub tool: String,
    pub input: Value,
    pub on_error: OnError,
}

/// How steps get their call context.
pub(super) enum Mode {
    /// Steps share the workflow call's deadline and cancellation, so cancelling the call stops
    /// the workflow (the running step with it).
    Foreground(CallContext),
    /// Each step gets its own deadline; the run outlives the call that started it. Each step
    /// runs as the agent is when it starts (a disabled agent's run stops), under `cancel`
    /// (`agentos.workflow_cancel`, or the agent being disabled).
    Background {
        caller: Arc<Caller>,
        timeout: Duration,
        cancel: CancellationToken,
    },
}

impl Plan {
    /// The run as it is before any step ran.
    pub fn initial_result(&self) -> WorkflowResult {
        WorkflowResult {
            id: self.id.clone(),
            status: WORKFLOW_RUNNING.to_owned(),
            background: self.background,
            error: None,
            created_at_ms: self.created_at_ms,
            finished_at_ms: None,
            steps: self
                .steps
                .iter()
                .map(|step| StepInfo {
                    id: step.id.clone(),
                    tool: step.tool.clone(),
                    status: "pending".to_owned(),
                    result: None,
                    result_truncated: false,
                    error: None,
                    started_at_ms: None,
                    finished_at_ms: None,
                })
                .collect(),
        }
    }
}

fn step_context(mode: &Mode, run_id: &str, index: usize) -> CallContext {
    match mode {
        Mode::Foreground(parent) => CallContext {
            caller: parent.caller.clone(),
            request_id: Arc::from(format!("{}/workflow:{run_id}:{index}", parent.request_id)),
            deadline: parent.deadline,
            cancel: parent.cancel.clone(),
            progress: None,
            // A step of a foreground run is still this caller's call: its server may ask them.
            client_channel: parent.client_channel.clone(),
            // Steps are children of the workflow_run call's span, in its trace.
            trace: parent.trace.clone(),
            // Each step is charged like the call that started the workflow, to the same budget.
            limit_class: parent.limit_class,
            client: parent.client,
            rate_report: parent.rate_report.clone(),
        },
        Mode::Background {
            caller,
            timeout,
            cancel,
        } => {
            let mut ctx = CallContext::new(caller.clone(), format!("workflow:{run_id}:{index}"), *timeout)
                .with_front_door("workflow");
            ctx.cancel = Arc::new(cancel.child_token());
            ctx
        }
    }
}

const CANCELLED: &str = "stopped: the run was cancelled (agentos.workflow_cancel, or its agent was disabled)";

/// Why a background run may not start its next step: cancelled, or its agent can no longer act.
/// Otherwise refreshes the caller to the agent as it is now.
async fn may_continue(registry: &Registry, mode: &mut Mode, owner: &str) -> Result<(), String> {
    let Mode::Background { caller, cancel, .. } = mode else {
        return Ok(());
    };
    if cancel.is_cancelled() {
        return Err(CANCELLED.to_owned());
    }
    let Some(directory) = registry.directory() else {
        return Ok(());
    };
    match directory.lookup(owner).await {
        Some(now) => {
            *caller = Arc::new(now);
            Ok(())
        }
        None => Err(format!("stopped: agent `{owner}` is disabled or no longer exists")),
    }
}

/// Marks the run failed if its future is dropped before it finished (the call was cancelled
/// or ran past its deadline, and the registry dropped it).
struct Unfinished {
    store: Arc<dyn Store>,
    owner: String,
    run_id: String,
    armed: bool,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (store, owner, run_id) = (self.store.clone(), self.owner.clone(), self.run_id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let message = "stopped: the workflow_run call was cancelled or ran past its deadline \
                               (use background: true for long workflows)";
                if let Err(error) = store
                    .workflow_finish(&owner, &run_id, "failed", Some(message.to_owned()), now_ms())
                    .await
                {
                    tracing::error!(workflow = %run_id, %error, "cannot record a stopped workflow");
                }
            });
        }
    }
}

fn log_store_error(run_id: &str, result: Result<(), crate::store::StoreError>) {
    if let Err(error) = result {
        tracing::error!(workflow = %run_id, %error, "cannot record workflow progress");
    }
}

/// Runs every step and records the outcome; returns the finished run.
pub(super) async fn execute(services: Services, registry: Arc<Registry>, plan: Plan, mut mode: Mode) -> WorkflowResult {
    let store = services.store.clone();
    let max_bytes = services.config.workflow.max_result_bytes;
    let mut guard = Unfinished {
        store: store.clone(),
        owner: plan.owner.clone(),
        run_id: plan.id.clone(),
        armed: true,
    };
    let mut result = plan.initial_result();
    let total = plan.steps.len();
    let mut outputs: Vec<Option<Value>> = vec![None; total];
    let mut stopped: Option<String> = None;
    // Every sensitive value met so far in this run.
    let mut secrets = Secrets::default();
    for (index, step) in plan.steps.iter().enumerate() {
        if let Err(reason) = may_continue(&registry, &mut mode, &plan.owner).await {
            stopped = Some(reason);
            break;
        }
        if let Mode::Foreground(ctx) = &mode
            && ctx.cancel.is_cancelled()
        {
            stopped = Some("stopped: the workflow_run call was cancelled".to_owned());
            break;
        }
        let started = now_ms();
        log_store_error(
            &plan.id,
            store.workflow_step_started(&plan.owner, &plan.id, index, started).await,
        );
        // Progress follows the record, so a client told a step started finds it `running`.
        if let Mode::Foreground(ctx) = &mode {
            ctx.report_progress(
                index as f64,
                Some(total as f64),
                Some(format!("step `{}`: {}", step.id, step.tool)),
            )
            .await;
        }
        let redaction = registry.redaction(&step.tool);
        let outcome = match refs::resolve(&step.input, &plan.names, index, &outputs) {
            Err(message) => Err(format!("step `{}`: {message}", step.id)),
            Ok(input) => {
                secrets.extend(&redaction.input(&input).secrets);
                match registry
                    .call(&step_context(&mode, &plan.id, index), &step.tool, input)
                    .await
                {
                    Ok(call) if call.is_error == Some(true) => Err(result_text(&call)),
                    Ok(call) => Ok(output_of(&call)),
                    Err(error) => Err(error.to_string()),
                }
            }
        };
        let info = &mut result.steps[index];
        info.started_at_ms = Some(started);
        info.finished_at_ms = Some(now_ms());
        let record = match outcome {
            Ok(output) => {
                let (recorded, found) = redaction.output(&output, &secrets);
                secrets = found;
                let (text, truncated) = bounded_json(&recorded, max_bytes);
                info.status = "succeeded".to_owned();
                info.result = Some(if truncated {
                    serde_json::from_str(&text).unwrap_or(Value::Null)
                } else {
                    recorded
                });
                info.result_truncated = truncated;
                outputs[index] = Some(output);
                (Some(text), truncated)
            }
            Err(error) => {
                info.status = "failed".to_owned();
                info.error = Some(secrets.scrub_text(&error).into_owned());
                (None, false)
            }
        };
        log_store_error(
            &plan.id,
            store
                .workflow_step_finished(
                    &plan.owner,
                    &plan.id,
                    index,
                    StepOutcome {
                        status: info.status.clone(),
                        result: record.0,
                        result_truncated: record.1,
                        error: info.error.clone(),
                        started_at_ms: started,
                        finished_at_ms: info.finished_at_ms.unwrap_or(started),
                    },
                )
                .await,
        );
        if let Mode::Background { cancel, .. } = &mode
            && cancel.is_cancelled()
        {
            stopped = Some(CANCELLED.to_owned());
            break;
        }
        if info.status == "failed" && step.on_error == OnError::Stop {
            stopped = Some(format!(
                "step `{}` failed and its onError is `stop`; the steps after it were skipped",
                step.id
            ));
            break;
        }
    }
    for info in result.steps.iter_mut().filter(|s| s.status == "pending") {
        info.status = "skipped".to_owned();
    }
    let failures = result.steps.iter().filter(|s| s.status == "failed").count();
    let (status, error) = match stopped {
        Some(reason) => ("failed", Some(reason)),
        None if failures == 0 => ("succeeded", None),
        None if failures == total => ("failed", Some("every step failed".to_owned())),
        None => ("partial", Some(format!("{failures} of {total} steps failed"))),
    };
    result.status = status.to_owned();
    result.error = error.clone();
    result.finished_at_ms = Some(now_ms());
    log_store_error(
        &plan.id,
        store
            .workflow_finish(
                &plan.owner,
                &plan.id,
                status,
                error,
                result.finished_at_ms.unwrap_or_default(),
            )
            .await,
    );
    guard.armed = false;
    tracing::info!(workflow = %plan.id, status, "workflow finished");
    result
}

//! Workflows: ordered tool calls whose inputs may take values from earlier outputs.
//!
//! Every step is an ordinary registry call as the workflow's caller, so each is authorized,
//! validated and traced like a direct call. Runs and step results are stored per agent. A
//! workflow may start another (a step calling `agentos.workflow_run`), but only `max_depth`
//! deep, and all steps of a nest of workflows together count against one `max_steps` budget.

mod engine;
mod instance;
mod refs;
mod running;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::Services;
use crate::registry::{CallContext, Caller, Hints, Registry, Tool, ToolBuilder, ToolFailure};
use crate::store::{NewWorkflowRun, WORKFLOW_RUNNING, WorkflowRunRecord, now_ms};
use engine::{Mode, Plan, PlannedStep};
use refs::StepNames;
use running::Running;

/// What a run interrupted by the end of its process says.
const INTERRUPTED: &str = "interrupted by restart: agentos stopped while this workflow was running";
/// How often a long-running process looks for runs of processes that have ended.
const RECOVERY_INTERVAL: Duration = Duration::from_secs(30);
const MAX_STEP_ID_CHARS: usize = 64;

/// What to do when a step fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum OnError {
    /// Stop the workflow; later steps are skipped and the workflow is `failed`.
    #[default]
    Stop,
    /// Go on with the next step; the workflow ends `partial`.
    Continue,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StepArgs {
    /// A name for this step, for `$from` references and in the results (1-64 characters, not
    /// only digits). Default: its 0-based position, e.g. `"0"`.
    id: Option<String>,
    /// The tool to call, e.g. `agentos.mem_get`; only tools you may call yourself.
    #[schemars(length(min = 1, max = 128))]
    tool: String,
    /// The tool's input (default `{}`). Any value in it (at any depth) may be a reference
    /// `{"$from": "<earlier step id or 0-based index>", "pointer": "/a/b"}`: it is replaced by
    /// the value at that JSON Pointer in the earlier step's output (its structured result;
    /// omit `pointer` for the whole output). The step fails with a clear error if that step
    /// failed or the pointer does not exist.
    #[serde(default)]
    input: Map<String, Value>,
    /// `stop` (default): a failure ends the workflow, which is `failed`. `continue`: go on with
    /// the next step; the workflow ends `partial`.
    #[serde(default)]
    on_error: OnError,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RunArgs {
    /// The steps, run in order, each after the previous one finished.
    #[schemars(length(min = 1))]
    steps: Vec<StepArgs>,
    /// Return at once with status `running` and run in the background; follow it with
    /// agentos.workflow_get. Use it for workflows longer than one call may last. Default false.
    #[serde(default)]
    background: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GetArgs {
    /// The workflow run's id, as agentos.workflow_run or agentos.workflow_list returned it.
    #[schemars(length(min = 1, max = 100))]
    id: String,
    /// Ops-admins only: the agent whose run it is (default: yours).
    #[schemars(length(min = 1, max = 64))]
    agent_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListArgs {
    /// Ops-admins only: list this agent's runs (default: yours).
    #[schemars(length(min = 1, max = 64))]
    agent_id: Option<String>,
    /// How many runs, newest first (1 to 100, default 20).
    #[schemars(range(min = 1, max = 100))]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct RunSummary {
    /// Pass it to agentos.workflow_get or agentos.workflow_cancel.
    id: String,
    /// `running`, `succeeded`, `failed` or `partial`.
    status: String,
    background: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at_ms: Option<i64>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ListResult {
    /// Newest first.
    runs: Vec<RunSummary>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct CancelResult {
    id: String,
    /// True if the run was running in the background here and is now stopping (it ends
    /// `failed`, the step in progress cancelled); false if it had already ended or is not a
    /// background run of this agentos process.
    cancelled: bool,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct StepInfo {
    id: String,
    tool: String,
    /// `pending`, `running`, `succeeded`, `failed` or `skipped`.
    status: String,
    /// The step's output (its structured result, else its text), when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    /// True if `result` is only the beginning of the output's JSON text, cut to fit.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    result_truncated: bool,
    /// Why the step failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct WorkflowResult {
    /// Pass it to agentos.workflow_get.
    id: String,
    /// `running`, `succeeded` (every step succeeded), `failed` (a `stop` step failed, every
    /// step failed, or the run was interrupted) or `partial` (some `continue` steps failed).
    status: String,
    /// Whether it runs in the background.
    background: bool,
    /// What went wrong, when the status is not `succeeded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    created_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at_ms: Option<i64>,
    steps: Vec<StepInfo>,
}

impl From<WorkflowRunRecord> for WorkflowResult {
    fn from(run: WorkflowRunRecord) -> Self {
        Self {
            id: run.id,
            status: run.status,
            background: run.background,
            error: run.error,
            created_at_ms: run.created_at_ms,
            finished_at_ms: run.finished_at_ms,
            steps: run
                .steps
                .into_iter()
                .map(|step| StepInfo {
                    id: step.id,
                    tool: step.tool,
                    status: step.status,
                    result: step
                        .result
                        .map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text))),
                    result_truncated: step.result_truncated,
                    error: step.error,
                    started_at_ms: step.started_at_ms,
                    finished_at_ms: step.finished_at_ms,
                })
                .collect(),
        }
    }
}

tokio::task_local! {
    /// Set while a workflow's steps run, so a nested `agentos.workflow_run` knows its depth and
    /// shares its parent's step budget.
    static NESTING: Nesting;
}

#[derive(Debug, Clone)]
struct Nesting {
    depth: usize,
    /// Steps the whole nest of workflows may still start.
    budget: Arc<AtomicUsize>,
}

/// Takes `steps` from the budget of the enclosing workflow, or opens a new budget.
fn enter(max_steps: usize, max_depth: usize, steps: usize) -> Result<Nesting, ToolFailure> {
    let Ok(outer) = NESTING.try_with(Clone::clone) else {
        if steps > max_steps {
            return Err(ToolFailure::new(format!(
                "`steps` has {steps} steps; a workflow may have at most {max_steps}. Split it into several workflows"
            )));
        }
        return Ok(Nesting {
            depth: 1,
            budget: Arc::new(AtomicUsize::new(max_steps - steps)),
        });
    };
    let depth = outer.depth + 1;
    if depth > max_depth.max(1) {
        return Err(ToolFailure::new(format!(
            "workflows may nest at most {max_depth} deep; this workflow_run is a step of a workflow at depth {}. \
             Put these steps into the outer workflow instead",
            outer.depth
        )));
    }
    outer
        .budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(steps))
        .map_err(|left| {
            ToolFailure::new(format!(
                "this nested workflow has {steps} steps but only {left} remain of the {max_steps} allowed \
                 for a workflow and the workflows its steps start"
            ))
        })?;
    Ok(Nesting {
        depth,
        budget: outer.budget,
    })
}

/// Checks the steps (ids, tools, references) before anything runs.
fn plan(
    registry: &Registry,
    caller: &Caller,
    steps: Vec<StepArgs>,
) -> Result<(Vec<PlannedStep>, StepNames), ToolFailure> {
    let mut ids = Vec::with_capacity(steps.len());
    let mut seen = HashSet::new();
    for (index, step) in steps.iter().enumerate() {
        let id = match &step.id {
            None => index.to_string(),
            Some(id) => {
                if id.is_empty() || id.chars().count() > MAX_STEP_ID_CHARS || id.chars().any(char::is_control) {
                    return Err(ToolFailure::new(format!(
                        "steps[{index}].id must be 1-64 characters without control characters"
                    )));
                }
                if id.chars().all(|c| c.is_ascii_digit()) {
                    return Err(ToolFailure::new(format!(
                        "steps[{index}].id `{id}` is only digits, which would be read as a step position; \
                         add a letter (e.g. `step{id}`)"
                    )));
                }
                id.clone()
            }
        };
        if !seen.insert(id.clone()) {
            return Err(ToolFailure::new(format!(
                "steps[{index}].id `{id}` is used twice; give each step its own id"
            )));
        }
        ids.push(id);
    }
    let names = StepNames::new(&ids);
    let planned = steps
        .into_iter()
        .enumerate()
        .map(|(index, step)| {
            let id = &ids[index];
            let entry = registry.resolve_for(caller, &step.tool).ok_or_else(|| {
                ToolFailure::new(format!(
                    "step `{id}` (steps[{index}].tool): unknown tool `{}`; call agentos.tools_search to find one",
                    step.tool
                ))
            })?;
            let input = Value::Object(step.input);
            refs::check(&input, &names, index)
                .map_err(|message| ToolFailure::new(format!("step `{id}` (steps[{index}].input): {message}")))?;
            Ok(PlannedStep {
                id: id.clone(),
                tool: entry.name().to_string(),
                input,
                on_error: step.on_error,
            })
        })
        .collect::<Result<Vec<_>, ToolFailure>>()?;
    Ok((planned, names))
}

async fn run(
    services: &Services,
    running: &Arc<Running>,
    args: RunArgs,
    ctx: CallContext,
) -> Result<WorkflowResult, ToolFailure> {
    let config = &services.config.workflow;
    let registry = services.registry()?;
    if args.steps.is_empty() {
        return Err(ToolFailure::new("`steps` must list at least one step"));
    }
    let (steps, names) = plan(&registry, &ctx.caller, args.steps)?;
    let nesting = enter(config.max_steps, config.max_depth, steps.len())?;
    if let Err(error) = instance::hold(&services.config.data_dir) {
        tracing::warn!(%error, "cannot hold the workflow instance lock; a restart elsewhere may mark this run interrupted");
    }
    let now = now_ms();
    let plan = Plan {
        id: uuid::Uuid::new_v4().simple().to_string(),
        owner: ctx.caller.agent_id.to_string(),
        names,
        steps,
        background: args.background,
        created_at_ms: now,
    };
    services
        .store
        .workflow_create(
            NewWorkflowRun {
                id: plan.id.clone(),
                owner: plan.owner.clone(),
                background: plan.background,
                instance: instance::id().to_owned(),
                created_at_ms: now,
                steps: plan.steps.iter().map(|s| (s.id.clone(), s.tool.clone())).collect(),
            },
            config.max_runs_kept,
        )
        .await?;
    tracing::info!(workflow = %plan.id, steps = plan.steps.len(), background = plan.background, depth = nesting.depth, "workflow started");
    if args.background {
        let started = plan.initial_result();
        let cancel = registry.work_token(&plan.owner);
        let mode = Mode::Background {
            caller: ctx.caller.clone(),
            timeout: registry.default_timeout(),
            cancel: cancel.clone(),
        };
        let (running, services) = (running.clone(), services.clone());
        tokio::spawn(NESTING.scope(nesting, async move {
            let _entry = running.enter(&plan.id, &plan.owner, cancel);
            engine::execute(services, registry, plan, mode).await
        }));
        return Ok(started);
    }
    Ok(NESTING
        .scope(
            nesting,
            engine::execute(services.clone(), registry, plan, Mode::Foreground(ctx)),
        )
        .await)
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let (run_s, get_s, list_s, cancel_s) = (services.clone(), services.clone(), services.clone(), services.clone());
    let running = Arc::new(Running::default());
    let cancel_running = running.clone();
    vec![
        ToolBuilder::new("agentos.workflow_run")
            .title("Run tool calls in sequence")
            .description(
                "Runs several tool calls in order, as you, each after the previous one finished, \
                 and returns every step's status and result. A step's input can use an earlier \
                 step's output: write {\"$from\": \"<step id or index>\", \"pointer\": \"/a/b\"} \
                 where the value should go. onError per step: `stop` (default) ends the workflow \
                 as `failed`, `continue` goes on (the workflow ends `partial`). With background: \
                 true it returns {id, status: \"running\"} at once; poll agentos.workflow_get. \
                 Status is succeeded, failed or partial.",
            )
            .hints(Hints {
                read_only: false,
                destructive: false,
                idempotent: false,
                open_world: true,
            })
            .handler(move |args: RunArgs, ctx| {
                let (services, running) = (run_s.clone(), running.clone());
                async move { run(&services, &running, args, ctx).await }
            }),
        ToolBuilder::new("agentos.workflow_get")
            .title("Workflow run status")
            .description(
                "Returns one of your workflow runs with its current status (running, succeeded, \
                 failed, partial) and each step's status, result or error, and timing. Use it to \
                 follow a workflow started with background: true.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: GetArgs, ctx| {
                let services = get_s.clone();
                async move {
                    let owner = super::subject(&ctx, args.agent_id.as_deref())?;
                    let run = services.store.workflow_get(owner, &args.id).await?.ok_or_else(|| {
                        ToolFailure::new(format!(
                            "no workflow run `{}` of `{owner}`; agentos.workflow_list shows the runs",
                            args.id
                        ))
                    })?;
                    Ok(WorkflowResult::from(run))
                }
            }),
        ToolBuilder::new("agentos.workflow_list")
            .title("List workflow runs")
            .description(
                "Lists your workflow runs, newest first, with status (running, succeeded, failed, \
                 partial), whether each runs in the background, and timing; agentos.workflow_get \
                 shows one with its steps. Ops-admins may name another agent with agentId.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: ListArgs, ctx| {
                let services = list_s.clone();
                async move {
                    let owner = super::subject(&ctx, args.agent_id.as_deref())?;
                    let limit = args.limit.unwrap_or(20);
                    if !(1..=100).contains(&limit) {
                        return Err(ToolFailure::invalid_input("`limit` must be between 1 and 100"));
                    }
                    let runs = services.store.workflow_list(owner, limit).await?;
                    Ok(ListResult {
                        runs: runs
                            .into_iter()
                            .map(|run| RunSummary {
                                id: run.id,
                                status: run.status,
                                background: run.background,
                                error: run.error,
                                created_at_ms: run.created_at_ms,
                                finished_at_ms: run.finished_at_ms,
                            })
                            .collect(),
                    })
                }
            }),
        ToolBuilder::new("agentos.workflow_cancel")
            .title("Cancel a background workflow")
            .description(
                "Stops one of your workflow runs started with background: true: the step in \
                 progress is cancelled, the rest are skipped, and the run ends `failed` with the \
                 reason. Returns cancelled=false if it had already ended. Ops-admins may name \
                 another agent with agentId.",
            )
            .hints(Hints {
                read_only: false,
                destructive: true,
                idempotent: true,
                open_world: false,
            })
            .handler(move |args: GetArgs, ctx| {
                let (services, running) = (cancel_s.clone(), cancel_running.clone());
                async move {
                    let owner = super::subject(&ctx, args.agent_id.as_deref())?;
                    let run = services.store.workflow_get(owner, &args.id).await?.ok_or_else(|| {
                        ToolFailure::new(format!(
                            "no workflow run `{}` of `{owner}`; agentos.workflow_list shows the runs",
                            args.id
                        ))
                    })?;
                    let cancelled = run.status == WORKFLOW_RUNNING && running.cancel(owner, &args.id);
                    if cancelled {
                        tracing::info!(workflow = %args.id, by = %ctx.caller.agent_id, "workflow cancelled");
                    }
                    Ok(CancelResult { id: args.id, cancelled })
                }
            }),
    ]
}

/// Marks runs whose process has ended (a restart, a crash) as failed "interrupted by restart",
/// at once and then every half minute until `shutdown`; returns at once. Runs that another live
/// process on the same data directory is executing are left alone.
pub fn start(services: &Services, shutdown: CancellationToken) {
    let services = services.clone();
    tokio::spawn(async move {
        loop {
            recover(&services).await;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(RECOVERY_INTERVAL) => {}
            }
        }
    });
}

async fn recover(services: &Services) {
    let instances = match services.store.workflow_running_instances().await {
        Ok(instances) => instances,
        Err(error) => {
            tracing::error!(%error, "cannot look for interrupted workflow runs");
            return;
        }
    };
    let dir = services.config.data_dir.clone();
    let gone = tokio::task::spawn_blocking(move || {
        if let Err(error) = instance::hold(&dir) {
            tracing::warn!(%error, "cannot hold the workflow instance lock");
        }
        instance::remove_stale(&dir);
        instances
            .into_iter()
            .filter(|i| instance::is_gone(&dir, i))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    for instance in gone {
        match services
            .store
            .workflow_interrupt(&instance, INTERRUPTED, now_ms())
            .await
        {
            Ok(count) => tracing::warn!(count, "workflow runs interrupted by a restart marked failed"),
            Err(error) => tracing::error!(%error, "cannot mark interrupted workflow runs"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nested_workflows_share_one_step_budget_and_a_depth_limit() {
        assert!(enter(5, 3, 6).unwrap_err().message.contains("at most 5"));
        let top = enter(10, 2, 4).unwrap();
        assert_eq!(top.depth, 1);
        let inner = NESTING.scope(top.clone(), async { enter(10, 2, 5) }).await.unwrap();
        assert_eq!((inner.depth, inner.budget.load(Ordering::SeqCst)), (2, 1));
        let error = NESTING.scope(top.clone(), async { enter(10, 2, 2) }).await.unwrap_err();
        assert!(error.message.contains("only 1 remain"), "{}", error.message);
        let error = NESTING.scope(inner, async { enter(10, 2, 1) }).await.unwrap_err();
        assert!(error.message.contains("nest at most 2"), "{}", error.message);
    }
}

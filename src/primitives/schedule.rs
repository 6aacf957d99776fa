//! Schedules: fire a tool call on a cron expression, once at a time, or every interval.
//!
//! A schedule fires *as its creator*: it stores the creator's agent id, allowed-tools patterns
//! and allowed domains, and each firing is an ordinary registry call by a caller rebuilt from
//! them, so a schedule can never do more than its creator could.
//!
//! # Missed-fire rule
//!
//! Each claim advances `next_run_at` before the call runs. When agentos was not running (or
//! was too busy) at one or more occurrences, the schedule fires **once** for all of them as soon
//! as it can (at start-up, after downtime), and that run records `missed` = how many earlier
//! occurrences were coalesced into it; the schedule then continues from its next future
//! occurrence (intervals keep their phase). A one-shot `at` schedule whose time passed while
//! agentos was down fires once at start-up. A schedule whose previous run is still going is not
//! fired again until it ends; the occurrences it overlapped are coalesced the same way.
//!
//! # Sensitive values
//!
//! A schedule's stored and listed input is redacted by its tool (`registry::Redaction`); when
//! that differs from the real input, the real one is kept sealed with the secrets key
//! (`crate::sealing`), bound to the schedule's id, and opened for each run. Run results and
//! errors are recorded redacted, scrubbed of the input's sensitive values too.

mod runner;
mod timing;

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Services;
use crate::registry::{CallContext, Hints, Tool, ToolBuilder, ToolFailure};
use crate::store::{NewSchedule, ScheduleEntry, ScheduleRun, now_ms};
use timing::Spec;

/// What a schedule's sealed input is bound to: that schedule, and no other row.
fn sealing_context(id: &str) -> Vec<u8> {
    format!("agentos-schedule\0{id}").into_bytes()
}

/// Wakes the schedulers when a schedule is created. Process-wide: several in-process instances
/// may share it, and a spurious wake-up only makes a scheduler look at its store once more.
static WAKE: Notify = Notify::const_new();

const MAX_NAME_CHARS: usize = 200;
/// Ten years, the longest interval.
const MAX_INTERVAL_SECONDS: u64 = 315_360_000;
const DEFAULT_RUNS_PAGE: usize = 20;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateArgs {
    /// A label to recognise the schedule by in listings (optional, up to 200 characters).
    name: Option<String>,
    /// The tool to call, e.g. `agentos.mem_set`. Only a tool you may call yourself.
    #[schemars(length(min = 1, max = 128))]
    tool: String,
    /// The tool's input, exactly as you would pass it calling the tool directly (default `{}`).
    #[serde(default)]
    input: Map<String, Value>,
    /// Fire on this 5-field cron expression, in UTC: minute hour day-of-month month
    /// day-of-week, e.g. `0 9 * * 1-5` (09:00 UTC on weekdays) or `*/15 * * * *`; `@hourly`,
    /// `@daily`, `@weekly`, `@monthly` also work. Give exactly one of `cron`, `at`, `everySeconds`.
    cron: Option<String>,
    /// Fire once at this RFC 3339 time, e.g. `2030-01-31T09:00:00Z`; must be in the future.
    at: Option<String>,
    /// Fire every this many seconds, the first time one interval from now.
    #[schemars(range(min = 1, max = 315_360_000))]
    every_seconds: Option<u64>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ScheduleInfo {
    /// Pass it to agentos.schedule_runs or agentos.schedule_cancel.
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    tool: String,
    input: Value,
    /// `cron`, `at` (once) or `every` (interval).
    kind: String,
    /// The cron expression, the `at` time, or the interval in seconds.
    spec: String,
    /// False once a one-shot schedule has fired.
    enabled: bool,
    /// When it fires next, in Unix milliseconds; null when it never will again.
    next_run_at_ms: Option<i64>,
    /// The same as RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_run_at: Option<String>,
    /// When it last fired, in Unix milliseconds.
    last_run_at_ms: Option<i64>,
    /// Outcome of the last run: `ok`, `error`, `timeout`, `cancelled` or `skipped`.
    last_outcome: Option<String>,
    /// How many times it has fired.
    runs: u64,
    created_at_ms: i64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ListResult {
    /// Your schedules, oldest first.
    schedules: Vec<ScheduleInfo>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IdArgs {
    /// The schedule's id, as agentos.schedule_create or agentos.schedule_list returned it.
    #[schemars(length(min = 1, max = 100))]
    id: String,
    /// Ops-admins only: the agent whose schedule it is (default: yours).
    #[schemars(length(min = 1, max = 64))]
    agent_id: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListArgs {
    /// Ops-admins only: list this agent's schedules (default: yours).
    #[schemars(length(min = 1, max = 64))]
    agent_id: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct CancelResult {
    id: String,
    /// True if the schedule existed and is now gone; false if there was none.
    cancelled: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RunsArgs {
    /// The schedule's id.
    #[schemars(length(min = 1, max = 100))]
    id: String,
    /// Ops-admins only: the agent whose schedule it is (default: yours).
    #[schemars(length(min = 1, max = 64))]
    agent_id: Option<String>,
    /// Most runs to return, newest first (default 20).
    #[schemars(range(min = 1))]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct RunInfo {
    /// The occurrence this run was for (the earliest, when missed ones were coalesced), Unix ms.
    scheduled_at_ms: i64,
    started_at_ms: i64,
    finished_at_ms: i64,
    /// `ok` (the tool succeeded), `error` (the tool failed or the call was refused), `timeout`
    /// (it ran past `run_timeout_secs`), `cancelled` (agentos shut down during the run) or
    /// `skipped` (its agent was disabled or may no longer call the tool: nothing was called).
    outcome: String,
    /// Earlier occurrences missed while agentos was down or busy, coalesced into this one run.
    missed: u64,
    /// What went wrong, when the outcome is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// The tool's structured result (or its text), when the outcome is `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    /// True if `result` is only the beginning of the result's JSON text, cut to fit.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    result_truncated: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
struct RunsResult {
    id: String,
    /// Recorded runs, newest first.
    runs: Vec<RunInfo>,
}

fn info(entry: ScheduleEntry) -> ScheduleInfo {
    ScheduleInfo {
        input: serde_json::from_str(&entry.input).unwrap_or(Value::Null),
        next_run_at: entry.next_run_at_ms.map(timing::rfc3339),
        id: entry.id,
        name: entry.name,
        tool: entry.tool,
        kind: entry.kind,
        spec: entry.spec,
        enabled: entry.enabled,
        next_run_at_ms: entry.next_run_at_ms,
        last_run_at_ms: entry.last_run_at_ms,
        last_outcome: entry.last_outcome,
        runs: entry.runs,
        created_at_ms: entry.created_at_ms,
    }
}

fn run_info(run: ScheduleRun) -> RunInfo {
    RunInfo {
        scheduled_at_ms: run.scheduled_at_ms,
        started_at_ms: run.started_at_ms,
        finished_at_ms: run.finished_at_ms,
        outcome: run.outcome,
        missed: run.missed,
        error: run.error,
        result: run
            .result
            .map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text))),
        result_truncated: run.result_truncated,
    }
}

/// Checks the spec fields and returns the parsed spec with its first occurrence.
fn parse_spec(args: &CreateArgs, min_interval: u64, now: i64) -> Result<(Spec, String, i64), ToolFailure> {
    let given = [args.cron.is_some(), args.at.is_some(), args.every_seconds.is_some()];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(ToolFailure::new(
            "give exactly one of `cron` (a repeating 5-field cron expression), `at` (one RFC 3339 time) \
             or `everySeconds` (an interval)",
        ));
    }
    let (spec, text) = if let Some(cron) = &args.cron {
        let parsed = timing::parse_cron(cron).map_err(ToolFailure::new)?;
        (Spec::Cron(Box::new(parsed)), cron.trim().to_owned())
    } else if let Some(at) = &args.at {
        let ms = timing::parse_at(at).map_err(ToolFailure::new)?;
        if ms <= now {
            return Err(ToolFailure::new(format!(
                "`at` ({}) is in the past; it is now {}. Give a future time",
                at.trim(),
                timing::rfc3339(now)
            )));
        }
        (Spec::At(ms), timing::rfc3339(ms))
    } else {
        let seconds = args.every_seconds.unwrap_or_default();
        let min = min_interval.max(1);
        if !(min..=MAX_INTERVAL_SECONDS).contains(&seconds) {
            return Err(ToolFailure::new(format!(
                "`everySeconds` must be between {min} and {MAX_INTERVAL_SECONDS}"
            )));
        }
        (Spec::Every(seconds), seconds.to_string())
    };
    let first = spec
        .first_after(now)
        .ok_or_else(|| ToolFailure::new("this schedule would never fire; check its time"))?;
    Ok((spec, text, first))
}

async fn create(services: &Services, args: CreateArgs, ctx: CallContext) -> Result<ScheduleInfo, ToolFailure> {
    let config = &services.config.schedule;
    let registry = services.registry()?;
    let Some(entry) = registry.resolve_for(&ctx.caller, &args.tool) else {
        return Err(ToolFailure::new(format!(
            "`tool`: unknown tool `{}`; a schedule may only call a tool you may call yourself. \
             Call agentos.tools_search to find one",
            args.tool
        )));
    };
    if let Some(name) = &args.name
        && (name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS)
    {
        return Err(ToolFailure::new("`name` must be 1-200 characters"));
    }
    let input = Value::Object(args.input.clone());
    let validator = entry
        .validator()
        .map_err(|message| ToolFailure::new(crate::registry::schema_bug(message)))?;
    if !validator.is_valid(&input) {
        let problems: Vec<String> = validator
            .iter_errors(&input)
            .take(3)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("at `{path}`: {}", e.masked())
                }
            })
            .collect();
        return Err(ToolFailure::new(format!(
            "`input` does not fit the input schema of `{}`: {}. Fix `input` so that calling the tool \
             directly with it would be accepted",
            entry.name(),
            problems.join("; ")
        )));
    }
    let input_text = input.to_string();
    let max_bytes = services.config.limits.max_value_bytes;
    if input_text.len() > max_bytes {
        return Err(ToolFailure::new(format!(
            "`input` is {} bytes of JSON; the limit is {max_bytes} bytes",
            input_text.len()
        )));
    }
    let now = now_ms();
    let (spec, spec_text, first) = parse_spec(&args, config.min_interval_seconds, now)?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let shown = entry.redaction.input(&input).value.to_string();
    let sealed_input = if shown == input_text {
        None
    } else {
        let sealed = services
            .sealer
            .seal(&sealing_context(&id), input_text.as_bytes())
            .map_err(|error| {
                ToolFailure::new(format!(
                    "`input` holds sensitive values, which a schedule keeps sealed, but they cannot be \
                     sealed: {error}"
                ))
            })?;
        Some(sealed.to_blob())
    };
    let schedule = NewSchedule {
        id,
        owner: ctx.caller.agent_id.to_string(),
        name: args.name.map(|n| n.trim().to_owned()),
        tool: entry.name().to_string(),
        input: shown,
        sealed_input,
        kind: spec.kind().to_owned(),
        spec: spec_text,
        allowed_tools: ctx.caller.tools.patterns().to_vec(),
        allowed_domains: ctx.caller.allowed_domains.to_vec(),
        next_run_at_ms: first,
        created_at_ms: now,
    };
    services
        .store
        .schedule_create(schedule.clone(), config.max_schedules_per_agent)
        .await?;
    WAKE.notify_waiters();
    tracing::info!(schedule = %schedule.id, tool = %schedule.tool, kind = %schedule.kind, agent = %schedule.owner, "schedule created");
    Ok(info(ScheduleEntry {
        id: schedule.id,
        name: schedule.name,
        tool: schedule.tool,
        input: schedule.input,
        kind: schedule.kind,
        spec: schedule.spec,
        enabled: true,
        next_run_at_ms: Some(first),
        last_run_at_ms: None,
        last_outcome: None,
        runs: 0,
        created_at_ms: now,
    }))
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let (create_s, list_s, cancel_s, runs_s) = (services.clone(), services.clone(), services.clone(), services.clone());
    vec![
        ToolBuilder::new("agentos.schedule_create")
            .title("Schedule a tool call")
            .description(
                "Calls a tool for you later, as you: on a 5-field cron expression (UTC), once at an \
                 RFC 3339 time (`at`), or every N seconds (`everySeconds`); give exactly one. The \
                 call runs with your permissions, so only tools you may call can be scheduled. \
                 Schedules persist across restarts. Missed-fire rule: if agentos was down at one or \
                 more occurrences, the schedule fires once when it starts again (that run reports \
                 how many occurrences were `missed`), then continues from the next future \
                 occurrence; a missed one-shot `at` fires once at start-up. Returns the schedule's \
                 id and nextRunAtMs; see its runs with agentos.schedule_runs.",
            )
            .hints(Hints {
                read_only: false,
                destructive: false,
                idempotent: false,
                open_world: true,
            })
            .handler(move |args: CreateArgs, ctx| {
                let services = create_s.clone();
                async move { create(&services, args, ctx).await }
            }),
        ToolBuilder::new("agentos.schedule_list")
            .title("List schedules")
            .description(
                "Lists your schedules with their tool, kind (cron, at, every), spec, next and last \
                 run time, last outcome, how many times each has fired and whether it is still \
                 enabled (a fired one-shot is not). Ops-admins may name another agent with agentId.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: ListArgs, ctx| {
                let services = list_s.clone();
                async move {
                    let owner = super::subject(&ctx, args.agent_id.as_deref())?;
                    let entries = services.store.schedule_list(owner).await?;
                    Ok(ListResult {
                        schedules: entries.into_iter().map(info).collect(),
                    })
                }
            }),
        ToolBuilder::new("agentos.schedule_cancel")
            .title("Cancel a schedule")
            .description(
                "Deletes one of your schedules and its run history; it will not fire again (a run \
                 already in progress finishes). Returns cancelled=false if there was no such schedule. \
                 Ops-admins may cancel another agent's schedule by naming it with agentId.",
            )
            .hints(Hints::DESTRUCTIVE)
            .handler(move |args: IdArgs, ctx| {
                let services = cancel_s.clone();
                async move {
                    let owner = super::subject(&ctx, args.agent_id.as_deref())?;
                    let cancelled = services.store.schedule_cancel(owner, &args.id).await?;
                    if cancelled {
                        tracing::info!(schedule = %args.id, agent = owner, by = %ctx.caller.agent_id, "schedule cancelled");
                    }
                    Ok(CancelResult { id: args.id, cancelled })
                }
            }),
        ToolBuilder::new("agentos.schedule_runs")
            .title("Schedule run history")
            .description(
                "Shows the recent runs of one of your schedules, newest first: when each started \
                 and finished, its outcome (ok, error, timeout, cancelled), how many missed \
                 occurrences it coalesced, and the error or the (possibly truncated) result. A \
                 firing while its agent was disabled (or no longer allowed the tool) is recorded \
                 as a `skipped` run: the tool was not called. Ops-admins may name another agent with agentId.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: RunsArgs, ctx| {
                let services = runs_s.clone();
                async move {
                    let max = services.config.schedule.max_runs_kept.max(1);
                    let limit = args.limit.unwrap_or(DEFAULT_RUNS_PAGE.min(max));
                    if limit == 0 || limit > max {
                        return Err(ToolFailure::new(format!("`limit` must be between 1 and {max}")));
                    }
                    let owner = super::subject(&ctx, args.agent_id.as_deref())?;
                    let runs = services
                        .store
                        .schedule_runs(owner, &args.id, limit)
                        .await?
                        .ok_or_else(|| {
                            ToolFailure::new(format!(
                                "no schedule `{}` of `{owner}`; call agentos.schedule_list to see the schedules",
                                args.id
                            ))
                        })?;
                    Ok(RunsResult {
                        id: args.id,
                        runs: runs.into_iter().map(run_info).collect(),
                    })
                }
            }),
    ]
}

/// Starts the scheduler, which fires due schedules until `shutdown`; returns at once. Safe to
/// run in several processes on one data directory: each occurrence is claimed by exactly one.
pub fn start(services: &Services, shutdown: CancellationToken) {
    tokio::spawn(runner::run(services.clone(), shutdown));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(cron: Option<&str>, at: Option<&str>, every: Option<u64>) -> CreateArgs {
        CreateArgs {
            name: None,
            tool: "agentos.time_now".into(),
            input: Map::new(),
            cron: cron.map(str::to_owned),
            at: at.map(str::to_owned),
            every_seconds: every,
        }
    }

    #[test]
    fn exactly_one_timing_is_required_and_checked() {
        let now = timing::parse_at("2030-01-01T00:00:00Z").unwrap();
        let error = parse_spec(&args(None, None, None), 1, now).unwrap_err().message;
        assert!(error.contains("exactly one of"), "{error}");
        let error = parse_spec(&args(Some("* * * * *"), None, Some(5)), 1, now)
            .unwrap_err()
            .message;
        assert!(error.contains("exactly one of"), "{error}");
        let error = parse_spec(&args(None, None, Some(5)), 10, now).unwrap_err().message;
        assert!(error.contains("between 10"), "{error}");
        let error = parse_spec(&args(None, Some("2029-12-31T00:00:00Z"), None), 1, now)
            .unwrap_err()
            .message;
        assert!(error.contains("in the past"), "{error}");
        let (spec, text, first) = parse_spec(&args(None, None, Some(30)), 1, now).unwrap();
        assert_eq!((spec.kind(), text.as_str(), first), ("every", "30", now + 30_000));
        let error = parse_spec(&args(None, Some("2030-01-01T01:00:00+01:00"), None), 1, now)
            .unwrap_err()
            .message;
        assert!(error.contains("in the past"), "the same instant as now: {error}");
        let (spec, text, first) = parse_spec(&args(None, Some("2030-01-01T03:00:00+02:00"), None), 1, now).unwrap();
        assert_eq!((spec.kind(), text.as_str()), ("at", "2030-01-01T01:00:00.000Z"));
        assert_eq!(first, now + 3_600_000);
    }
}

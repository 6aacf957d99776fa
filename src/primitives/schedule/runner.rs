//! The scheduler loop: wake at the next due time (at least every second, and at once when a
//! schedule is created), claim what is due, fire each claimed schedule as its creator, record
//! the run (redacted: see the module above).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{WAKE, sealing_context, timing};
use crate::primitives::Services;
use crate::registry::{
    CallContext, CallError, Caller, Registry, ToolPolicy, bounded_json, output_of, result_text, truncate,
};
use crate::sealing::Sealed;
use crate::store::{AdvanceFn, DueSchedule, ScheduleRun, now_ms};

/// The longest the loop sleeps without looking at the store.
const TICK_MS: i64 = 1000;
/// Most schedules claimed in one transaction; more are claimed right after.
const CLAIM_BATCH: usize = 64;
/// A stored result larger than this keeps only its beginning.
const MAX_RESULT_BYTES: usize = 16 * 1024;
const MAX_ERROR_CHARS: usize = 2000;

/// Ids of schedules this process is firing right now; they are not claimed again until done.
type Running = Arc<Mutex<HashSet<String>>>;

pub(super) async fn run(services: Services, shutdown: CancellationToken) {
    let running: Running = Arc::default();
    let advance: AdvanceFn = Arc::new(timing::advance_stored);
    tracing::debug!("scheduler started");
    loop {
        // Registered before looking at the store, so a creation in between still wakes us.
        let notified = WAKE.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let skip: Vec<String> = lock(&running).iter().cloned().collect();
        let now = now_ms();
        let wait_ms = match services.store.schedule_next_due(skip.clone()).await {
            Ok(Some(due)) if due <= now => {
                match services
                    .store
                    .schedule_claim_due(now, skip, CLAIM_BATCH, advance.clone())
                    .await
                {
                    Ok(claimed) if claimed.is_empty() => 50,
                    Ok(claimed) => {
                        for due in claimed {
                            lock(&running).insert(due.id.clone());
                            let (services, running, shutdown) = (services.clone(), running.clone(), shutdown.clone());
                            tokio::spawn(async move {
                                let id = due.id.clone();
                                fire(&services, due, &shutdown).await;
                                lock(&running).remove(&id);
                                WAKE.notify_waiters();
                            });
                        }
                        0
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot claim due schedules");
                        TICK_MS
                    }
                }
            }
            Ok(Some(due)) => (due - now).min(TICK_MS),
            Ok(None) => TICK_MS,
            Err(error) => {
                tracing::error!(%error, "cannot read the schedules");
                TICK_MS
            }
        };
        if shutdown.is_cancelled() {
            break;
        }
        if wait_ms > 0 {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(wait_ms as u64)) => {}
            }
        }
    }
    tracing::debug!("scheduler stopped");
}

fn lock(running: &Running) -> std::sync::MutexGuard<'_, HashSet<String>> {
    running.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Fires one claimed schedule as its creator and records the run.
async fn fire(services: &Services, due: DueSchedule, shutdown: &CancellationToken) {
    let started = now_ms();
    let outcome = call(services, &due, started, shutdown).await;
    let (result, result_truncated) = match outcome.result {
        Some(value) => {
            let (text, truncated) = bounded_json(&value, MAX_RESULT_BYTES);
            (Some(text), truncated)
        }
        None => (None, false),
    };
    let run = ScheduleRun {
        scheduled_at_ms: due.scheduled_at_ms,
        started_at_ms: started,
        finished_at_ms: now_ms(),
        outcome: outcome.outcome.to_owned(),
        missed: due.due.saturating_sub(1),
        error: outcome.error.map(|e| truncate(&e, MAX_ERROR_CHARS)),
        result,
        result_truncated,
    };
    tracing::info!(schedule = %due.id, tool = %due.tool, agent = %due.owner, outcome = run.outcome, missed = run.missed, "schedule fired");
    let keep = services.config.schedule.max_runs_kept.max(1);
    if let Err(error) = services.store.schedule_record_run(&due.owner, &due.id, run, keep).await {
        tracing::error!(schedule = %due.id, %error, "cannot record a schedule run");
    }
}

struct Outcome {
    outcome: &'static str,
    error: Option<String>,
    result: Option<Value>,
}

impl Outcome {
    fn error(outcome: &'static str, message: impl Into<String>) -> Self {
        Self {
            outcome,
            error: Some(message.into()),
            result: None,
        }
    }
}

/// The caller a schedule fires as: the tools stored with it (never more than its agent had when
/// it was made), with the agent's role, account and domains as they are now. An agent disabled
/// or deleted since, or no longer allowed the tool, fires nothing.
async fn current_caller(registry: &Registry, due: &DueSchedule, tools: ToolPolicy) -> Result<Caller, String> {
    let Some(directory) = registry.directory() else {
        let mut caller = Caller::agent(&due.owner, tools, due.allowed_domains.clone());
        if due.owner == Caller::OWNER_ID {
            caller.role = crate::registry::Role::OpsAdmin;
        }
        return Ok(caller);
    };
    let Some(now) = directory.lookup(&due.owner).await else {
        return Err(format!(
            "agent `{}` is disabled or no longer exists; the schedule did not run",
            due.owner
        ));
    };
    if !now.tools.allows(&due.tool) {
        return Err(format!(
            "agent `{}` may no longer call `{}`; the schedule did not run",
            due.owner, due.tool
        ));
    }
    Ok(Caller { tools, ..now })
}

async fn call(services: &Services, due: &DueSchedule, started: i64, shutdown: &CancellationToken) -> Outcome {
    let registry = match services.registry() {
        Ok(registry) => registry,
        Err(failure) => return Outcome::error("cancelled", failure.message),
    };
    let tools = match ToolPolicy::parse(&due.allowed_tools) {
        Ok(tools) => tools,
        Err(error) => {
            return Outcome::error(
                "error",
                format!("the schedule's stored permissions are unreadable: {error}"),
            );
        }
    };
    let input = match stored_input(services, due) {
        Ok(input) => input,
        Err(message) => return Outcome::error("error", message),
    };
    let caller = match current_caller(&registry, due, tools).await {
        Ok(caller) => Arc::new(caller),
        Err(message) => return Outcome::error("skipped", message),
    };
    let timeout = Duration::from_secs(services.config.schedule.run_timeout_secs.max(1));
    let ctx = CallContext::new(caller, format!("schedule:{}:{started}", due.id), timeout)
        .with_cancel(shutdown.child_token())
        .with_front_door("schedule");
    let redaction = registry.redaction(&due.tool);
    let secrets = redaction.input(&input).secrets;
    let scrubbed = |text: String| secrets.scrub_text(&text).into_owned();
    match registry.call(&ctx, &due.tool, input).await {
        Ok(result) if result.is_error == Some(true) => Outcome::error("error", scrubbed(result_text(&result))),
        Ok(result) => Outcome {
            outcome: "ok",
            error: None,
            result: Some(redaction.output(&output_of(&result), &secrets).0),
        },
        Err(error @ CallError::DeadlineExceeded { .. }) => Outcome::error("timeout", scrubbed(error.to_string())),
        Err(error @ CallError::Cancelled(_)) => Outcome::error(
            "cancelled",
            scrubbed(format!("{error}: agentos shut down during the run")),
        ),
        Err(error) => Outcome::error("error", scrubbed(error.to_string())),
    }
}

/// The input a schedule runs with: its sealed real input when it has one, else the stored one.
fn stored_input(services: &Services, due: &DueSchedule) -> Result<Value, String> {
    let Some(blob) = &due.sealed_input else {
        return serde_json::from_str(&due.input).map_err(|e| format!("the schedule's stored input is unreadable: {e}"));
    };
    let opened = Sealed::from_blob(blob)
        .and_then(|sealed| services.sealer.open(&sealing_context(&due.id), &sealed))
        .map_err(|error| {
            format!(
                "the schedule's input holds sensitive values kept sealed, and they cannot be opened \
                 ({error}); the schedule did not run. Cancel it and create it again"
            )
        })?;
    serde_json::from_slice(&opened).map_err(|e| format!("the schedule's sealed input is unreadable: {e}"))
}

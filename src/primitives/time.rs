//! Time: the current time, and a cancellable wait for pacing retries and workflows.

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::registry::{Empty, Hints, Tool, ToolBuilder, ToolFailure};

/// The longest wait one call may ask for.
const MAX_SLEEP_SECS: f64 = 3600.0;

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct TimeNow {
    /// Current UTC time in RFC 3339, e.g. `2026-11-23T14:05:00.123Z`.
    iso: String,
    /// Milliseconds since the Unix epoch.
    unix_ms: i64,
    /// Seconds since the Unix epoch, with fraction.
    unix: f64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SleepArgs {
    /// How long to wait, in seconds (fractions allowed, at most 3600).
    #[schemars(range(min = 0.0, max = 3600.0))]
    seconds: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Slept {
    /// Seconds actually waited.
    seconds: f64,
}

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        ToolBuilder::new("agentos.time_now")
            .title("Current time")
            .description(
                "Returns the current UTC time as an RFC 3339 string and as Unix time. Use it \
                 whenever you need today's date or the time, e.g. to timestamp a note or to \
                 compute a deadline.",
            )
            .hints(Hints::READ_ONLY)
            .handler(|_: Empty, _ctx| async move {
                let now = chrono::Utc::now();
                Ok(TimeNow {
                    iso: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    unix_ms: now.timestamp_millis(),
                    unix: now.timestamp_micros() as f64 / 1e6,
                })
            }),
        ToolBuilder::new("agentos.time_sleep")
            .title("Wait")
            .description(
                "Waits the given number of seconds (at most 3600), reporting progress every \
                 second, then returns. Use it to pace retries or polling, or to delay a workflow \
                 step. The wait ends early if the call is cancelled.",
            )
            .hints(Hints::READ_ONLY)
            .handler(|args: SleepArgs, ctx| async move {
                if !(args.seconds.is_finite() && (0.0..=MAX_SLEEP_SECS).contains(&args.seconds)) {
                    return Err(ToolFailure::new("`seconds` must be between 0 and 3600"));
                }
                let total = Duration::from_secs_f64(args.seconds);
                let started = tokio::time::Instant::now();
                let mut ticks = tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(1));
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(started + total) => break,
                        _ = ticks.tick() => {
                            let done = started.elapsed().as_secs_f64();
                            ctx.report_progress(done, Some(args.seconds), None).await;
                        }
                    }
                }
                Ok(Slept {
                    seconds: started.elapsed().as_secs_f64(),
                })
            }),
    ]
}

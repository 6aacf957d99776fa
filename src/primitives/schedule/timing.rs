//! When a schedule fires: parsing its spec, its first occurrence, and where it goes after a
//! firing. Pure functions of the spec and the clock, so they are tested here.

use std::str::FromStr;

use chrono::{DateTime, TimeZone, Utc};
use croner::Cron;

use crate::store::Advance;

pub const CRON: &str = "cron";
pub const AT: &str = "at";
pub const EVERY: &str = "every";

/// Counting missed cron occurrences stops here; the count saturates.
const MAX_COUNTED: u64 = 100_000;

/// A parsed schedule spec.
#[derive(Debug, Clone)]
pub enum Spec {
    Cron(Box<Cron>),
    /// Unix milliseconds.
    At(i64),
    /// Seconds.
    Every(u64),
}

impl Spec {
    pub fn kind(&self) -> &'static str {
        match self {
            Spec::Cron(_) => CRON,
            Spec::At(_) => AT,
            Spec::Every(_) => EVERY,
        }
    }

    /// Parses a stored `(kind, spec)` pair.
    pub fn from_stored(kind: &str, spec: &str) -> Result<Self, String> {
        match kind {
            CRON => parse_cron(spec).map(|cron| Spec::Cron(Box::new(cron))),
            AT => parse_at(spec).map(Spec::At),
            EVERY => spec
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .map(Spec::Every)
                .ok_or_else(|| format!("bad interval `{spec}`")),
            other => Err(format!("unknown schedule kind `{other}`")),
        }
    }

    /// The first occurrence strictly after `now_ms`, or None if there is none.
    pub fn first_after(&self, now_ms: i64) -> Option<i64> {
        match self {
            Spec::Cron(cron) => cron_after(cron, now_ms),
            Spec::At(at) => (*at > now_ms).then_some(*at),
            Spec::Every(seconds) => now_ms.checked_add(i64::try_from(*seconds).ok()?.checked_mul(1000)?),
        }
    }

    /// After claiming the occurrence at `scheduled_ms` at time `now_ms`: how many occurrences in
    /// `[scheduled_ms, now_ms]` were due (at least 1), and the next one strictly after `now_ms`.
    /// This is the missed-fire rule: however many were due, the schedule fires once for them.
    pub fn advance(&self, scheduled_ms: i64, now_ms: i64) -> Advance {
        match self {
            Spec::At(_) => Advance {
                next_run_at_ms: None,
                due: 1,
            },
            Spec::Every(seconds) => {
                let interval = i64::try_from(*seconds).unwrap_or(i64::MAX / 1000).saturating_mul(1000);
                let due = (now_ms.saturating_sub(scheduled_ms).max(0) / interval).saturating_add(1);
                Advance {
                    next_run_at_ms: scheduled_ms.checked_add(due.saturating_mul(interval)),
                    due: due as u64,
                }
            }
            Spec::Cron(cron) => {
                let mut due = 1;
                let mut at = scheduled_ms;
                let next = loop {
                    match cron_after(cron, at) {
                        Some(next) if next <= now_ms && due < MAX_COUNTED => {
                            due += 1;
                            at = next;
                        }
                        // Past the counting limit, jump straight to the future.
                        Some(next) if next <= now_ms => break cron_after(cron, now_ms),
                        other => break other,
                    }
                };
                Advance {
                    next_run_at_ms: next,
                    due,
                }
            }
        }
    }
}

/// The advance for a stored schedule; an unreadable spec disables it without firing.
pub fn advance_stored(kind: &str, spec: &str, scheduled_ms: i64, now_ms: i64) -> Advance {
    match Spec::from_stored(kind, spec) {
        Ok(spec) => spec.advance(scheduled_ms, now_ms),
        Err(error) => {
            tracing::error!(kind, spec, %error, "a stored schedule is unreadable; disabling it");
            Advance {
                next_run_at_ms: None,
                due: 0,
            }
        }
    }
}

/// Parses a 5-field cron expression (minute hour day-of-month month day-of-week, UTC) or one
/// of `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`.
pub fn parse_cron(expression: &str) -> Result<Cron, String> {
    let expression = expression.trim();
    let fields = expression.split_whitespace().count();
    let nickname = expression.starts_with('@');
    if !nickname && fields != 5 {
        return Err(format!(
            "`cron` must have exactly 5 fields (minute hour day-of-month month day-of-week, in UTC), \
             e.g. `*/15 * * * *` for every 15 minutes or `0 9 * * 1-5` for 09:00 on weekdays; \
             `{expression}` has {fields}"
        ));
    }
    let cron = Cron::from_str(expression).map_err(|e| {
        format!(
            "`cron` expression `{expression}` is invalid ({e}); use 5 fields: minute (0-59) hour (0-23) \
             day-of-month (1-31) month (1-12) day-of-week (0-6, 0 = Sunday), e.g. `30 8 * * *`"
        )
    })?;
    if cron_after(&cron, crate::store::now_ms()).is_none() {
        return Err(format!(
            "`cron` expression `{expression}` never matches a date (e.g. February 30); check the day and month fields"
        ));
    }
    Ok(cron)
}

/// Parses an RFC 3339 time such as `2030-01-31T09:00:00Z` into Unix milliseconds.
pub fn parse_at(text: &str) -> Result<i64, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            format!("`at` must be an RFC 3339 time with a zone, e.g. `2030-01-31T09:00:00Z` ({e}); got `{text}`")
        })
}

fn cron_after(cron: &Cron, after_ms: i64) -> Option<i64> {
    let after = Utc.timestamp_millis_opt(after_ms).single()?;
    cron.find_next_occurrence(&after, false)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Unix milliseconds as RFC 3339 UTC, for messages and results.
pub fn rfc3339(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(text: &str) -> i64 {
        parse_at(text).unwrap()
    }

    #[test]
    fn intervals_keep_their_phase_and_coalesce_missed_occurrences() {
        let every = Spec::Every(10);
        assert_eq!(every.first_after(1_000), Some(11_000));
        // On time: one occurrence, the next one interval later.
        assert_eq!(
            every.advance(11_000, 11_200),
            Advance {
                next_run_at_ms: Some(21_000),
                due: 1
            }
        );
        // After 45 s of downtime: 11, 21, 31, 41, 51 were due; fire once, continue at 61.
        assert_eq!(
            every.advance(11_000, 56_000),
            Advance {
                next_run_at_ms: Some(61_000),
                due: 5
            }
        );
        // Exactly on an occurrence: it counts as due, the next one is in the future.
        assert_eq!(every.advance(11_000, 21_000).next_run_at_ms, Some(31_000));
    }

    #[test]
    fn cron_counts_missed_minutes_and_resumes_in_the_future() {
        let spec = Spec::Cron(Box::new(parse_cron("*/15 * * * *").unwrap()));
        assert_eq!(
            spec.first_after(ms("2030-01-01T10:07:00Z")),
            Some(ms("2030-01-01T10:15:00Z"))
        );
        let step = spec.advance(ms("2030-01-01T10:15:00Z"), ms("2030-01-01T11:05:30Z"));
        // 10:15, 10:30, 10:45, 11:00 were due.
        assert_eq!(step.due, 4);
        assert_eq!(step.next_run_at_ms, Some(ms("2030-01-01T11:15:00Z")));
        let daily = Spec::Cron(Box::new(parse_cron("@daily").unwrap()));
        assert_eq!(
            daily.first_after(ms("2030-01-01T10:00:00Z")),
            Some(ms("2030-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn a_one_shot_fires_once_then_finishes() {
        let at = Spec::At(ms("2030-01-01T00:00:00Z"));
        assert_eq!(
            at.first_after(ms("2029-12-31T23:00:00Z")),
            Some(ms("2030-01-01T00:00:00Z"))
        );
        assert_eq!(at.first_after(ms("2030-01-02T00:00:00Z")), None);
        assert_eq!(
            at.advance(ms("2030-01-01T00:00:00Z"), ms("2030-03-01T00:00:00Z")),
            Advance {
                next_run_at_ms: None,
                due: 1
            }
        );
    }

    #[test]
    fn bad_specs_say_what_to_write() {
        let error = parse_cron("* * * *").unwrap_err();
        assert!(error.contains("exactly 5 fields") && error.contains("has 4"), "{error}");
        let error = parse_cron("0 0 0 * * * *").unwrap_err();
        assert!(error.contains("exactly 5 fields"), "{error}");
        let error = parse_cron("61 * * * *").unwrap_err();
        assert!(error.contains("minute (0-59)"), "{error}");
        let error = parse_cron("0 0 30 2 *").unwrap_err();
        assert!(error.contains("never matches"), "{error}");
        let error = parse_at("tomorrow").unwrap_err();
        assert!(error.contains("RFC 3339"), "{error}");
        assert!(parse_at("2030-01-31T09:00:00+02:00").is_ok());
        assert_eq!(advance_stored("cron", "nonsense", 0, 1).due, 0);
        assert!(Spec::from_stored("every", "0").is_err());
    }
}

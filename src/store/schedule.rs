//! Schedules that fire tool calls, and the history of their runs.
//!
//! A schedule remembers who created it and what that caller was allowed to do, so that it fires
//! with exactly those rights. Firing is claimed with a compare-and-set on `next_run_at` inside
//! one write transaction: two processes sharing the data directory never both fire the same
//! occurrence, and a crash after the claim cannot fire it a second time.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::{Migration, SqliteStore, StoreError, to_i64};

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "schedule_1",
        sql: "CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT,
        tool TEXT NOT NULL,
        input TEXT NOT NULL,
        kind TEXT NOT NULL,
        spec TEXT NOT NULL,
        allowed_tools TEXT NOT NULL,
        allowed_domains TEXT NOT NULL,
        enabled INTEGER NOT NULL,
        next_run_at INTEGER,
        last_run_at INTEGER,
        last_outcome TEXT,
        runs INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX schedules_by_owner ON schedules (owner, created_at);
    CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled = 1;
    CREATE TABLE schedule_runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        schedule_id TEXT NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
        owner TEXT NOT NULL,
        scheduled_at INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        missed INTEGER NOT NULL,
        error TEXT,
        result TEXT,
        result_truncated INTEGER NOT NULL
    );
    CREATE INDEX schedule_runs_by_schedule ON schedule_runs (schedule_id, seq);",
    },
    // `input` holds the redacted input since; the real one, when it differs, is sealed here.
    Migration {
        name: "schedule_2",
        sql: "ALTER TABLE schedules ADD COLUMN sealed_input BLOB;",
    },
];

/// A schedule to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    pub id: String,
    pub owner: String,
    pub name: Option<String>,
    /// The tool's native name.
    pub tool: String,
    /// The input as JSON text, as it may be shown (sensitive values redacted).
    pub input: String,
    /// The real input sealed with the secrets key (`crate::sealing`, one blob), when it holds
    /// sensitive values; never shown.
    pub sealed_input: Option<Vec<u8>>,
    /// `cron`, `at` or `every`.
    pub kind: String,
    /// The cron expression, the RFC 3339 time, or the interval in seconds.
    pub spec: String,
    /// The creator's allowed-tools patterns; the schedule fires with exactly these.
    pub allowed_tools: Vec<String>,
    pub allowed_domains: Vec<String>,
    pub next_run_at_ms: i64,
    pub created_at_ms: i64,
}

/// A stored schedule as its owner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleEntry {
    pub id: String,
    pub name: Option<String>,
    pub tool: String,
    pub input: String,
    pub kind: String,
    pub spec: String,
    pub enabled: bool,
    /// None once a one-shot schedule has fired.
    pub next_run_at_ms: Option<i64>,
    pub last_run_at_ms: Option<i64>,
    pub last_outcome: Option<String>,
    pub runs: u64,
    pub created_at_ms: i64,
}

/// One recorded firing.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRun {
    /// The occurrence this run was for (the earliest one, when several were coalesced).
    pub scheduled_at_ms: i64,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub outcome: String,
    /// Occurrences that were due but not fired on their own (coalesced into this run).
    pub missed: u64,
    pub error: Option<String>,
    /// The result as JSON text (possibly a JSON string holding a truncated preview).
    pub result: Option<String>,
    pub result_truncated: bool,
}

/// A schedule the caller has claimed and must now fire once.
#[derive(Debug, Clone, PartialEq)]
pub struct DueSchedule {
    pub id: String,
    pub owner: String,
    pub tool: String,
    /// As shown; the call runs with `sealed_input` opened when there is one.
    pub input: String,
    pub sealed_input: Option<Vec<u8>>,
    pub allowed_tools: Vec<String>,
    pub allowed_domains: Vec<String>,
    /// The `next_run_at` that was claimed.
    pub scheduled_at_ms: i64,
    /// How many occurrences were due at claim time (1 normally; more after downtime).
    pub due: u64,
}

/// Where a schedule goes after a claim at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advance {
    /// The next occurrence strictly after `now`; None when the schedule is finished.
    pub next_run_at_ms: Option<i64>,
    /// Occurrences in `[scheduled, now]`; 0 means "do not fire" (an unreadable spec).
    pub due: u64,
}

/// Computes the advance from `(kind, spec, scheduled_at_ms, now_ms)`; supplied by the primitive,
/// which owns the meaning of a spec.
pub type AdvanceFn = Arc<dyn Fn(&str, &str, i64, i64) -> Advance + Send + Sync>;

/// Schedules and their run history. Owner-facing methods are scoped to `owner`; the scheduler's
/// methods (`schedule_next_due`, `schedule_claim_due`) see every owner's schedules, since
/// firing happens on the owner's behalf.
pub trait ScheduleStore: Send + Sync {
    /// Stores a schedule; refused when `owner` already has `max_per_owner`.
    fn schedule_create(&self, schedule: NewSchedule, max_per_owner: usize) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The owner's schedules, oldest first.
    fn schedule_list<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<ScheduleEntry>, StoreError>>;
    /// Deletes a schedule and its history; false if the owner has no such schedule.
    fn schedule_cancel<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// The newest `limit` runs, newest first; None if the owner has no such schedule.
    fn schedule_runs<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<ScheduleRun>>, StoreError>>;
    /// The earliest `next_run_at` of an enabled schedule whose id is not in `skip`.
    fn schedule_next_due(&self, skip: Vec<String>) -> BoxFuture<'_, Result<Option<i64>, StoreError>>;
    /// Claims up to `limit` schedules due at `now` (skipping `skip`) in one write transaction:
    /// each claimed schedule's `next_run_at` is advanced by compare-and-set before it is returned,
    /// so no other claimer (in this or another process) gets the same occurrence.
    fn schedule_claim_due(
        &self,
        now_ms: i64,
        skip: Vec<String>,
        limit: usize,
        advance: AdvanceFn,
    ) -> BoxFuture<'_, Result<Vec<DueSchedule>, StoreError>>;
    /// Records a run and keeps only the newest `keep`; false if the schedule is gone.
    fn schedule_record_run<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
        run: ScheduleRun,
        keep: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

fn from_json(column: usize, text: &str) -> Result<Vec<String>, rusqlite::Error> {
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e)))
}

fn row_to_entry(row: &rusqlite::Row<'_>) -> Result<ScheduleEntry, rusqlite::Error> {
    Ok(ScheduleEntry {
        id: row.get(0)?,
        name: row.get(1)?,
        tool: row.get(2)?,
        input: row.get(3)?,
        kind: row.get(4)?,
        spec: row.get(5)?,
        enabled: row.get(6)?,
        next_run_at_ms: row.get(7)?,
        last_run_at_ms: row.get(8)?,
        last_outcome: row.get(9)?,
        runs: row.get::<_, i64>(10)?.max(0) as u64,
        created_at_ms: row.get(11)?,
    })
}

fn row_to_run(row: &rusqlite::Row<'_>) -> Result<ScheduleRun, rusqlite::Error> {
    Ok(ScheduleRun {
        scheduled_at_ms: row.get(0)?,
        started_at_ms: row.get(1)?,
        finished_at_ms: row.get(2)?,
        outcome: row.get(3)?,
        missed: row.get::<_, i64>(4)?.max(0) as u64,
        error: row.get(5)?,
        result: row.get(6)?,
        result_truncated: row.get(7)?,
    })
}

impl ScheduleStore for SqliteStore {
    fn schedule_create(&self, s: NewSchedule, max_per_owner: usize) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            let refused = self
                .write(move |tx| {
                    let count: i64 = tx
                        .prepare_cached("SELECT COUNT(*) FROM schedules WHERE owner = ?1")?
                        .query_row(params![s.owner], |row| row.get(0))?;
                    if count >= to_i64(max_per_owner) {
                        return Ok(true);
                    }
                    tx.prepare_cached(
                        "INSERT INTO schedules (id, owner, name, tool, input, kind, spec, allowed_tools,
                            allowed_domains, enabled, next_run_at, runs, created_at, sealed_input)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, 0, ?11, ?12)",
                    )?
                    .execute(params![
                        s.id,
                        s.owner,
                        s.name,
                        s.tool,
                        s.input,
                        s.kind,
                        s.spec,
                        to_json(&s.allowed_tools),
                        to_json(&s.allowed_domains),
                        s.next_run_at_ms,
                        s.created_at_ms,
                        s.sealed_input
                    ])?;
                    Ok(false)
                })
                .await?;
            if refused {
                return Err(StoreError::Refused(format!(
                    "you already have {max_per_owner} schedules, the most allowed; cancel some with \
                     agentos.schedule_cancel (finished one-shot schedules count too)"
                )));
            }
            Ok(())
        }
        .boxed()
    }

    fn schedule_list<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<ScheduleEntry>, StoreError>> {
        let owner = owner.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, name, tool, input, kind, spec, enabled, next_run_at, last_run_at, last_outcome,
                        runs, created_at
                 FROM schedules WHERE owner = ?1 ORDER BY created_at, id",
            )?
            .query_map(params![owner], row_to_entry)?
            .collect()
        })
        .boxed()
    }

    fn schedule_cancel<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (owner, id) = (owner.to_owned(), id.to_owned());
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM schedule_runs WHERE owner = ?1 AND schedule_id = ?2")?
                .execute(params![owner, id])?;
            let deleted = tx
                .prepare_cached("DELETE FROM schedules WHERE owner = ?1 AND id = ?2")?
                .execute(params![owner, id])?;
            Ok(deleted > 0)
        })
        .boxed()
    }

    fn schedule_runs<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<ScheduleRun>>, StoreError>> {
        let (owner, id) = (owner.to_owned(), id.to_owned());
        self.read(move |conn| {
            let exists = conn
                .prepare_cached("SELECT 1 FROM schedules WHERE owner = ?1 AND id = ?2")?
                .exists(params![owner, id])?;
            if !exists {
                return Ok(None);
            }
            let runs = conn
                .prepare_cached(
                    "SELECT scheduled_at, started_at, finished_at, outcome, missed, error, result, result_truncated
                     FROM schedule_runs WHERE owner = ?1 AND schedule_id = ?2 ORDER BY seq DESC LIMIT ?3",
                )?
                .query_map(params![owner, id, to_i64(limit)], row_to_run)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(runs))
        })
        .boxed()
    }

    fn schedule_next_due(&self, skip: Vec<String>) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT id, next_run_at FROM schedules WHERE enabled = 1 AND next_run_at IS NOT NULL
                 ORDER BY next_run_at LIMIT ?1",
            )?;
            let rows = statement.query_map(params![to_i64(skip.len() + 1)], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (id, next) = row?;
                if !skip.contains(&id) {
                    return Ok(Some(next));
                }
            }
            Ok(None)
        })
        .boxed()
    }

    fn schedule_claim_due(
        &self,
        now_ms: i64,
        skip: Vec<String>,
        limit: usize,
        advance: AdvanceFn,
    ) -> BoxFuture<'_, Result<Vec<DueSchedule>, StoreError>> {
        self.write(move |tx| {
            let mut candidates = tx
                .prepare_cached(
                    "SELECT id, owner, tool, input, kind, spec, allowed_tools, allowed_domains, next_run_at,
                        sealed_input
                     FROM schedules WHERE enabled = 1 AND next_run_at <= ?1 ORDER BY next_run_at LIMIT ?2",
                )?
                .query_map(params![now_ms, to_i64(limit + skip.len())], |row| {
                    Ok((
                        DueSchedule {
                            id: row.get(0)?,
                            owner: row.get(1)?,
                            tool: row.get(2)?,
                            input: row.get(3)?,
                            sealed_input: row.get(9)?,
                            allowed_tools: from_json(6, &row.get::<_, String>(6)?)?,
                            allowed_domains: from_json(7, &row.get::<_, String>(7)?)?,
                            scheduled_at_ms: row.get(8)?,
                            due: 0,
                        },
                        row.get::<_, String>(4)?,
                        row.get::<_, String>(5)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            candidates.retain(|(due, _, _)| !skip.contains(&due.id));
            candidates.truncate(limit);
            let mut claimed = Vec::with_capacity(candidates.len());
            let mut update = tx.prepare_cached(
                "UPDATE schedules SET next_run_at = ?1, enabled = ?2
                 WHERE id = ?3 AND enabled = 1 AND next_run_at = ?4",
            )?;
            for (mut due, kind, spec) in candidates {
                let step = advance(&kind, &spec, due.scheduled_at_ms, now_ms);
                let won = update.execute(params![
                    step.next_run_at_ms,
                    step.next_run_at_ms.is_some(),
                    due.id,
                    due.scheduled_at_ms
                ])? == 1;
                if won && step.due > 0 {
                    due.due = step.due;
                    claimed.push(due);
                }
            }
            Ok(claimed)
        })
        .boxed()
    }

    fn schedule_record_run<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
        run: ScheduleRun,
        keep: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (owner, id) = (owner.to_owned(), id.to_owned());
        self.write(move |tx| {
            let updated = tx
                .prepare_cached(
                    "UPDATE schedules SET last_run_at = ?1, last_outcome = ?2, runs = runs + 1
                     WHERE owner = ?3 AND id = ?4",
                )?
                .execute(params![run.started_at_ms, run.outcome, owner, id])?;
            if updated == 0 {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO schedule_runs (schedule_id, owner, scheduled_at, started_at, finished_at, outcome,
                    missed, error, result, result_truncated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                id,
                owner,
                run.scheduled_at_ms,
                run.started_at_ms,
                run.finished_at_ms,
                run.outcome,
                i64::try_from(run.missed).unwrap_or(i64::MAX),
                run.error,
                run.result,
                run.result_truncated
            ])?;
            let oldest_kept: Option<i64> = tx
                .prepare_cached(
                    "SELECT seq FROM schedule_runs WHERE schedule_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
                )?
                .query_row(params![id, to_i64(keep.max(1) - 1)], |row| row.get(0))
                .optional()?;
            if let Some(oldest_kept) = oldest_kept {
                tx.prepare_cached("DELETE FROM schedule_runs WHERE schedule_id = ?1 AND seq < ?2")?
                    .execute(params![id, oldest_kept])?;
            }
            Ok(true)
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Synchronous;

    fn schedule(id: &str, owner: &str, next: i64) -> NewSchedule {
        NewSchedule {
            id: id.into(),
            owner: owner.into(),
            name: None,
            tool: "agentos.time_now".into(),
            input: "{}".into(),
            sealed_input: None,
            kind: "every".into(),
            spec: "10".into(),
            allowed_tools: vec!["*".into()],
            allowed_domains: vec![],
            next_run_at_ms: next,
            created_at_ms: 0,
        }
    }

    fn every_ten_seconds() -> AdvanceFn {
        Arc::new(|_, _, scheduled, now| {
            let due = ((now - scheduled) / 10_000 + 1) as u64;
            Advance {
                next_run_at_ms: Some(scheduled + due as i64 * 10_000),
                due,
            }
        })
    }

    fn run(outcome: &str) -> ScheduleRun {
        ScheduleRun {
            scheduled_at_ms: 1,
            started_at_ms: 2,
            finished_at_ms: 3,
            outcome: outcome.into(),
            missed: 0,
            error: None,
            result: Some("{}".into()),
            result_truncated: false,
        }
    }

    #[tokio::test]
    async fn an_occurrence_is_claimed_once_even_by_two_stores_on_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        let b = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        a.schedule_create(schedule("s1", "alice", 1_000), 10).await.unwrap();
        let (first, second) = tokio::join!(
            a.schedule_claim_due(35_000, vec![], 10, every_ten_seconds()),
            b.schedule_claim_due(35_000, vec![], 10, every_ten_seconds()),
        );
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!(first.len() + second.len(), 1, "exactly one claimer wins");
        let claimed = first.into_iter().chain(second).next().unwrap();
        assert_eq!(
            (claimed.scheduled_at_ms, claimed.due),
            (1_000, 4),
            "1s, 11s, 21s, 31s were due"
        );
        assert_eq!(a.schedule_next_due(vec![]).await.unwrap(), Some(41_000));
        assert!(
            a.schedule_claim_due(35_000, vec![], 10, every_ten_seconds())
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(a.schedule_next_due(vec!["s1".into()]).await.unwrap(), None);
    }

    #[tokio::test]
    async fn owners_are_isolated_quota_applies_and_history_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store.schedule_create(schedule("s1", "alice", 1), 2).await.unwrap();
        store.schedule_create(schedule("s2", "alice", 1), 2).await.unwrap();
        let refused = store.schedule_create(schedule("s3", "alice", 1), 2).await.unwrap_err();
        assert!(
            matches!(refused, StoreError::Refused(ref m) if m.contains("schedule_cancel")),
            "{refused}"
        );
        store.schedule_create(schedule("s4", "bob", 1), 2).await.unwrap();
        assert_eq!(store.schedule_list("alice").await.unwrap().len(), 2);
        assert!(store.schedule_runs("bob", "s1", 10).await.unwrap().is_none());
        assert!(!store.schedule_cancel("bob", "s1").await.unwrap());
        assert!(!store.schedule_record_run("bob", "s1", run("ok"), 10).await.unwrap());
        for outcome in ["a", "b", "c", "d"] {
            assert!(store.schedule_record_run("alice", "s1", run(outcome), 3).await.unwrap());
        }
        let runs = store.schedule_runs("alice", "s1", 10).await.unwrap().unwrap();
        let outcomes: Vec<_> = runs.iter().map(|r| r.outcome.as_str()).collect();
        assert_eq!(outcomes, ["d", "c", "b"]);
        let listed = &store.schedule_list("alice").await.unwrap()[0];
        assert_eq!((listed.runs, listed.last_outcome.as_deref()), (4, Some("d")));
        assert!(store.schedule_cancel("alice", "s1").await.unwrap());
        assert_eq!(store.schedule_list("alice").await.unwrap().len(), 1);
    }
}

//! Workflow runs: their steps, status and per-step results.
//!
//! A run records which process (`instance`) executes it, so that a run left `running` by a
//! process that died can be told from one another live process is still executing.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::{Migration, SqliteStore, StoreError, to_i64};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    name: "workflow_1",
    sql: "CREATE TABLE workflow_runs (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        status TEXT NOT NULL,
        background INTEGER NOT NULL,
        instance TEXT NOT NULL,
        error TEXT,
        created_at INTEGER NOT NULL,
        finished_at INTEGER
    );
    CREATE INDEX workflow_runs_by_owner ON workflow_runs (owner, created_at);
    CREATE INDEX workflow_runs_running ON workflow_runs (instance) WHERE status = 'running';
    CREATE TABLE workflow_steps (
        run_id TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
        owner TEXT NOT NULL,
        idx INTEGER NOT NULL,
        step_id TEXT NOT NULL,
        tool TEXT NOT NULL,
        status TEXT NOT NULL,
        result TEXT,
        result_truncated INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        started_at INTEGER,
        finished_at INTEGER,
        PRIMARY KEY (run_id, idx)
    ) WITHOUT ROWID;",
}];

/// Status of a run that has not finished.
pub const WORKFLOW_RUNNING: &str = "running";

/// A run to store, with its steps (all `pending`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkflowRun {
    pub id: String,
    pub owner: String,
    pub background: bool,
    /// The process executing the run.
    pub instance: String,
    pub created_at_ms: i64,
    /// `(step id, tool)` in order.
    pub steps: Vec<(String, String)>,
}

/// A stored run as its owner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRunRecord {
    pub id: String,
    pub status: String,
    pub background: bool,
    pub error: Option<String>,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub steps: Vec<WorkflowStepRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowStepRecord {
    pub id: String,
    pub tool: String,
    pub status: String,
    /// JSON text (possibly a JSON string holding a truncated preview).
    pub result: Option<String>,
    pub result_truncated: bool,
    pub error: Option<String>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    pub status: String,
    pub result: Option<String>,
    pub result_truncated: bool,
    pub error: Option<String>,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

/// Workflow runs. Owner-facing methods are scoped to `owner`; `workflow_running_instances` and
/// `workflow_interrupt` are for start-up recovery and see every owner's runs.
pub trait WorkflowStore: Send + Sync {
    /// Stores a new run and forgets the owner's oldest finished runs beyond `keep`.
    fn workflow_create(&self, run: NewWorkflowRun, keep: usize) -> BoxFuture<'_, Result<(), StoreError>>;
    fn workflow_step_started<'a>(
        &'a self,
        owner: &'a str,
        run_id: &'a str,
        index: usize,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn workflow_step_finished<'a>(
        &'a self,
        owner: &'a str,
        run_id: &'a str,
        index: usize,
        outcome: StepOutcome,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Ends a running run: steps still `running` become `failed` with `error`, `pending` ones
    /// `skipped`. No effect on a run that already ended.
    fn workflow_finish<'a>(
        &'a self,
        owner: &'a str,
        run_id: &'a str,
        status: &'a str,
        error: Option<String>,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn workflow_get<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkflowRunRecord>, StoreError>>;
    /// The owner's newest runs first, without their steps (`steps` is empty).
    fn workflow_list<'a>(
        &'a self,
        owner: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<WorkflowRunRecord>, StoreError>>;
    /// The distinct processes that have runs still marked running.
    fn workflow_running_instances(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
    /// Marks every running run of `instance` failed with `message`; returns how many.
    fn workflow_interrupt<'a>(
        &'a self,
        instance: &'a str,
        message: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<usize, StoreError>>;
}

fn finish_steps(
    tx: &rusqlite::Transaction<'_>,
    run_id: &str,
    error: Option<&str>,
    at_ms: i64,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "UPDATE workflow_steps SET status = 'failed', error = COALESCE(error, ?2), finished_at = ?3
         WHERE run_id = ?1 AND status = 'running'",
    )?
    .execute(params![run_id, error, at_ms])?;
    tx.prepare_cached("UPDATE workflow_steps SET status = 'skipped' WHERE run_id = ?1 AND status = 'pending'")?
        .execute(params![run_id])?;
    Ok(())
}

impl WorkflowStore for SqliteStore {
    fn workflow_create(&self, run: NewWorkflowRun, keep: usize) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |tx| {
            tx.prepare_cached(
                "INSERT INTO workflow_runs (id, owner, status, background, instance, created_at)
                 VALUES (?1, ?2, 'running', ?3, ?4, ?5)",
            )?
            .execute(params![
                run.id,
                run.owner,
                run.background,
                run.instance,
                run.created_at_ms
            ])?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO workflow_steps (run_id, owner, idx, step_id, tool, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
            )?;
            for (index, (step_id, tool)) in run.steps.iter().enumerate() {
                insert.execute(params![run.id, run.owner, to_i64(index), step_id, tool])?;
            }
            // Steps go with their run (ON DELETE CASCADE).
            tx.prepare_cached(
                "DELETE FROM workflow_runs WHERE id IN (
                    SELECT id FROM workflow_runs WHERE owner = ?1 AND status != 'running'
                    ORDER BY created_at DESC, id DESC LIMIT -1 OFFSET ?2)",
            )?
            .execute(params![run.owner, to_i64(keep)])?;
            Ok(())
        })
        .boxed()
    }

    fn workflow_step_started<'a>(
        &'a self,
        owner: &'a str,
        run_id: &'a str,
        index: usize,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (owner, run_id) = (owner.to_owned(), run_id.to_owned());
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE workflow_steps SET status = 'running', started_at = ?4
                 WHERE owner = ?1 AND run_id = ?2 AND idx = ?3",
            )?
            .execute(params![owner, run_id, to_i64(index), at_ms])?;
            Ok(())
        })
        .boxed()
    }

    fn workflow_step_finished<'a>(
        &'a self,
        owner: &'a str,
        run_id: &'a str,
        index: usize,
        outcome: StepOutcome,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (owner, run_id) = (owner.to_owned(), run_id.to_owned());
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE workflow_steps SET status = ?4, result = ?5, result_truncated = ?6, error = ?7,
                    started_at = ?8, finished_at = ?9
                 WHERE owner = ?1 AND run_id = ?2 AND idx = ?3",
            )?
            .execute(params![
                owner,
                run_id,
                to_i64(index),
                outcome.status,
                outcome.result,
                outcome.result_truncated,
                outcome.error,
                outcome.started_at_ms,
                outcome.finished_at_ms
            ])?;
            Ok(())
        })
        .boxed()
    }

    fn workflow_finish<'a>(
        &'a self,
        owner: &'a str,
        run_id: &'a str,
        status: &'a str,
        error: Option<String>,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (owner, run_id, status) = (owner.to_owned(), run_id.to_owned(), status.to_owned());
        self.write(move |tx| {
            let ended = tx
                .prepare_cached(
                    "UPDATE workflow_runs SET status = ?3, error = ?4, finished_at = ?5
                     WHERE owner = ?1 AND id = ?2 AND status = 'running'",
                )?
                .execute(params![owner, run_id, status, error, at_ms])?;
            if ended > 0 {
                finish_steps(tx, &run_id, error.as_deref(), at_ms)?;
            }
            Ok(())
        })
        .boxed()
    }

    fn workflow_get<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkflowRunRecord>, StoreError>> {
        let (owner, id) = (owner.to_owned(), id.to_owned());
        self.read(move |conn| {
            let run = conn
                .prepare_cached(
                    "SELECT id, status, background, error, created_at, finished_at
                     FROM workflow_runs WHERE owner = ?1 AND id = ?2",
                )?
                .query_row(params![owner, id], |row| {
                    Ok(WorkflowRunRecord {
                        id: row.get(0)?,
                        status: row.get(1)?,
                        background: row.get(2)?,
                        error: row.get(3)?,
                        created_at_ms: row.get(4)?,
                        finished_at_ms: row.get(5)?,
                        steps: Vec::new(),
                    })
                })
                .optional()?;
            let Some(mut run) = run else {
                return Ok(None);
            };
            run.steps = conn
                .prepare_cached(
                    "SELECT step_id, tool, status, result, result_truncated, error, started_at, finished_at
                     FROM workflow_steps WHERE owner = ?1 AND run_id = ?2 ORDER BY idx",
                )?
                .query_map(params![owner, id], |row| {
                    Ok(WorkflowStepRecord {
                        id: row.get(0)?,
                        tool: row.get(1)?,
                        status: row.get(2)?,
                        result: row.get(3)?,
                        result_truncated: row.get(4)?,
                        error: row.get(5)?,
                        started_at_ms: row.get(6)?,
                        finished_at_ms: row.get(7)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(run))
        })
        .boxed()
    }

    fn workflow_list<'a>(
        &'a self,
        owner: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<WorkflowRunRecord>, StoreError>> {
        let owner = owner.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, status, background, error, created_at, finished_at
                 FROM workflow_runs WHERE owner = ?1 ORDER BY created_at DESC, id LIMIT ?2",
            )?
            .query_map(params![owner, limit], |row| {
                Ok(WorkflowRunRecord {
                    id: row.get(0)?,
                    status: row.get(1)?,
                    background: row.get(2)?,
                    error: row.get(3)?,
                    created_at_ms: row.get(4)?,
                    finished_at_ms: row.get(5)?,
                    steps: Vec::new(),
                })
            })?
            .collect()
        })
        .boxed()
    }

    fn workflow_running_instances(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT DISTINCT instance FROM workflow_runs WHERE status = 'running'")?
                .query_map([], |row| row.get(0))?
                .collect()
        })
        .boxed()
    }

    fn workflow_interrupt<'a>(
        &'a self,
        instance: &'a str,
        message: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        let (instance, message) = (instance.to_owned(), message.to_owned());
        self.write(move |tx| {
            let ids = tx
                .prepare_cached("SELECT id FROM workflow_runs WHERE instance = ?1 AND status = 'running'")?
                .query_map(params![instance], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            for id in &ids {
                tx.prepare_cached(
                    "UPDATE workflow_runs SET status = 'failed', error = ?2, finished_at = ?3
                     WHERE id = ?1 AND status = 'running'",
                )?
                .execute(params![id, message, at_ms])?;
                finish_steps(tx, id, Some(&message), at_ms)?;
            }
            Ok(ids.len())
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Synchronous;

    fn new_run(id: &str, owner: &str, instance: &str, created: i64) -> NewWorkflowRun {
        NewWorkflowRun {
            id: id.into(),
            owner: owner.into(),
            background: true,
            instance: instance.into(),
            created_at_ms: created,
            steps: vec![
                ("a".into(), "agentos.time_now".into()),
                ("b".into(), "agentos.time_now".into()),
            ],
        }
    }

    #[tokio::test]
    async fn runs_are_per_owner_and_interrupted_runs_end_failed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store
            .workflow_create(new_run("r1", "alice", "p1", 1), 10)
            .await
            .unwrap();
        store.workflow_step_started("alice", "r1", 0, 5).await.unwrap();
        assert!(store.workflow_get("bob", "r1").await.unwrap().is_none());
        // Bob's writes cannot touch Alice's run.
        store.workflow_finish("bob", "r1", "succeeded", None, 6).await.unwrap();
        let run = store.workflow_get("alice", "r1").await.unwrap().unwrap();
        assert_eq!(run.status, "running");
        assert_eq!(run.steps[0].status, "running");
        assert_eq!(store.workflow_running_instances().await.unwrap(), ["p1"]);
        assert_eq!(
            store
                .workflow_interrupt("p1", "interrupted by restart", 9)
                .await
                .unwrap(),
            1
        );
        let run = store.workflow_get("alice", "r1").await.unwrap().unwrap();
        assert_eq!(
            (run.status.as_str(), run.error.as_deref()),
            ("failed", Some("interrupted by restart"))
        );
        let statuses: Vec<_> = run.steps.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(statuses, ["failed", "skipped"]);
        assert!(store.workflow_running_instances().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn old_finished_runs_are_forgotten_beyond_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        for (i, id) in ["r1", "r2", "r3"].iter().enumerate() {
            store
                .workflow_create(new_run(id, "alice", "p", i as i64), 2)
                .await
                .unwrap();
            store.workflow_finish("alice", id, "succeeded", None, 10).await.unwrap();
        }
        store.workflow_create(new_run("r4", "alice", "p", 4), 2).await.unwrap();
        assert!(store.workflow_get("alice", "r1").await.unwrap().is_none());
        for id in ["r2", "r3", "r4"] {
            assert!(store.workflow_get("alice", id).await.unwrap().is_some(), "{id}");
        }
    }
}

//! Workflow runs on PostgreSQL: [`WorkflowStore`] for [`PgStore`], mirroring the SQLite
//! implementation in `src/store/workflow.rs` (runs, steps, retention, recovery of runs whose
//! process died).
//!
//! Owner-facing writes run in the owner's write transaction ([`owner_tx`]). Recovery spans owners
//! and may run on several replicas at once: an interrupt locks the runs it ends in id order, so
//! two replicas ending the same dead process's runs queue behind each other (no deadlock) and
//! each run is ended, and counted, once.

use deadpool_postgres::Transaction;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_postgres::{IsolationLevel, Row};

use super::{PgStore, owner_tx, to_i64};
use crate::store::{NewWorkflowRun, StepOutcome, StoreError, WorkflowRunRecord, WorkflowStepRecord, WorkflowStore};

/// Ends the steps of runs that just ended: `running` ones fail with `error` (unless they carry
/// their own), `pending` ones are skipped.
async fn finish_steps(
    tx: &Transaction<'_>,
    run_ids: &[String],
    error: Option<&str>,
    at_ms: i64,
) -> Result<(), StoreError> {
    let fail = tx
        .prepare_cached(
            "UPDATE workflow_steps SET status = 'failed', error = COALESCE(error, $2), finished_at = $3
             WHERE run_id = ANY($1) AND status = 'running'",
        )
        .await?;
    tx.execute(&fail, &[&run_ids, &error, &at_ms]).await?;
    let skip = tx
        .prepare_cached("UPDATE workflow_steps SET status = 'skipped' WHERE run_id = ANY($1) AND status = 'pending'")
        .await?;
    tx.execute(&skip, &[&run_ids]).await?;
    Ok(())
}

fn row_to_run(row: &Row) -> WorkflowRunRecord {
    WorkflowRunRecord {
        id: row.get(0),
        status: row.get(1),
        background: row.get(2),
        error: row.get(3),
        created_at_ms: row.get(4),
        finished_at_ms: row.get(5),
        steps: Vec::new(),
    }
}

impl WorkflowStore for PgStore {
    fn workflow_create(&self, run: NewWorkflowRun, keep: usize) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, &run.owner).await?;
            let insert_run = tx
                .prepare_cached(
                    "INSERT INTO workflow_runs (id, owner, status, background, instance, created_at)
                     VALUES ($1, $2, 'running', $3, $4, $5)",
                )
                .await?;
            tx.execute(
                &insert_run,
                &[&run.id, &run.owner, &run.background, &run.instance, &run.created_at_ms],
            )
            .await?;
            // All steps in one statement; `ordinality` (from 1) gives each its index (from 0).
            let (step_ids, tools): (Vec<&str>, Vec<&str>) = run
                .steps
                .iter()
                .map(|(step_id, tool)| (step_id.as_str(), tool.as_str()))
                .unzip();
            let insert_steps = tx
                .prepare_cached(
                    "INSERT INTO workflow_steps (run_id, owner, idx, step_id, tool, status)
                     SELECT $1, $2, s.position - 1, s.step_id, s.tool, 'pending'
                     FROM unnest($3::TEXT[], $4::TEXT[]) WITH ORDINALITY AS s (step_id, tool, position)",
                )
                .await?;
            tx.execute(&insert_steps, &[&run.id, &run.owner, &step_ids, &tools])
                .await?;
            // Steps go with their run (ON DELETE CASCADE).
            let forget = tx
                .prepare_cached(
                    "DELETE FROM workflow_runs WHERE id IN (
                        SELECT id FROM workflow_runs WHERE owner = $1 AND status <> 'running'
                        ORDER BY created_at DESC, id DESC OFFSET $2)",
                )
                .await?;
            tx.execute(&forget, &[&run.owner, &to_i64(keep)]).await?;
            tx.commit().await?;
            Ok(())
        }
        .boxed()
    }

    fn workflow_step_started<'a>(
        &'a self,
        owner: &'a str,
        run_id: &'a str,
        index: usize,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let start = tx
                .prepare_cached(
                    "UPDATE workflow_steps SET status = 'running', started_at = $4
                     WHERE owner = $1 AND run_id = $2 AND idx = $3",
                )
                .await?;
            tx.execute(&start, &[&owner, &run_id, &to_i64(index), &at_ms]).await?;
            tx.commit().await?;
            Ok(())
        }
        .boxed()
    }

    fn workflow_step_finished<'a>(
        &'a self,
        owner: &'a str,
        run_id: &'a str,
        index: usize,
        outcome: StepOutcome,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let finish = tx
                .prepare_cached(
                    "UPDATE workflow_steps SET status = $4, result = $5, result_truncated = $6, error = $7,
                        started_at = $8, finished_at = $9
                     WHERE owner = $1 AND run_id = $2 AND idx = $3",
                )
                .await?;
            tx.execute(
                &finish,
                &[
                    &owner,
                    &run_id,
                    &to_i64(index),
                    &outcome.status,
                    &outcome.result,
                    &outcome.result_truncated,
                    &outcome.error,
                    &outcome.started_at_ms,
                    &outcome.finished_at_ms,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
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
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let end = tx
                .prepare_cached(
                    "UPDATE workflow_runs SET status = $3, error = $4, finished_at = $5
                     WHERE owner = $1 AND id = $2 AND status = 'running'",
                )
                .await?;
            if tx.execute(&end, &[&owner, &run_id, &status, &error, &at_ms]).await? > 0 {
                finish_steps(&tx, &[run_id.to_owned()], error.as_deref(), at_ms).await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .boxed()
    }

    fn workflow_get<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkflowRunRecord>, StoreError>> {
        async move {
            let mut client = self.client().await?;
            // One snapshot for the run and its steps, so a run read as ended has its steps ended.
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let read_run = tx
                .prepare_cached(
                    "SELECT id, status, background, error, created_at, finished_at
                     FROM workflow_runs WHERE owner = $1 AND id = $2",
                )
                .await?;
            let Some(mut run) = tx
                .query_opt(&read_run, &[&owner, &id])
                .await?
                .map(|row| row_to_run(&row))
            else {
                return Ok(None);
            };
            let read_steps = tx
                .prepare_cached(
                    "SELECT step_id, tool, status, result, result_truncated, error, started_at, finished_at
                     FROM workflow_steps WHERE owner = $1 AND run_id = $2 ORDER BY idx",
                )
                .await?;
            run.steps = tx
                .query(&read_steps, &[&owner, &id])
                .await?
                .iter()
                .map(|row| WorkflowStepRecord {
                    id: row.get(0),
                    tool: row.get(1),
                    status: row.get(2),
                    result: row.get(3),
                    result_truncated: row.get(4),
                    error: row.get(5),
                    started_at_ms: row.get(6),
                    finished_at_ms: row.get(7),
                })
                .collect();
            tx.commit().await?;
            Ok(Some(run))
        }
        .boxed()
    }

    fn workflow_list<'a>(
        &'a self,
        owner: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<WorkflowRunRecord>, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT id, status, background, error, created_at, finished_at
                     FROM workflow_runs WHERE owner = $1 ORDER BY created_at DESC, id LIMIT $2",
                )
                .await?;
            let rows = client.query(&statement, &[&owner, &to_i64(limit)]).await?;
            Ok(rows.iter().map(row_to_run).collect())
        }
        .boxed()
    }

    fn workflow_running_instances(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT DISTINCT instance FROM workflow_runs WHERE status = 'running'")
                .await?;
            let rows = client.query(&statement, &[]).await?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        }
        .boxed()
    }

    fn workflow_interrupt<'a>(
        &'a self,
        instance: &'a str,
        message: &'a str,
        at_ms: i64,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Locked in id order: a second replica interrupting the same instance waits here, then
            // finds these runs no longer running (PostgreSQL re-checks the condition on the rows
            // it waited for) and ends none of them twice.
            let lock = tx
                .prepare_cached(
                    "SELECT id FROM workflow_runs WHERE instance = $1 AND status = 'running'
                     ORDER BY id FOR NO KEY UPDATE",
                )
                .await?;
            let ids: Vec<String> = tx
                .query(&lock, &[&instance])
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            if ids.is_empty() {
                return Ok(0);
            }
            let end = tx
                .prepare_cached(
                    "UPDATE workflow_runs SET status = 'failed', error = $2, finished_at = $3
                     WHERE id = ANY($1) AND status = 'running'",
                )
                .await?;
            tx.execute(&end, &[&ids, &message, &at_ms]).await?;
            finish_steps(&tx, &ids, Some(message), at_ms).await?;
            tx.commit().await?;
            Ok(ids.len())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::StoreLimits;
    use crate::store::postgres::testing;

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
        let Some(store) = testing::store().await else { return };
        store
            .workflow_create(new_run("r1", "alice", "p1", 1), 10)
            .await
            .unwrap();
        store.workflow_step_started("alice", "r1", 0, 5).await.unwrap();
        assert!(store.workflow_get("bob", "r1").await.unwrap().is_none());
        // Bob's writes cannot touch Alice's run.
        store.workflow_finish("bob", "r1", "succeeded", None, 6).await.unwrap();
        store.workflow_step_started("bob", "r1", 1, 6).await.unwrap();
        let run = store.workflow_get("alice", "r1").await.unwrap().unwrap();
        assert_eq!(run.status, "running");
        assert_eq!(run.steps[0].status, "running");
        assert_eq!(run.steps[1].status, "pending");
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
            (run.status.as_str(), run.error.as_deref(), run.finished_at_ms),
            ("failed", Some("interrupted by restart"), Some(9))
        );
        let statuses: Vec<_> = run.steps.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(statuses, ["failed", "skipped"]);
        assert_eq!(run.steps[0].error.as_deref(), Some("interrupted by restart"));
        assert!(store.workflow_running_instances().await.unwrap().is_empty());
        assert_eq!(store.workflow_interrupt("p1", "again", 10).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn old_finished_runs_are_forgotten_beyond_the_limit() {
        let Some(store) = testing::store().await else { return };
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
        // The forgotten run's steps went with it.
        let steps: i64 = store
            .client()
            .await
            .unwrap()
            .query_one("SELECT count(*) FROM workflow_steps WHERE run_id = 'r1'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(steps, 0);
    }

    #[tokio::test]
    async fn steps_record_their_outcome_and_finishing_ends_the_rest() {
        let Some(store) = testing::store().await else { return };
        let mut created = new_run("r1", "alice", "p", 1);
        created.background = false;
        created.steps.push(("c".into(), "agentos.mem_get".into()));
        store.workflow_create(created, 10).await.unwrap();
        store.workflow_step_started("alice", "r1", 0, 2).await.unwrap();
        let outcome = StepOutcome {
            status: "succeeded".into(),
            result: Some("{\"b\": 1,  \"a\": \"ü\"}".into()),
            result_truncated: true,
            error: None,
            started_at_ms: 2,
            finished_at_ms: 3,
        };
        store
            .workflow_step_finished("alice", "r1", 0, outcome.clone())
            .await
            .unwrap();
        store.workflow_step_started("alice", "r1", 1, 4).await.unwrap();
        store
            .workflow_finish("alice", "r1", "failed", Some("step b failed".into()), 5)
            .await
            .unwrap();
        // A run that already ended is left as it is.
        store
            .workflow_finish("alice", "r1", "succeeded", None, 6)
            .await
            .unwrap();
        let run = store.workflow_get("alice", "r1").await.unwrap().unwrap();
        assert_eq!(
            (
                run.status.as_str(),
                run.error.as_deref(),
                run.background,
                run.created_at_ms,
                run.finished_at_ms
            ),
            ("failed", Some("step b failed"), false, 1, Some(5))
        );
        let first = &run.steps[0];
        assert_eq!(
            (first.id.as_str(), first.tool.as_str(), first.status.as_str()),
            ("a", "agentos.time_now", "succeeded")
        );
        assert_eq!(
            (first.result.as_deref(), first.result_truncated, first.error.as_deref()),
            (outcome.result.as_deref(), true, None)
        );
        assert_eq!((first.started_at_ms, first.finished_at_ms), (Some(2), Some(3)));
        let second = &run.steps[1];
        assert_eq!(
            (
                second.status.as_str(),
                second.error.as_deref(),
                second.started_at_ms,
                second.finished_at_ms
            ),
            ("failed", Some("step b failed"), Some(4), Some(5))
        );
        let third = &run.steps[2];
        assert_eq!(
            (third.id.as_str(), third.status.as_str(), third.started_at_ms),
            ("c", "skipped", None)
        );
    }

    #[tokio::test]
    async fn lists_are_newest_first_without_steps() {
        let Some(store) = testing::store().await else { return };
        store.workflow_create(new_run("b", "alice", "p", 1), 10).await.unwrap();
        store.workflow_create(new_run("a", "alice", "p", 1), 10).await.unwrap();
        store.workflow_create(new_run("c", "alice", "p", 2), 10).await.unwrap();
        store.workflow_create(new_run("d", "bob", "p", 3), 10).await.unwrap();
        let listed = store.workflow_list("alice", 10).await.unwrap();
        let ids: Vec<_> = listed.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
        assert!(listed.iter().all(|r| r.steps.is_empty()));
        assert_eq!(store.workflow_list("alice", 1).await.unwrap().len(), 1);
        assert!(store.workflow_list("carol", 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn replicas_interrupting_one_dead_process_end_each_run_once() {
        let Some(url) = testing::fresh_database().await else {
            return;
        };
        let a = Arc::new(PgStore::connect(&url, 8, StoreLimits::default()).await.unwrap());
        let b = Arc::new(PgStore::connect(&url, 8, StoreLimits::default()).await.unwrap());
        for n in 0..30 {
            let owner = format!("owner{}", n % 4);
            a.workflow_create(new_run(&format!("r{n:02}"), &owner, "dead", n), 100)
                .await
                .unwrap();
        }
        a.workflow_create(new_run("live", "owner0", "alive", 99), 100)
            .await
            .unwrap();
        let interrupts = (0..6).map(|n| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.workflow_interrupt("dead", "interrupted", 7).await.unwrap() })
        });
        let ended: usize = futures::future::join_all(interrupts)
            .await
            .into_iter()
            .map(|count| count.unwrap())
            .sum();
        assert_eq!(ended, 30, "each run counted once across replicas");
        assert_eq!(a.workflow_running_instances().await.unwrap(), ["alive"]);
        let run = b.workflow_get("owner3", "r03").await.unwrap().unwrap();
        assert_eq!((run.status.as_str(), run.finished_at_ms), ("failed", Some(7)));
    }
}

//! Schedules and their run history on PostgreSQL: [`ScheduleStore`] for [`PgStore`], mirroring
//! the SQLite implementation in `src/store/schedule.rs`.
//!
//! Owner-facing writes run in the owner's write transaction ([`owner_tx`]): the per-owner limit
//! and the history trim are read-then-write. Claiming spans owners and replicas: a claimer locks
//! the due rows it takes with `FOR NO KEY UPDATE SKIP LOCKED` (so claimers on other replicas take
//! other rows instead of waiting) and still advances `next_run_at` by compare-and-set, as on
//! SQLite; an occurrence is fired by exactly one claimer, and a crash before the commit leaves it
//! to be claimed again, never fired twice.

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_postgres::Row;

use super::{PgStore, owner_tx, to_i64};
use crate::store::{AdvanceFn, DueSchedule, NewSchedule, ScheduleEntry, ScheduleRun, ScheduleStore, StoreError};

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

fn from_json(column: &str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("schedules.{column} is not a JSON list of strings: {error}")))
}

fn row_to_entry(row: &Row) -> ScheduleEntry {
    ScheduleEntry {
        id: row.get(0),
        name: row.get(1),
        tool: row.get(2),
        input: row.get(3),
        kind: row.get(4),
        spec: row.get(5),
        enabled: row.get(6),
        next_run_at_ms: row.get(7),
        last_run_at_ms: row.get(8),
        last_outcome: row.get(9),
        runs: u64::try_from(row.get::<_, i64>(10)).unwrap_or(0),
        created_at_ms: row.get(11),
    }
}

fn row_to_run(row: &Row) -> ScheduleRun {
    ScheduleRun {
        scheduled_at_ms: row.get(0),
        started_at_ms: row.get(1),
        finished_at_ms: row.get(2),
        outcome: row.get(3),
        missed: u64::try_from(row.get::<_, i64>(4)).unwrap_or(0),
        error: row.get(5),
        result: row.get(6),
        result_truncated: row.get(7),
    }
}

impl ScheduleStore for PgStore {
    fn schedule_create(&self, s: NewSchedule, max_per_owner: usize) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, &s.owner).await?;
            let count = tx
                .prepare_cached("SELECT count(*) FROM schedules WHERE owner = $1")
                .await?;
            let held: i64 = tx.query_one(&count, &[&s.owner]).await?.get(0);
            if held >= to_i64(max_per_owner) {
                return Err(StoreError::Refused(format!(
                    "you already have {max_per_owner} schedules, the most allowed; cancel some with \
                     agentos.schedule_cancel (finished one-shot schedules count too)"
                )));
            }
            let insert = tx
                .prepare_cached(
                    "INSERT INTO schedules (id, owner, name, tool, input, kind, spec, allowed_tools,
                        allowed_domains, enabled, next_run_at, runs, created_at, sealed_input)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, true, $10, 0, $11, $12)",
                )
                .await?;
            tx.execute(
                &insert,
                &[
                    &s.id,
                    &s.owner,
                    &s.name,
                    &s.tool,
                    &s.input,
                    &s.kind,
                    &s.spec,
                    &to_json(&s.allowed_tools),
                    &to_json(&s.allowed_domains),
                    &s.next_run_at_ms,
                    &s.created_at_ms,
                    &s.sealed_input,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .boxed()
    }

    fn schedule_list<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<ScheduleEntry>, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT id, name, tool, input, kind, spec, enabled, next_run_at, last_run_at, last_outcome,
                            runs, created_at
                     FROM schedules WHERE owner = $1 ORDER BY created_at, id",
                )
                .await?;
            let rows = client.query(&statement, &[&owner]).await?;
            Ok(rows.iter().map(row_to_entry).collect())
        }
        .boxed()
    }

    fn schedule_cancel<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let runs = tx
                .prepare_cached("DELETE FROM schedule_runs WHERE owner = $1 AND schedule_id = $2")
                .await?;
            tx.execute(&runs, &[&owner, &id]).await?;
            let schedule = tx
                .prepare_cached("DELETE FROM schedules WHERE owner = $1 AND id = $2")
                .await?;
            let deleted = tx.execute(&schedule, &[&owner, &id]).await?;
            tx.commit().await?;
            Ok(deleted > 0)
        }
        .boxed()
    }

    fn schedule_runs<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Option<Vec<ScheduleRun>>, StoreError>> {
        async move {
            let client = self.client().await?;
            let exists = client
                .prepare_cached("SELECT 1 FROM schedules WHERE owner = $1 AND id = $2")
                .await?;
            if client.query_opt(&exists, &[&owner, &id]).await?.is_none() {
                return Ok(None);
            }
            let runs = client
                .prepare_cached(
                    "SELECT scheduled_at, started_at, finished_at, outcome, missed, error, result, result_truncated
                     FROM schedule_runs WHERE owner = $1 AND schedule_id = $2 ORDER BY seq DESC LIMIT $3",
                )
                .await?;
            let rows = client.query(&runs, &[&owner, &id, &to_i64(limit)]).await?;
            Ok(Some(rows.iter().map(row_to_run).collect()))
        }
        .boxed()
    }

    fn schedule_next_due(&self, skip: Vec<String>) -> BoxFuture<'_, Result<Option<i64>, StoreError>> {
        async move {
            let client = self.client().await?;
            // `skip` is filtered in SQL (it holds the few schedules this process is firing).
            let statement = client
                .prepare_cached(
                    "SELECT next_run_at FROM schedules
                     WHERE enabled AND next_run_at IS NOT NULL AND id <> ALL($1::TEXT[])
                     ORDER BY next_run_at LIMIT 1",
                )
                .await?;
            Ok(client.query_opt(&statement, &[&skip]).await?.map(|row| row.get(0)))
        }
        .boxed()
    }

    fn schedule_claim_due(
        &self,
        now_ms: i64,
        skip: Vec<String>,
        limit: usize,
        advance: AdvanceFn,
    ) -> BoxFuture<'_, Result<Vec<DueSchedule>, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Rows another claimer holds are skipped, not waited for: it is firing them. A row it
            // has already advanced and committed no longer matches `next_run_at <= now` when
            // PostgreSQL re-checks it under the lock. NO KEY: recording a run (a foreign key to
            // this row) need not wait for the claim.
            let choose = tx
                .prepare_cached(
                    "SELECT id, owner, tool, input, kind, spec, allowed_tools, allowed_domains, next_run_at,
                        sealed_input
                     FROM schedules
                     WHERE enabled AND next_run_at <= $1 AND id <> ALL($2::TEXT[])
                     ORDER BY next_run_at LIMIT $3
                     FOR NO KEY UPDATE SKIP LOCKED",
                )
                .await?;
            let rows = tx.query(&choose, &[&now_ms, &skip, &to_i64(limit)]).await?;
            let claim = tx
                .prepare_cached(
                    "UPDATE schedules SET next_run_at = $1, enabled = $2
                     WHERE id = $3 AND enabled AND next_run_at = $4",
                )
                .await?;
            let mut claimed = Vec::with_capacity(rows.len());
            for row in &rows {
                let (kind, spec): (String, String) = (row.get(4), row.get(5));
                let mut due = DueSchedule {
                    id: row.get(0),
                    owner: row.get(1),
                    tool: row.get(2),
                    input: row.get(3),
                    sealed_input: row.get(9),
                    allowed_tools: from_json("allowed_tools", row.get(6))?,
                    allowed_domains: from_json("allowed_domains", row.get(7))?,
                    scheduled_at_ms: row.get(8),
                    due: 0,
                };
                let step = advance(&kind, &spec, due.scheduled_at_ms, now_ms);
                // The compare-and-set SQLite relies on; under the row lock it always wins, and
                // stays as a guard should the lock ever be taken differently.
                let won = tx
                    .execute(
                        &claim,
                        &[
                            &step.next_run_at_ms,
                            &step.next_run_at_ms.is_some(),
                            &due.id,
                            &due.scheduled_at_ms,
                        ],
                    )
                    .await?
                    == 1;
                if won && step.due > 0 {
                    due.due = step.due;
                    claimed.push(due);
                }
            }
            tx.commit().await?;
            Ok(claimed)
        }
        .boxed()
    }

    fn schedule_record_run<'a>(
        &'a self,
        owner: &'a str,
        id: &'a str,
        run: ScheduleRun,
        keep: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let count = tx
                .prepare_cached(
                    "UPDATE schedules SET last_run_at = $1, last_outcome = $2, runs = runs + 1
                     WHERE owner = $3 AND id = $4",
                )
                .await?;
            if tx
                .execute(&count, &[&run.started_at_ms, &run.outcome, &owner, &id])
                .await?
                == 0
            {
                return Ok(false);
            }
            let insert = tx
                .prepare_cached(
                    "INSERT INTO schedule_runs (schedule_id, owner, scheduled_at, started_at, finished_at, outcome,
                        missed, error, result, result_truncated)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .await?;
            let missed = i64::try_from(run.missed).unwrap_or(i64::MAX);
            tx.execute(
                &insert,
                &[
                    &id,
                    &owner,
                    &run.scheduled_at_ms,
                    &run.started_at_ms,
                    &run.finished_at_ms,
                    &run.outcome,
                    &missed,
                    &run.error,
                    &run.result,
                    &run.result_truncated,
                ],
            )
            .await?;
            let oldest_kept = tx
                .prepare_cached(
                    "SELECT seq FROM schedule_runs WHERE schedule_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2",
                )
                .await?;
            let offset = to_i64(keep.max(1) - 1);
            let oldest_kept: Option<i64> = tx.query_opt(&oldest_kept, &[&id, &offset]).await?.map(|row| row.get(0));
            if let Some(oldest_kept) = oldest_kept {
                let trim = tx
                    .prepare_cached("DELETE FROM schedule_runs WHERE schedule_id = $1 AND seq < $2")
                    .await?;
                tx.execute(&trim, &[&id, &oldest_kept]).await?;
            }
            tx.commit().await?;
            Ok(true)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;
    use crate::store::postgres::testing;
    use crate::store::{Advance, StoreLimits};

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

    /// Two stores on one database, as two replicas are.
    async fn two_replicas() -> Option<(Arc<PgStore>, Arc<PgStore>)> {
        let url = testing::fresh_database().await?;
        let a = PgStore::connect(&url, 8, StoreLimits::default()).await.unwrap();
        let b = PgStore::connect(&url, 8, StoreLimits::default()).await.unwrap();
        Some((Arc::new(a), Arc::new(b)))
    }

    #[tokio::test]
    async fn an_occurrence_is_claimed_once_even_by_two_replicas() {
        let Some((a, b)) = two_replicas().await else { return };
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
        assert_eq!(
            (claimed.owner.as_str(), claimed.allowed_tools.as_slice()),
            ("alice", ["*".to_owned()].as_slice())
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
    async fn concurrent_claimers_claim_every_due_occurrence_exactly_once() {
        let Some((a, b)) = two_replicas().await else { return };
        for n in 0..40 {
            a.schedule_create(schedule(&format!("s{n:02}"), "alice", 1_000 + n), 100)
                .await
                .unwrap();
        }
        // Three rounds of occurrences; in each, six claimers on two replicas take small batches
        // until none is left for them.
        let mut claims: HashMap<(String, i64), u64> = HashMap::new();
        for (round, now) in [5_000, 15_000, 25_000].into_iter().enumerate() {
            let claimers = (0..6).map(|n| {
                let store = if n % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    let mut mine = Vec::new();
                    loop {
                        let batch = store
                            .schedule_claim_due(now, vec![], 3, every_ten_seconds())
                            .await
                            .unwrap();
                        if batch.is_empty() {
                            return mine;
                        }
                        mine.extend(batch);
                    }
                })
            });
            let mut claimed = 0;
            for claimer in futures::future::join_all(claimers).await {
                for due in claimer.unwrap() {
                    assert_eq!(due.due, 1, "round {round}: one occurrence each");
                    *claims.entry((due.id, due.scheduled_at_ms)).or_default() += 1;
                    claimed += 1;
                }
            }
            assert_eq!(claimed, 40, "round {round}: every schedule was due once");
            assert_eq!(
                a.schedule_next_due(vec![]).await.unwrap(),
                Some(11_000 + round as i64 * 10_000)
            );
        }
        assert_eq!(claims.len(), 120, "40 schedules × 3 occurrences");
        assert!(claims.values().all(|&times| times == 1), "each claimed once");
    }

    #[tokio::test]
    async fn skipped_and_finished_schedules_are_not_claimed() {
        let Some(store) = testing::store().await else { return };
        store.schedule_create(schedule("s1", "alice", 1_000), 10).await.unwrap();
        store.schedule_create(schedule("s2", "alice", 2_000), 10).await.unwrap();
        store.schedule_create(schedule("s3", "alice", 3_000), 10).await.unwrap();
        let once: AdvanceFn = Arc::new(|_, _, _, _| Advance {
            next_run_at_ms: None,
            due: 1,
        });
        let claimed = store
            .schedule_claim_due(5_000, vec!["s1".into()], 1, once.clone())
            .await
            .unwrap();
        assert_eq!(claimed.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["s2"]);
        assert_eq!(store.schedule_next_due(vec!["s1".into()]).await.unwrap(), Some(3_000));
        // An unreadable spec advances the schedule without firing it.
        let unreadable: AdvanceFn = Arc::new(|_, _, _, _| Advance {
            next_run_at_ms: None,
            due: 0,
        });
        assert!(
            store
                .schedule_claim_due(5_000, vec!["s1".into()], 10, unreadable)
                .await
                .unwrap()
                .is_empty()
        );
        let listed = store.schedule_list("alice").await.unwrap();
        let state: Vec<_> = listed
            .iter()
            .map(|s| (s.id.as_str(), s.enabled, s.next_run_at_ms))
            .collect();
        assert_eq!(
            state,
            [("s1", true, Some(1_000)), ("s2", false, None), ("s3", false, None)]
        );
        assert_eq!(store.schedule_next_due(vec![]).await.unwrap(), Some(1_000));
    }

    #[tokio::test]
    async fn owners_are_isolated_quota_applies_and_history_is_trimmed() {
        let Some(store) = testing::store().await else { return };
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
        assert_eq!(runs[0], run("d"));
        assert_eq!(store.schedule_runs("alice", "s1", 1).await.unwrap().unwrap().len(), 1);
        let listed = &store.schedule_list("alice").await.unwrap()[0];
        assert_eq!((listed.runs, listed.last_outcome.as_deref()), (4, Some("d")));
        assert_eq!(listed.last_run_at_ms, Some(2));
        assert!(store.schedule_cancel("alice", "s1").await.unwrap());
        assert_eq!(store.schedule_list("alice").await.unwrap().len(), 1);
        assert!(store.schedule_runs("alice", "s1", 10).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_stored_schedule_reads_back_as_created() {
        let Some(store) = testing::store().await else { return };
        let mut created = schedule("b-id", "alice", 7_000);
        created.name = Some("nightly ü".into());
        created.input = "{\"token\":\"[redacted]\",  \"n\": 1}".into();
        created.sealed_input = Some(vec![0, 1, 2, 255]);
        created.allowed_domains = vec!["example.com".into()];
        created.created_at_ms = 5;
        store.schedule_create(created.clone(), 10).await.unwrap();
        // Same creation time: ids order the list bytewise ("B" before "a"), as on SQLite.
        store
            .schedule_create(
                NewSchedule {
                    id: "B-id".into(),
                    ..created.clone()
                },
                10,
            )
            .await
            .unwrap();
        let listed = store.schedule_list("alice").await.unwrap();
        assert_eq!(
            listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["B-id", "b-id"]
        );
        let entry = &listed[1];
        assert_eq!(
            (
                entry.name.as_deref(),
                entry.input.as_str(),
                entry.kind.as_str(),
                entry.spec.as_str()
            ),
            (created.name.as_deref(), created.input.as_str(), "every", "10")
        );
        assert_eq!(
            (
                entry.enabled,
                entry.next_run_at_ms,
                entry.last_run_at_ms,
                entry.runs,
                entry.created_at_ms
            ),
            (true, Some(7_000), None, 0, 5)
        );
        let due = store
            .schedule_claim_due(7_000, vec!["B-id".into()], 10, every_ten_seconds())
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(
            (
                due[0].sealed_input.as_deref(),
                due[0].allowed_domains.as_slice(),
                due[0].input.as_str()
            ),
            (
                Some([0u8, 1, 2, 255].as_slice()),
                created.allowed_domains.as_slice(),
                created.input.as_str()
            )
        );
    }
}

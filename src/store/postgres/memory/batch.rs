//! Group commit for memory writes on PostgreSQL: the `mem_set`s waiting at one moment go to the
//! server as one `memory_set_many` call, one round trip and one commit for all of them.
//!
//! A commit costs the server a WAL flush and a transaction's bookkeeping whatever it holds, and
//! on a busy replica most of a lone write's time is that. A few writer tasks each take what is
//! queued when they come free (up to [`MAX_BATCH`]), so a lone write goes out at once and a
//! burst shares commits. Each write is answered only after its batch committed, so nothing
//! acknowledged can be lost; a caller that stops waiting does not stop its write, as on SQLite,
//! where the writer thread finishes what it was given.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::store::{Family, Quota, QuotaExceeded, StoreError, Usage, now_ms};

/// Writes one batch holds at most: enough to share a commit among every connection of a full
/// pool, few enough that the owners' locks it takes are held briefly.
const MAX_BATCH: usize = 64;
/// Batches in flight at once. More than one, so a batch being committed does not hold back the
/// next; a handful, since each is one busy server process.
const WRITERS: usize = 4;
/// Writes waiting for a writer at most; past it `mem_set` waits for room.
const QUEUE: usize = 4096;

/// One write and where its answer goes: whether the key was new, or why it was refused.
struct PendingSet {
    owner: String,
    key: String,
    value: String,
    expires_at_ms: Option<i64>,
    lexemes: Vec<String>,
    answer: oneshot::Sender<Result<bool, StoreError>>,
}

/// The queue into the writer tasks. They end when the store (the queue's sender) goes.
pub(in crate::store::postgres) struct MemoryWrites {
    queue: mpsc::Sender<PendingSet>,
}

impl MemoryWrites {
    /// Starts the writer tasks on `pool`; `quota` is the memory quota every write is checked
    /// against. Needs a Tokio runtime.
    pub(in crate::store::postgres) fn start(pool: Pool, quota: Quota) -> Self {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(pool.clone(), quota, Arc::clone(&waiting)));
        }
        Self { queue }
    }

    /// Sets `key` in `owner`'s memory once the batch holding it has committed.
    pub(in crate::store::postgres) async fn set(
        &self,
        owner: &str,
        key: &str,
        value: String,
        expires_at_ms: Option<i64>,
        lexemes: Vec<String>,
    ) -> Result<bool, StoreError> {
        let (answer, answered) = oneshot::channel();
        let pending = PendingSet {
            owner: owner.to_owned(),
            key: key.to_owned(),
            value,
            expires_at_ms,
            lexemes,
            answer,
        };
        self.queue.send(pending).await.map_err(|_| StoreError::Closed)?;
        answered.await.map_err(|_| StoreError::Closed)?
    }
}

/// One writer: takes what is queued, writes it, answers, again, until the queue closes.
async fn write_batches(pool: Pool, quota: Quota, waiting: Arc<Mutex<mpsc::Receiver<PendingSet>>>) {
    loop {
        let batch = {
            let mut waiting = waiting.lock().await;
            let Some(first) = waiting.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match waiting.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            batch
        };
        match write(&pool, quota, &batch).await {
            Ok(outcomes) => {
                for (pending, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = pending.answer.send(outcome);
                }
            }
            // One write the server refuses fails the whole transaction: write each alone, so
            // only that one fails.
            Err(_) if batch.len() > 1 => {
                for pending in batch {
                    let outcome = match write(&pool, quota, std::slice::from_ref(&pending)).await {
                        Ok(mut outcomes) => outcomes.pop().unwrap_or(Err(StoreError::Closed)),
                        Err(error) => Err(error),
                    };
                    let _ = pending.answer.send(outcome);
                }
            }
            Err(error) => {
                if let Some(pending) = batch.into_iter().next() {
                    let _ = pending.answer.send(Err(error));
                }
            }
        }
    }
}

/// Writes `batch` in one transaction; each write's outcome, in the batch's order.
async fn write(pool: &Pool, quota: Quota, batch: &[PendingSet]) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
    let limit = |max: u64| i64::try_from(max).unwrap_or(i64::MAX);
    let owners: Vec<&str> = batch.iter().map(|p| p.owner.as_str()).collect();
    let keys: Vec<&str> = batch.iter().map(|p| p.key.as_str()).collect();
    let values: Vec<&str> = batch.iter().map(|p| p.value.as_str()).collect();
    let expiries: Vec<Option<i64>> = batch.iter().map(|p| p.expires_at_ms).collect();
    let counts: Vec<i32> = batch
        .iter()
        .map(|p| i32::try_from(p.lexemes.len()).unwrap_or(i32::MAX))
        .collect();
    let lexemes: Vec<&str> = batch
        .iter()
        .flat_map(|p| p.lexemes.iter().map(String::as_str))
        .collect();
    let client = super::super::client_from(pool).await?;
    let statement = client
        .prepare_cached(
            "SELECT idx, created, written, before_items, before_bytes, after_items, after_bytes
             FROM memory_set_many($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await?;
    let rows = client
        .query(
            &statement,
            &[
                &owners,
                &keys,
                &values,
                &now_ms(),
                &expiries,
                &counts,
                &lexemes,
                &limit(quota.max_items),
                &limit(quota.max_bytes),
            ],
        )
        .await?;
    let mut outcomes: Vec<Result<bool, StoreError>> = batch
        .iter()
        .map(|_| {
            Err(StoreError::Corrupt(
                "the database gave no outcome for a memory write".to_owned(),
            ))
        })
        .collect();
    for row in rows {
        let usage = |items: usize, bytes: usize| Usage::from_stored(row.get(items), row.get(bytes));
        let outcome = if row.get::<_, bool>(2) {
            Ok(row.get::<_, bool>(1))
        } else {
            Err(QuotaExceeded {
                family: Family::Memory,
                quota,
                before: usage(3, 4),
                after: usage(5, 6),
            }
            .into())
        };
        let place = usize::try_from(row.get::<_, i32>(0)).unwrap_or(0);
        if let Some(slot) = place.checked_sub(1).and_then(|index| outcomes.get_mut(index)) {
            *slot = outcome;
        }
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::postgres::memory::tests::stats_agree;
    use crate::store::postgres::{PgStore, testing};
    use crate::store::{MemoryStore, Quota, Quotas, StoreError, StoreLimits};

    /// Starts every write before awaiting any, so they queue together and share batches.
    async fn set_all(store: &Arc<PgStore>, writes: Vec<(String, String, String)>) -> Vec<Result<bool, StoreError>> {
        let tasks: Vec<_> = writes
            .into_iter()
            .map(|(owner, key, value)| {
                let store = Arc::clone(store);
                tokio::spawn(async move { store.mem_set(&owner, &key, value, None).await })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes
    }

    #[tokio::test]
    async fn a_burst_of_writes_of_many_owners_all_land() {
        let Some(store) = testing::store().await else { return };
        let store = Arc::new(store);
        let writes = (0..200)
            .map(|i| (format!("agent{}", i % 7), format!("k{i}"), format!("{i}")))
            .collect();
        let outcomes = set_all(&store, writes).await;
        assert!(outcomes.iter().all(|o| matches!(o, Ok(true))), "{outcomes:?}");
        for i in 0..200 {
            let entry = store
                .mem_get(&format!("agent{}", i % 7), &format!("k{i}"))
                .await
                .unwrap();
            assert_eq!(entry.unwrap().value, format!("{i}"));
        }
        for owner in 0..7 {
            stats_agree(&store, &format!("agent{owner}")).await;
        }
    }

    #[tokio::test]
    async fn one_refused_write_fails_alone() {
        let Some(store) = testing::store().await else { return };
        let store = Arc::new(store);
        // PostgreSQL text cannot hold NUL: the server refuses this write, and with it the batch
        // it shares, which is then written one write at a time.
        let mut writes: Vec<_> = (0..40)
            .map(|i| ("a".to_owned(), format!("k{i}"), "1".to_owned()))
            .collect();
        writes.insert(20, ("a".to_owned(), "bad\0key".to_owned(), "1".to_owned()));
        let outcomes = set_all(&store, writes).await;
        assert!(
            matches!(outcomes[20], Err(StoreError::Postgres(_))),
            "{:?}",
            outcomes[20]
        );
        let landed = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
        assert_eq!(landed, 40, "{outcomes:?}");
        stats_agree(&store, "a").await;
    }

    #[tokio::test]
    async fn a_quota_holds_within_a_batch() {
        let limits = StoreLimits {
            quotas: Quotas {
                memory: Quota {
                    max_items: 5,
                    max_bytes: u64::MAX,
                },
                ..Quotas::UNLIMITED
            },
            ..StoreLimits::default()
        };
        let Some(store) = testing::store_with(limits).await else {
            return;
        };
        let store = Arc::new(store);
        let writes = (0..30)
            .map(|i| ("a".to_owned(), format!("k{i}"), "1".to_owned()))
            .collect();
        let outcomes = set_all(&store, writes).await;
        let landed = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
        let refused = outcomes
            .iter()
            .filter(|o| matches!(o, Err(StoreError::Refused(m)) if m.contains("quotas.memory_items")))
            .count();
        assert_eq!((landed, refused), (5, 25), "{outcomes:?}");
        stats_agree(&store, "a").await;
    }
}

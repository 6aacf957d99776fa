//! Per-agent work queues with visibility timeouts: at-least-once delivery.
//!
//! A pop chooses and leases its items inside one write transaction (the single writer thread in
//! this process, `BEGIN IMMEDIATE` against other processes), so two pops never get the same item
//! while it is leased. Each lease gets a fresh random receipt; an ack must present the receipt of
//! the item's current lease, so a receipt from an earlier lease (the item timed out and was popped
//! again) cannot remove it. `queues` counts the items per queue, so the size limit is O(1).
//!
//! The id a caller sees is `seq`, numbered per owner (`queue_sequences`): 1, 2, 3, ... across
//! the owner's queues. The row's own id counts every agent's pushes, so handing it out told an
//! agent how much others queued between two of its pushes; it stays inside the store, where it
//! keeps the pop order of items that became visible at the same millisecond.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::quota::{Family, within_quota};
use super::{Migration, SqliteStore, StoreError, now_ms};

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "queue_1",
        sql: "CREATE TABLE queue_items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL,
        queue TEXT NOT NULL,
        item TEXT NOT NULL,
        enqueued_at INTEGER NOT NULL,
        visible_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease TEXT
    );
    CREATE INDEX queue_items_ready ON queue_items (owner, queue, visible_at, id);
    CREATE TABLE queues (
        owner TEXT NOT NULL,
        queue TEXT NOT NULL,
        items INTEGER NOT NULL,
        PRIMARY KEY (owner, queue)
    ) WITHOUT ROWID;",
    },
    Migration {
        name: "queue_2",
        // Items already queued keep their id as their sequence number, so ids and receipts
        // handed out before the upgrade stay valid; each owner's sequence continues above them.
        sql: "ALTER TABLE queue_items ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
        UPDATE queue_items SET seq = id;
        CREATE UNIQUE INDEX queue_items_seq ON queue_items (owner, seq);
        CREATE TABLE queue_sequences (
            owner TEXT PRIMARY KEY,
            last_seq INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO queue_sequences (owner, last_seq) SELECT owner, max(id) FROM queue_items GROUP BY owner;",
    },
];

/// What a push recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The item's number among its owner's pushes (1, 2, ...): nothing about other owners.
    pub id: i64,
    pub enqueued_at_ms: i64,
}

/// An item handed out by a pop, leased until `lease_expires_at_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct LeasedItem {
    /// As [`Enqueued::id`].
    pub id: i64,
    /// The item as JSON text, exactly as it was pushed.
    pub item: String,
    /// Proves this lease; acknowledging needs it.
    pub receipt: String,
    /// How many times the item has been handed out, this time included.
    pub attempts: i64,
    pub enqueued_at_ms: i64,
    pub lease_expires_at_ms: i64,
}

/// Per-agent work queues. Every method is scoped to `owner`: no call can reach another owner's
/// queues.
pub trait QueueStore: Send + Sync {
    /// Appends an item that becomes poppable at `visible_at_ms`. Refused when the queue already
    /// holds `max_items` items. Resolves once durable.
    fn queue_push<'a>(
        &'a self,
        owner: &'a str,
        queue: &'a str,
        item: String,
        visible_at_ms: i64,
        max_items: usize,
    ) -> BoxFuture<'a, Result<Enqueued, StoreError>>;
    /// Leases up to `max` visible items for `visibility_ms`, those visible longest first.
    fn queue_pop<'a>(
        &'a self,
        owner: &'a str,
        queue: &'a str,
        max: usize,
        visibility_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<LeasedItem>, StoreError>>;
    /// Removes the item whose current lease `receipt` proves; false if the receipt is unknown,
    /// stale (the item was leased again since) or already used.
    fn queue_ack<'a>(
        &'a self,
        owner: &'a str,
        queue: &'a str,
        receipt: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// A receipt is `<item id>.<32 hex digits>`: the id (the owner's sequence number) finds the row
/// through the `(owner, seq)` index, the random part (fresh per lease) proves the lease.
pub fn new_receipt(id: i64) -> String {
    format!("{id}.{}", uuid::Uuid::new_v4().simple())
}

/// The item id a well-formed receipt names; `None` for anything `new_receipt` cannot produce.
pub fn receipt_item_id(receipt: &str) -> Option<i64> {
    let (id, token) = receipt.split_once('.')?;
    let well_formed = !id.is_empty()
        && id.bytes().all(|b| b.is_ascii_digit())
        && token.len() == 32
        && token.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then(|| id.parse().ok()).flatten()
}

impl QueueStore for SqliteStore {
    fn queue_push<'a>(
        &'a self,
        owner: &'a str,
        queue: &'a str,
        item: String,
        visible_at_ms: i64,
        max_items: usize,
    ) -> BoxFuture<'a, Result<Enqueued, StoreError>> {
        let (owner, name) = (owner.to_owned(), queue.to_owned());
        let max_items = i64::try_from(max_items).unwrap_or(i64::MAX);
        async move {
            let queue = name.clone();
            let quota = self.quotas().queue;
            let outcome = self
                .write(move |tx| {
                    within_quota(tx, &owner, Family::Queue, quota, |tx| {
                        let held: i64 = tx
                            .prepare_cached("SELECT items FROM queues WHERE owner = ?1 AND queue = ?2")?
                            .query_row(params![owner, queue], |row| row.get(0))
                            .optional()?
                            .unwrap_or(0);
                        if held >= max_items {
                            return Ok(Err(held));
                        }
                        let enqueued_at_ms = now_ms();
                        let id: i64 = tx
                            .prepare_cached(
                                "INSERT INTO queue_sequences (owner, last_seq) VALUES (?1, 1)
                             ON CONFLICT (owner) DO UPDATE SET last_seq = last_seq + 1
                             RETURNING last_seq",
                            )?
                            .query_row(params![owner], |row| row.get(0))?;
                        tx.prepare_cached(
                            "INSERT INTO queue_items (owner, queue, seq, item, enqueued_at, visible_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        )?
                        .execute(params![
                            owner,
                            queue,
                            id,
                            item,
                            enqueued_at_ms,
                            visible_at_ms.max(enqueued_at_ms)
                        ])?;
                        tx.prepare_cached(
                            "INSERT INTO queues (owner, queue, items) VALUES (?1, ?2, 1)
                         ON CONFLICT (owner, queue) DO UPDATE SET items = items + 1",
                        )?
                        .execute(params![owner, queue])?;
                        Ok(Ok(Enqueued { id, enqueued_at_ms }))
                    })
                })
                .await??;
            outcome.map_err(|held| {
                StoreError::Refused(format!(
                    "queue `{name}` already holds {held} items, the limit; pop and acknowledge items \
                     (agentos.queue_pop, agentos.queue_ack) before pushing more"
                ))
            })
        }
        .boxed()
    }

    fn queue_pop<'a>(
        &'a self,
        owner: &'a str,
        queue: &'a str,
        max: usize,
        visibility_ms: i64,
    ) -> BoxFuture<'a, Result<Vec<LeasedItem>, StoreError>> {
        let (owner, queue) = (owner.to_owned(), queue.to_owned());
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.write(move |tx| {
            let now = now_ms();
            let rows = tx
                .prepare_cached(
                    "SELECT id, seq FROM queue_items WHERE owner = ?1 AND queue = ?2 AND visible_at <= ?3
                     ORDER BY visible_at, id LIMIT ?4",
                )?
                .query_map(params![owner, queue, now, max], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let lease_expires_at_ms = now.saturating_add(visibility_ms);
            let mut lease = tx.prepare_cached(
                "UPDATE queue_items SET visible_at = ?2, attempts = attempts + 1, lease = ?3
                 WHERE id = ?1 RETURNING item, attempts, enqueued_at",
            )?;
            rows.into_iter()
                .map(|(row, seq)| {
                    let receipt = new_receipt(seq);
                    let (item, attempts, enqueued_at_ms) = lease
                        .query_row(params![row, lease_expires_at_ms, receipt], |row| {
                            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                        })?;
                    Ok(LeasedItem {
                        id: seq,
                        item,
                        receipt,
                        attempts,
                        enqueued_at_ms,
                        lease_expires_at_ms,
                    })
                })
                .collect()
        })
        .boxed()
    }

    fn queue_ack<'a>(
        &'a self,
        owner: &'a str,
        queue: &'a str,
        receipt: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let Some(id) = receipt_item_id(receipt) else {
            return futures::future::ready(Ok(false)).boxed();
        };
        let (owner, queue, receipt) = (owner.to_owned(), queue.to_owned(), receipt.to_owned());
        self.write(move |tx| {
            let removed = tx
                .prepare_cached("DELETE FROM queue_items WHERE owner = ?1 AND seq = ?2 AND queue = ?3 AND lease = ?4")?
                .execute(params![owner, id, queue, receipt])?;
            if removed == 0 {
                return Ok(false);
            }
            tx.prepare_cached("UPDATE queues SET items = items - 1 WHERE owner = ?1 AND queue = ?2")?
                .execute(params![owner, queue])?;
            tx.prepare_cached("DELETE FROM queues WHERE owner = ?1 AND queue = ?2 AND items <= 0")?
                .execute(params![owner, queue])?;
            Ok(true)
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::Synchronous;

    #[test]
    fn receipts_are_unique_and_parse_back_to_their_item() {
        let (a, b) = (new_receipt(42), new_receipt(42));
        assert_ne!(a, b, "a fresh token per lease");
        assert_eq!(receipt_item_id(&a), Some(42));
        for bad in [
            "",
            "42",
            "42.",
            ".0123456789abcdef0123456789abcdef",
            "x.0123456789abcdef0123456789abcdef",
            "42.0123456789abcdef0123456789abcdeg",
            "-1.0123456789abcdef0123456789abcdef",
            "99999999999999999999.0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(receipt_item_id(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn a_lease_hides_the_item_until_it_expires_and_only_its_receipt_acks() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        let pushed = store.queue_push("a", "q", "\"job\"".into(), 0, 10).await.unwrap();
        // An already expired lease: the item is visible again at once.
        let first = store.queue_pop("a", "q", 5, -1).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].id, first[0].attempts, first[0].item.as_str()),
            (pushed.id, 1, "\"job\"")
        );
        let second = store.queue_pop("a", "q", 5, 60_000).await.unwrap();
        assert_eq!((second[0].id, second[0].attempts), (pushed.id, 2));
        assert!(store.queue_pop("a", "q", 5, 60_000).await.unwrap().is_empty(), "leased");

        assert!(
            !store.queue_ack("a", "q", &first[0].receipt).await.unwrap(),
            "stale receipt"
        );
        assert!(
            !store.queue_ack("b", "q", &second[0].receipt).await.unwrap(),
            "another owner"
        );
        assert!(
            !store.queue_ack("a", "other", &second[0].receipt).await.unwrap(),
            "another queue"
        );
        assert!(store.queue_ack("a", "q", &second[0].receipt).await.unwrap());
        assert!(
            !store.queue_ack("a", "q", &second[0].receipt).await.unwrap(),
            "already acked"
        );
    }

    #[tokio::test]
    async fn the_size_limit_counts_unacknowledged_items_per_owner_and_queue() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store.queue_push("a", "q", "1".into(), 0, 2).await.unwrap();
        store.queue_push("a", "q", "2".into(), 0, 2).await.unwrap();
        let refused = store.queue_push("a", "q", "3".into(), 0, 2).await.unwrap_err();
        assert!(
            matches!(&refused, StoreError::Refused(m) if m.contains("holds 2 items")),
            "{refused}"
        );
        store.queue_push("b", "q", "1".into(), 0, 2).await.unwrap();
        store.queue_push("a", "r", "1".into(), 0, 2).await.unwrap();
        let popped = store.queue_pop("a", "q", 1, 60_000).await.unwrap();
        store.queue_push("a", "q", "3".into(), 0, 2).await.unwrap_err();
        assert!(store.queue_ack("a", "q", &popped[0].receipt).await.unwrap());
        store.queue_push("a", "q", "3".into(), 0, 2).await.unwrap();
    }

    #[tokio::test]
    async fn items_come_out_in_order_and_delayed_ones_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store
            .queue_push("a", "q", "\"later\"".into(), now_ms() + 60_000, 10)
            .await
            .unwrap();
        for i in 0..3 {
            store.queue_push("a", "q", i.to_string(), 0, 10).await.unwrap();
        }
        let popped = store.queue_pop("a", "q", 10, 60_000).await.unwrap();
        let items: Vec<_> = popped.iter().map(|p| p.item.as_str()).collect();
        assert_eq!(items, ["0", "1", "2"]);
    }

    #[tokio::test]
    async fn concurrent_pops_never_share_an_item() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), Synchronous::Normal).unwrap());
        for i in 0..50 {
            store.queue_push("a", "q", i.to_string(), 0, 100).await.unwrap();
        }
        let pops = (0..20).map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.queue_pop("a", "q", 3, 60_000).await.unwrap() })
        });
        let mut ids: Vec<i64> = Vec::new();
        for pop in futures::future::join_all(pops).await {
            ids.extend(pop.unwrap().iter().map(|item| item.id));
        }
        let total = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!((ids.len(), total), (50, 50), "every item once");
    }
}

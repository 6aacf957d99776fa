//! Per-agent work queues on PostgreSQL: [`QueueStore`] for [`PgStore`], mirroring the SQLite
//! implementation in `src/store/queue.rs` (per-owner ids, visibility timeouts, receipts, the
//! per-queue size limit).
//!
//! Pushes and acks run in the owner's write transaction ([`owner_tx`]): the size limit and the
//! per-owner id are read-then-write. A pop instead locks the rows it leases with
//! `FOR UPDATE SKIP LOCKED`, so pops on any replica run side by side and never lease the same
//! item: a row another pop holds is skipped, and one it has just leased no longer matches
//! `visible_at <= now` when re-checked after its commit.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::quota::QuotaCheck;
use super::{PgStore, owner_tx, to_i64};
use crate::store::{Enqueued, Family, LeasedItem, QueueStore, StoreError, new_receipt, now_ms, receipt_item_id};

impl QueueStore for PgStore {
    fn queue_push<'a>(
        &'a self,
        owner: &'a str,
        queue: &'a str,
        item: String,
        visible_at_ms: i64,
        max_items: usize,
    ) -> BoxFuture<'a, Result<Enqueued, StoreError>> {
        let max_items = to_i64(max_items);
        let quota = self.quotas().queue;
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let check = QuotaCheck::before(&tx, owner, Family::Queue, quota).await?;
            let read_held = tx
                .prepare_cached("SELECT items FROM queues WHERE owner = $1 AND queue = $2")
                .await?;
            let held: i64 = tx
                .query_opt(&read_held, &[&owner, &queue])
                .await?
                .map_or(0, |row| row.get(0));
            if held >= max_items {
                return Err(StoreError::Refused(format!(
                    "queue `{queue}` already holds {held} items, the limit; pop and acknowledge items \
                     (agentos.queue_pop, agentos.queue_ack) before pushing more"
                )));
            }
            let enqueued_at_ms = now_ms();
            let next_id = tx
                .prepare_cached(
                    "INSERT INTO queue_sequences (owner, last_seq) VALUES ($1, 1)
                     ON CONFLICT (owner) DO UPDATE SET last_seq = queue_sequences.last_seq + 1
                     RETURNING last_seq",
                )
                .await?;
            let id: i64 = tx.query_one(&next_id, &[&owner]).await?.get(0);
            let insert = tx
                .prepare_cached(
                    "INSERT INTO queue_items (owner, queue, seq, item, enqueued_at, visible_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await?;
            let visible_at_ms = visible_at_ms.max(enqueued_at_ms);
            tx.execute(&insert, &[&owner, &queue, &id, &item, &enqueued_at_ms, &visible_at_ms])
                .await?;
            let count = tx
                .prepare_cached(
                    "INSERT INTO queues (owner, queue, items) VALUES ($1, $2, 1)
                     ON CONFLICT (owner, queue) DO UPDATE SET items = queues.items + 1",
                )
                .await?;
            tx.execute(&count, &[&owner, &queue]).await?;
            if let Err(exceeded) = check.after(&tx).await? {
                return Err(exceeded.into());
            }
            tx.commit().await?;
            Ok(Enqueued { id, enqueued_at_ms })
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
        let max = to_i64(max);
        async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let now = now_ms();
            let choose = tx
                .prepare_cached(
                    "SELECT id, seq FROM queue_items WHERE owner = $1 AND queue = $2 AND visible_at <= $3
                     ORDER BY visible_at, id LIMIT $4
                     FOR UPDATE SKIP LOCKED",
                )
                .await?;
            let chosen: Vec<(i64, i64)> = tx
                .query(&choose, &[&owner, &queue, &now, &max])
                .await?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            if chosen.is_empty() {
                return Ok(Vec::new());
            }
            let lease_expires_at_ms = now.saturating_add(visibility_ms);
            let rows: Vec<i64> = chosen.iter().map(|&(row, _)| row).collect();
            let receipts: Vec<String> = chosen.iter().map(|&(_, seq)| new_receipt(seq)).collect();
            // One statement leases them all; `ordinality` keeps the order they were chosen in.
            let lease = tx
                .prepare_cached(
                    "UPDATE queue_items q SET visible_at = $1, attempts = q.attempts + 1, lease = l.receipt
                     FROM unnest($2::BIGINT[], $3::TEXT[]) WITH ORDINALITY AS l (id, receipt, position)
                     WHERE q.id = l.id
                     RETURNING l.position, q.seq, q.item, q.attempts, q.enqueued_at, q.lease",
                )
                .await?;
            let mut leased: Vec<(i64, LeasedItem)> = tx
                .query(&lease, &[&lease_expires_at_ms, &rows, &receipts])
                .await?
                .iter()
                .map(|row| {
                    (
                        row.get(0),
                        LeasedItem {
                            id: row.get(1),
                            item: row.get(2),
                            attempts: row.get(3),
                            enqueued_at_ms: row.get(4),
                            receipt: row.get(5),
                            lease_expires_at_ms,
                        },
                    )
                })
                .collect();
            tx.commit().await?;
            leased.sort_by_key(|&(position, _)| position);
            Ok(leased.into_iter().map(|(_, item)| item).collect())
        }
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
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            // A pop re-leasing the item holds its row; this waits for it and then finds the
            // lease changed, so a stale receipt removes nothing.
            let remove = tx
                .prepare_cached("DELETE FROM queue_items WHERE owner = $1 AND seq = $2 AND queue = $3 AND lease = $4")
                .await?;
            if tx.execute(&remove, &[&owner, &id, &queue, &receipt]).await? == 0 {
                return Ok(false);
            }
            let count = tx
                .prepare_cached("UPDATE queues SET items = items - 1 WHERE owner = $1 AND queue = $2")
                .await?;
            tx.execute(&count, &[&owner, &queue]).await?;
            let forget = tx
                .prepare_cached("DELETE FROM queues WHERE owner = $1 AND queue = $2 AND items <= 0")
                .await?;
            tx.execute(&forget, &[&owner, &queue]).await?;
            tx.commit().await?;
            Ok(true)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::postgres::testing;
    use crate::store::{Quota, Quotas, StoreLimits, Usage};

    #[tokio::test]
    async fn a_lease_hides_the_item_until_it_expires_and_only_its_receipt_acks() {
        let Some(store) = testing::store().await else { return };
        let pushed = store.queue_push("a", "q", "\"job\"".into(), 0, 10).await.unwrap();
        assert_eq!(pushed.id, 1);
        // An already expired lease: the item is visible again at once.
        let first = store.queue_pop("a", "q", 5, -1).await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].id, first[0].attempts, first[0].item.as_str()),
            (pushed.id, 1, "\"job\"")
        );
        assert_eq!(first[0].enqueued_at_ms, pushed.enqueued_at_ms);
        assert_eq!(receipt_item_id(&first[0].receipt), Some(pushed.id));
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
        assert!(!store.queue_ack("a", "q", "not a receipt").await.unwrap());
        assert!(store.queue_ack("a", "q", &second[0].receipt).await.unwrap());
        assert!(
            !store.queue_ack("a", "q", &second[0].receipt).await.unwrap(),
            "already acked"
        );
    }

    #[tokio::test]
    async fn the_size_limit_counts_unacknowledged_items_per_owner_and_queue() {
        let Some(store) = testing::store().await else { return };
        store.queue_push("a", "q", "1".into(), 0, 2).await.unwrap();
        store.queue_push("a", "q", "2".into(), 0, 2).await.unwrap();
        let refused = store.queue_push("a", "q", "3".into(), 0, 2).await.unwrap_err();
        assert!(
            matches!(&refused, StoreError::Refused(m) if m.contains("holds 2 items")),
            "{refused}"
        );
        store.queue_push("b", "q", "1".into(), 0, 2).await.unwrap();
        // Ids count the owner's pushes across its queues; a refused push takes none.
        assert_eq!(store.queue_push("a", "r", "1".into(), 0, 2).await.unwrap().id, 3);
        let popped = store.queue_pop("a", "q", 1, 60_000).await.unwrap();
        store.queue_push("a", "q", "3".into(), 0, 2).await.unwrap_err();
        assert!(store.queue_ack("a", "q", &popped[0].receipt).await.unwrap());
        store.queue_push("a", "q", "3".into(), 0, 2).await.unwrap();
    }

    #[tokio::test]
    async fn items_come_out_in_order_and_delayed_ones_wait() {
        let Some(store) = testing::store().await else { return };
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
        let ids: Vec<_> = popped.iter().map(|p| p.id).collect();
        assert_eq!(ids, [2, 3, 4]);
    }

    /// Two stores on one database, as two replicas are.
    async fn two_replicas() -> Option<(Arc<PgStore>, Arc<PgStore>)> {
        let url = testing::fresh_database().await?;
        let a = PgStore::connect(&url, 8, StoreLimits::default()).await.unwrap();
        let b = PgStore::connect(&url, 8, StoreLimits::default()).await.unwrap();
        Some((Arc::new(a), Arc::new(b)))
    }

    #[tokio::test]
    async fn concurrent_pops_on_two_replicas_never_share_an_item() {
        let Some((a, b)) = two_replicas().await else { return };
        for i in 0..50 {
            a.queue_push("a", "q", i.to_string(), 0, 100).await.unwrap();
        }
        let pops = (0..20).map(|n| {
            let store = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.queue_pop("a", "q", 3, 60_000).await.unwrap() })
        });
        let mut ids: Vec<i64> = Vec::new();
        for pop in futures::future::join_all(pops).await {
            ids.extend(pop.unwrap().iter().map(|item| item.id));
        }
        let total = ids.len();
        ids.sort_unstable();
        ids.dedup();
        // 20 pops of 3 ask for more than the 50 items: each is leased exactly once.
        assert_eq!((ids.len(), total), (50, 50), "every item once");
        assert!(b.queue_pop("a", "q", 10, 60_000).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_pop_skips_an_item_another_pop_is_leasing_instead_of_waiting() {
        let Some(store) = testing::store().await else { return };
        for i in 0..2 {
            store.queue_push("a", "q", i.to_string(), 0, 10).await.unwrap();
        }
        // Another replica's pop, caught between choosing the first item and committing.
        let mut other = store.client().await.unwrap();
        let held = other.transaction().await.unwrap();
        held.execute("SELECT id FROM queue_items WHERE seq = 1 FOR UPDATE", &[])
            .await
            .unwrap();
        // Bounded, so a pop that waits for the lock fails the test instead of hanging it.
        let popped = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            store.queue_pop("a", "q", 10, 60_000),
        )
        .await
        .expect("the pop skips the locked item instead of waiting for it")
        .unwrap();
        assert_eq!(popped.iter().map(|p| p.id).collect::<Vec<_>>(), [2]);
        held.rollback().await.unwrap();
        let popped = store.queue_pop("a", "q", 10, 60_000).await.unwrap();
        assert_eq!(popped.iter().map(|p| p.id).collect::<Vec<_>>(), [1]);
    }

    async fn usage(store: &PgStore, owner: &str) -> (Usage, Usage) {
        let client = store.client().await.unwrap();
        let counted = client
            .query_opt(
                "SELECT items, bytes FROM quota_usage WHERE owner = $1 AND family = 'queue'",
                &[&owner],
            )
            .await
            .unwrap()
            .map_or(Usage::default(), |row| Usage {
                items: row.get::<_, i64>(0) as u64,
                bytes: row.get::<_, i64>(1) as u64,
            });
        let row = client
            .query_one(
                "SELECT count(*), coalesce(sum(octet_length(queue) + octet_length(item)), 0)::BIGINT
                 FROM queue_items WHERE owner = $1",
                &[&owner],
            )
            .await
            .unwrap();
        let recounted = Usage {
            items: row.get::<_, i64>(0) as u64,
            bytes: row.get::<_, i64>(1) as u64,
        };
        (counted, recounted)
    }

    #[tokio::test]
    async fn usage_stays_exact_and_a_push_past_the_quota_leaves_nothing() {
        let limits = StoreLimits {
            quotas: Quotas {
                queue: Quota {
                    max_items: 2,
                    max_bytes: 1000,
                },
                ..Quotas::UNLIMITED
            },
            ..StoreLimits::default()
        };
        let Some(store) = testing::store_with(limits).await else {
            return;
        };
        store.queue_push("a", "q/ü", "\"one\"".into(), 0, 10).await.unwrap();
        store.queue_push("a", "q/ü", "\"two\"".into(), 0, 10).await.unwrap();
        let (counted, recounted) = usage(&store, "a").await;
        assert_eq!((counted, counted.items), (recounted, 2));
        let refused = store.queue_push("a", "r", "3".into(), 0, 10).await.unwrap_err();
        assert!(
            matches!(&refused, StoreError::Refused(m) if m.contains("quotas.queue_items")),
            "{refused:?}"
        );
        assert!(store.queue_pop("a", "r", 10, 60_000).await.unwrap().is_empty());
        let leased = store.queue_pop("a", "q/ü", 1, 60_000).await.unwrap();
        assert_eq!(usage(&store, "a").await.0.items, 2, "leasing keeps the item");
        assert!(store.queue_ack("a", "q/ü", &leased[0].receipt).await.unwrap());
        let (counted, recounted) = usage(&store, "a").await;
        assert_eq!((counted, counted.items), (recounted, 1));
        // The refused push took no id: the next one continues the sequence.
        assert_eq!(store.queue_push("a", "r", "3".into(), 0, 10).await.unwrap().id, 3);
    }
}

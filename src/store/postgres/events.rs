//! Per-agent event topics on PostgreSQL: [`EventStore`] for [`PgStore`], mirroring the SQLite
//! implementation in `src/store/events.rs` (numbering per owner and topic, retention, clears).
//!
//! Every write runs in the owner's write transaction ([`owner_tx`]), so the topic counter, the
//! retention that reads it and the quota check behave as under SQLite's single writer, whichever
//! replica publishes. A publish also notifies channel [`CHANNEL`] (delivered at commit), so
//! waiting polls on other replicas wake without waiting for their next re-read.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::quota::QuotaCheck;
use super::{PgStore, owner_tx};
use crate::store::{EventPage, EventStore, Family, Published, StoreError, StoredEvent, now_ms};

/// The notification channel a publish signals on; the payload is `<owner>\n<topic>`.
pub(crate) const CHANNEL: &str = "agentos_events";

impl EventStore for PgStore {
    fn events_publish<'a>(
        &'a self,
        owner: &'a str,
        topic: &'a str,
        payload: String,
        keep: usize,
    ) -> BoxFuture<'a, Result<Published, StoreError>> {
        let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
        let quota = self.quotas().events;
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let check = QuotaCheck::before(&tx, owner, Family::Events, quota).await?;
            let published_at_ms = now_ms();
            let bump = tx
                .prepare_cached(
                    "INSERT INTO event_topics (owner, topic, events, last_seq) VALUES ($1, $2, 1, 1)
                     ON CONFLICT (owner, topic) DO UPDATE
                         SET events = event_topics.events + 1, last_seq = event_topics.last_seq + 1
                     RETURNING events, last_seq",
                )
                .await?;
            let row = tx.query_one(&bump, &[&owner, &topic]).await?;
            let (count, seq): (i64, i64) = (row.get(0), row.get(1));
            let insert = tx
                .prepare_cached(
                    "INSERT INTO events (owner, topic, topic_seq, payload, published_at)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .await?;
            tx.execute(&insert, &[&owner, &topic, &seq, &payload, &published_at_ms])
                .await?;
            if count > keep {
                // The newest event to drop: the (count - keep)th oldest. Usually the oldest itself,
                // so this reads one index entry, not the `keep` entries a count from the end would.
                let find_cutoff = tx
                    .prepare_cached(
                        "SELECT topic_seq FROM events WHERE owner = $1 AND topic = $2
                         ORDER BY topic_seq LIMIT 1 OFFSET $3",
                    )
                    .await?;
                let offset = count - keep - 1;
                let cutoff: Option<i64> = tx
                    .query_opt(&find_cutoff, &[&owner, &topic, &offset])
                    .await?
                    .map(|row| row.get(0));
                if let Some(cutoff) = cutoff {
                    let delete = tx
                        .prepare_cached("DELETE FROM events WHERE owner = $1 AND topic = $2 AND topic_seq <= $3")
                        .await?;
                    let dropped = tx.execute(&delete, &[&owner, &topic, &cutoff]).await?;
                    let dropped = i64::try_from(dropped).unwrap_or(i64::MAX);
                    let record = tx
                        .prepare_cached(
                            "UPDATE event_topics
                             SET events = events - $3, trimmed_through = greatest(trimmed_through, $4)
                             WHERE owner = $1 AND topic = $2",
                        )
                        .await?;
                    tx.execute(&record, &[&owner, &topic, &dropped, &cutoff]).await?;
                } else {
                    // The count disagrees with the rows (it never should): trust the rows, and
                    // drop nothing this time, as SQLite does.
                    let repair = tx
                        .prepare_cached(
                            "UPDATE event_topics
                             SET events = (SELECT count(*) FROM events WHERE owner = $1 AND topic = $2)
                             WHERE owner = $1 AND topic = $2",
                        )
                        .await?;
                    tx.execute(&repair, &[&owner, &topic]).await?;
                }
            }
            // Inside the transaction, so other replicas hear of the event only once it is committed
            // (and never of one rolled back by the quota check below).
            let notify = tx.prepare_cached("SELECT pg_notify($1, $2 || E'\\n' || $3)").await?;
            tx.execute(&notify, &[&CHANNEL, &owner, &topic]).await?;
            if let Err(exceeded) = check.after(&tx).await? {
                return Err(exceeded.into());
            }
            tx.commit().await?;
            Ok(Published { seq, published_at_ms })
        }
        .boxed()
    }

    fn events_poll<'a>(
        &'a self,
        owner: &'a str,
        topic: &'a str,
        after: i64,
        limit: usize,
    ) -> BoxFuture<'a, Result<EventPage, StoreError>> {
        async move {
            let client = self.client().await?;
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            // One statement, so one snapshot: `trimmed_through` matches the events returned. The
            // topic row always exists once the topic has events (clears keep it); without it
            // there is nothing to return.
            let statement = client
                .prepare_cached(
                    "SELECT t.trimmed_through, e.topic_seq, e.payload, e.published_at
                     FROM event_topics t
                     LEFT JOIN LATERAL (
                         SELECT topic_seq, payload, published_at FROM events
                         WHERE owner = t.owner AND topic = t.topic AND topic_seq > $3
                         ORDER BY topic_seq LIMIT $4
                     ) e ON true
                     WHERE t.owner = $1 AND t.topic = $2
                     ORDER BY e.topic_seq",
                )
                .await?;
            let rows = client.query(&statement, &[&owner, &topic, &after, &fetch]).await?;
            let trimmed_through: i64 = rows.first().map_or(0, |row| row.get(0));
            let mut events = Vec::with_capacity(rows.len());
            for row in &rows {
                let Some(seq) = row.get::<_, Option<i64>>(1) else {
                    continue;
                };
                events.push(StoredEvent {
                    seq,
                    payload: row.get(2),
                    published_at_ms: row.get(3),
                });
            }
            let has_more = events.len() > limit;
            events.truncate(limit);
            Ok(EventPage {
                events,
                has_more,
                trimmed_through,
            })
        }
        .boxed()
    }

    fn events_last_seq<'a>(&'a self, owner: &'a str, topic: &'a str) -> BoxFuture<'a, Result<i64, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT max(topic_seq) FROM events WHERE owner = $1 AND topic = $2")
                .await?;
            let seq: Option<i64> = client.query_one(&statement, &[&owner, &topic]).await?.get(0);
            Ok(seq.unwrap_or(0))
        }
        .boxed()
    }

    fn events_clear<'a>(
        &'a self,
        owner: &'a str,
        topic: &'a str,
        through: Option<i64>,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let read_last = tx
                .prepare_cached("SELECT last_seq FROM event_topics WHERE owner = $1 AND topic = $2")
                .await?;
            let Some(last) = tx
                .query_opt(&read_last, &[&owner, &topic])
                .await?
                .map(|row| row.get::<_, i64>(0))
            else {
                return Ok(0);
            };
            let cutoff = through.unwrap_or(last).min(last);
            let delete = tx
                .prepare_cached("DELETE FROM events WHERE owner = $1 AND topic = $2 AND topic_seq <= $3")
                .await?;
            let deleted = tx.execute(&delete, &[&owner, &topic, &cutoff]).await?;
            let record = tx
                .prepare_cached(
                    "UPDATE event_topics
                     SET events = greatest(events - $3, 0), trimmed_through = greatest(trimmed_through, $4)
                     WHERE owner = $1 AND topic = $2",
                )
                .await?;
            let deleted_i64 = i64::try_from(deleted).unwrap_or(i64::MAX);
            tx.execute(&record, &[&owner, &topic, &deleted_i64, &cutoff]).await?;
            tx.commit().await?;
            Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
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

    fn seqs(page: &EventPage) -> Vec<i64> {
        page.events.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn cursors_grow_per_topic_and_owners_are_separate() {
        let Some(store) = testing::store().await else { return };
        let a1 = store.events_publish("a", "t", "1".into(), 100).await.unwrap();
        let b1 = store.events_publish("b", "t", "10".into(), 100).await.unwrap();
        let a2 = store.events_publish("a", "t", "2".into(), 100).await.unwrap();
        let other = store.events_publish("a", "u", "3".into(), 100).await.unwrap();
        // Numbered per owner and topic: B's event between A's two leaves no gap in A's numbers.
        assert_eq!((a1.seq, b1.seq, a2.seq, other.seq), (1, 1, 2, 1));

        let page = store.events_poll("a", "t", 0, 10).await.unwrap();
        assert_eq!(seqs(&page), [a1.seq, a2.seq]);
        assert_eq!(page.events[1].payload, "2");
        assert_eq!(page.events[0].published_at_ms, a1.published_at_ms);
        assert!(!page.has_more);
        assert_eq!(page.trimmed_through, 0);
        assert_eq!(seqs(&store.events_poll("a", "t", a1.seq, 10).await.unwrap()), [a2.seq]);
        assert_eq!(seqs(&store.events_poll("b", "t", 0, 10).await.unwrap()), [b1.seq]);
        assert!(store.events_poll("c", "t", 0, 10).await.unwrap().events.is_empty());
        assert!(store.events_poll("a", "t", a2.seq, 10).await.unwrap().events.is_empty());
        assert_eq!(store.events_last_seq("a", "t").await.unwrap(), a2.seq);
        assert_eq!(store.events_last_seq("c", "t").await.unwrap(), 0);

        let first = store.events_poll("a", "t", 0, 1).await.unwrap();
        assert_eq!(seqs(&first), [a1.seq]);
        assert!(first.has_more);
    }

    #[tokio::test]
    async fn payloads_round_trip_byte_for_byte() {
        let Some(store) = testing::store().await else { return };
        let payload = "{ \"b\": 1,  \"a\": [\"ü\\u00e9\", 1.50e3] }";
        store.events_publish("a", "t", payload.into(), 10).await.unwrap();
        assert_eq!(
            store.events_poll("a", "t", 0, 10).await.unwrap().events[0].payload,
            payload
        );
    }

    #[tokio::test]
    async fn retention_keeps_the_newest_and_records_what_it_dropped() {
        let Some(store) = testing::store().await else { return };
        let mut published = Vec::new();
        for i in 0..5 {
            published.push(store.events_publish("a", "t", i.to_string(), 3).await.unwrap().seq);
        }
        store.events_publish("a", "other", "x".into(), 3).await.unwrap();
        let page = store.events_poll("a", "t", 0, 10).await.unwrap();
        assert_eq!(seqs(&page), published[2..]);
        assert_eq!(page.trimmed_through, published[1]);
        assert_eq!(store.events_poll("a", "other", 0, 10).await.unwrap().trimmed_through, 0);

        // A lower limit later trims several at once; the count stays right for the next publish.
        let newest = store.events_publish("a", "t", "5".into(), 1).await.unwrap().seq;
        let page = store.events_poll("a", "t", 0, 10).await.unwrap();
        assert_eq!(seqs(&page), [newest]);
        assert_eq!(page.trimmed_through, published[4]);
        let next = store.events_publish("a", "t", "6".into(), 2).await.unwrap().seq;
        assert_eq!(seqs(&store.events_poll("a", "t", 0, 10).await.unwrap()), [newest, next]);
    }

    #[tokio::test]
    async fn a_wrong_count_is_repaired_instead_of_failing_publishes() {
        let Some(store) = testing::store().await else { return };
        store.events_publish("a", "t", "1".into(), 2).await.unwrap();
        store
            .client()
            .await
            .unwrap()
            .execute("UPDATE event_topics SET events = 100", &[])
            .await
            .unwrap();
        let second = store.events_publish("a", "t", "2".into(), 2).await.unwrap().seq;
        let third = store.events_publish("a", "t", "3".into(), 2).await.unwrap().seq;
        assert_eq!(
            seqs(&store.events_poll("a", "t", 0, 10).await.unwrap()),
            [second, third]
        );
    }

    #[tokio::test]
    async fn clearing_keeps_the_counter_and_tells_readers_what_went() {
        let Some(store) = testing::store().await else { return };
        assert_eq!(store.events_clear("a", "t", None).await.unwrap(), 0, "no such topic");
        for i in 1..=4 {
            store.events_publish("a", "t", i.to_string(), 10).await.unwrap();
        }
        assert_eq!(store.events_clear("a", "t", Some(2)).await.unwrap(), 2);
        let page = store.events_poll("a", "t", 0, 10).await.unwrap();
        assert_eq!((seqs(&page), page.trimmed_through), (vec![3, 4], 2));
        // A cursor beyond the newest event clears no further than it.
        assert_eq!(store.events_clear("a", "t", Some(99)).await.unwrap(), 2);
        let page = store.events_poll("a", "t", 0, 10).await.unwrap();
        assert_eq!((page.events.len(), page.trimmed_through), (0, 4));
        assert_eq!(store.events_last_seq("a", "t").await.unwrap(), 0);
        assert_eq!(store.events_publish("a", "t", "5".into(), 10).await.unwrap().seq, 5);
        assert_eq!(store.events_clear("a", "t", None).await.unwrap(), 1);
    }

    /// Usage in `quota_usage` equals a recount of the table, as the triggers promise.
    async fn assert_usage_exact(store: &PgStore, owner: &str) {
        // Read from `quota_usage` itself: `quota_usage()` also counts files, whose table is
        // another family's migration.
        let client = store.client().await.unwrap();
        let counted = client
            .query_opt(
                "SELECT items, bytes FROM quota_usage WHERE owner = $1 AND family = 'events'",
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
                "SELECT count(*), coalesce(sum(octet_length(topic) + octet_length(payload)), 0)::BIGINT
                 FROM events WHERE owner = $1",
                &[&owner],
            )
            .await
            .unwrap();
        let recounted = Usage {
            items: row.get::<_, i64>(0) as u64,
            bytes: row.get::<_, i64>(1) as u64,
        };
        assert_eq!(counted, recounted, "usage of {owner}");
    }

    #[tokio::test]
    async fn usage_stays_exact_and_a_publish_past_the_quota_leaves_nothing() {
        let events = Quota {
            max_items: 3,
            max_bytes: 1000,
        };
        let limits = StoreLimits {
            quotas: Quotas {
                events,
                ..Quotas::UNLIMITED
            },
            ..StoreLimits::default()
        };
        let Some(store) = testing::store_with(limits).await else {
            return;
        };
        for n in 0..3 {
            store.events_publish("a", "t/ü", format!("\"{n}\""), 10).await.unwrap();
        }
        assert_usage_exact(&store, "a").await;
        let refused = store.events_publish("a", "u", "1".into(), 10).await.unwrap_err();
        assert!(
            matches!(&refused, StoreError::Refused(m) if m.contains("quotas.events_items")),
            "{refused:?}"
        );
        // Nothing of the refused publish stays: no event, no counter step.
        assert_eq!(store.events_last_seq("a", "u").await.unwrap(), 0);
        assert_usage_exact(&store, "a").await;
        // Retention that keeps the count level is no growth, so it is allowed.
        store.events_publish("a", "t/ü", "\"3\"".into(), 3).await.unwrap();
        assert_usage_exact(&store, "a").await;
        assert_eq!(store.events_clear("a", "t/ü", Some(2)).await.unwrap(), 1);
        assert_usage_exact(&store, "a").await;
        store.events_publish("b", "t", "1".into(), 10).await.unwrap();
        assert_usage_exact(&store, "b").await;
    }

    #[tokio::test]
    async fn concurrent_publishers_get_distinct_consecutive_seqs() {
        let Some(store) = testing::store().await else { return };
        let store = Arc::new(store);
        let publishes = (0..40).map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.events_publish("a", "t", n.to_string(), 1000).await.unwrap() })
        });
        let mut seqs: Vec<i64> = futures::future::join_all(publishes)
            .await
            .into_iter()
            .map(|published| published.unwrap().seq)
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
        let page = store.events_poll("a", "t", 0, 100).await.unwrap();
        assert_eq!(page.events.len(), 40);
    }

    #[tokio::test]
    async fn a_publish_notifies_other_replicas_at_commit_and_a_refused_one_does_not() {
        let Some(url) = testing::fresh_database().await else {
            return;
        };
        let limits = StoreLimits {
            quotas: Quotas {
                events: Quota {
                    max_items: 1,
                    max_bytes: 1000,
                },
                ..Quotas::UNLIMITED
            },
            ..StoreLimits::default()
        };
        let store = PgStore::connect(&url, 4, limits).await.unwrap();
        // A session of its own, as another replica's listener would hold.
        let (listener, mut connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        let (heard, mut hear) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = futures::StreamExt::next(&mut messages).await {
                if let tokio_postgres::AsyncMessage::Notification(note) = message {
                    let _ = heard.send((note.channel().to_owned(), note.payload().to_owned()));
                }
            }
        });
        listener.batch_execute("LISTEN agentos_events").await.unwrap();
        async fn next(hear: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
            tokio::time::timeout(std::time::Duration::from_secs(10), hear.recv())
                .await
                .expect("a notification")
                .unwrap()
        }
        store.events_publish("a", "builds/web", "1".into(), 10).await.unwrap();
        assert_eq!(next(&mut hear).await, (CHANNEL.to_owned(), "a\nbuilds/web".to_owned()));
        // Over the quota: rolled back, so no notification; the next one heard is the later publish.
        store.events_publish("a", "refused", "1".into(), 10).await.unwrap_err();
        store.events_publish("b", "t", "1".into(), 10).await.unwrap();
        assert_eq!(next(&mut hear).await, (CHANNEL.to_owned(), "b\nt".to_owned()));
    }
}

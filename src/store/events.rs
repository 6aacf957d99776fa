//! Per-agent event topics: published payloads in order, polled by cursor.
//!
//! Every event gets a sequence number within its topic (`topic_seq`: 1, 2, 3, ...) from the
//! topic's counter in `event_topics`, so the numbers only grow, even across processes sharing
//! the database (the counter is bumped inside the publishing write transaction) and after old
//! events are trimmed; a cursor is the sequence number of the last event a reader has seen. A
//! cursor says nothing about other topics or other agents: the row's own `seq` counts every
//! agent's events and never leaves the store. `event_topics` also keeps a count per topic (so
//! retention costs O(log n) per publish) and the highest sequence number retention dropped (so
//! a reader whose cursor is older learns that it missed events).

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::quota::{Family, within_quota};
use super::{Migration, SqliteStore, StoreError, now_ms};

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "events_1",
        sql: "CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        owner TEXT NOT NULL,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        published_at INTEGER NOT NULL
    );
    CREATE INDEX events_by_topic ON events (owner, topic, seq);
    CREATE TABLE event_topics (
        owner TEXT NOT NULL,
        topic TEXT NOT NULL,
        events INTEGER NOT NULL,
        trimmed_through INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (owner, topic)
    ) WITHOUT ROWID;",
    },
    Migration {
        name: "events_2",
        // Events already published keep their number as their position in the topic, so cursors
        // handed out before the upgrade resume exactly; each topic's counter continues above them
        // (and above what retention dropped).
        sql: "ALTER TABLE events ADD COLUMN topic_seq INTEGER NOT NULL DEFAULT 0;
        UPDATE events SET topic_seq = seq;
        DROP INDEX events_by_topic;
        CREATE UNIQUE INDEX events_by_topic ON events (owner, topic, topic_seq);
        ALTER TABLE event_topics ADD COLUMN last_seq INTEGER NOT NULL DEFAULT 0;
        UPDATE event_topics SET last_seq = max(trimmed_through, coalesce(
            (SELECT max(e.seq) FROM events e WHERE e.owner = event_topics.owner AND e.topic = event_topics.topic),
            0
        ));",
    },
];

/// One event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// The event's number in its topic, one more than the previous event's; its cursor.
    pub seq: i64,
    /// The payload as JSON text, exactly as it was published.
    pub payload: String,
    pub published_at_ms: i64,
}

/// What a publish recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub seq: i64,
    pub published_at_ms: i64,
}

/// Events after a cursor, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// More events follow the last one returned.
    pub has_more: bool,
    /// The highest sequence number retention has dropped from this topic (0 if none): a reader
    /// whose cursor is below it missed events.
    pub trimmed_through: i64,
}

/// Per-agent event topics. Every method is scoped to `owner`: no call can reach another owner's
/// topics.
pub trait EventStore: Send + Sync {
    /// Appends an event, then drops the topic's oldest events beyond `keep`. Resolves once durable.
    fn events_publish<'a>(
        &'a self,
        owner: &'a str,
        topic: &'a str,
        payload: String,
        keep: usize,
    ) -> BoxFuture<'a, Result<Published, StoreError>>;
    /// Up to `limit` events with a sequence number above `after`, oldest first.
    fn events_poll<'a>(
        &'a self,
        owner: &'a str,
        topic: &'a str,
        after: i64,
        limit: usize,
    ) -> BoxFuture<'a, Result<EventPage, StoreError>>;
    /// The sequence number of the topic's newest event, or 0 if it has none.
    fn events_last_seq<'a>(&'a self, owner: &'a str, topic: &'a str) -> BoxFuture<'a, Result<i64, StoreError>>;
    /// Deletes the topic's events up to and including `through` (all of them when `None`) and
    /// returns how many went. The topic's counter is kept, so later events continue after them
    /// and a reader behind the cut learns it missed events, as after retention.
    fn events_clear<'a>(
        &'a self,
        owner: &'a str,
        topic: &'a str,
        through: Option<i64>,
    ) -> BoxFuture<'a, Result<usize, StoreError>>;
}

impl EventStore for SqliteStore {
    fn events_publish<'a>(
        &'a self,
        owner: &'a str,
        topic: &'a str,
        payload: String,
        keep: usize,
    ) -> BoxFuture<'a, Result<Published, StoreError>> {
        let (owner, topic) = (owner.to_owned(), topic.to_owned());
        let keep = i64::try_from(keep.max(1)).unwrap_or(i64::MAX);
        let quota = self.quotas().events;
        async move {
            self.write(move |tx| {
                within_quota(tx, &owner, Family::Events, quota, |tx| {
                    let published_at_ms = now_ms();
                    let (count, seq): (i64, i64) = tx
                        .prepare_cached(
                            "INSERT INTO event_topics (owner, topic, events, last_seq) VALUES (?1, ?2, 1, 1)
                     ON CONFLICT (owner, topic) DO UPDATE SET events = events + 1, last_seq = last_seq + 1
                     RETURNING events, last_seq",
                        )?
                        .query_row(params![owner, topic], |row| Ok((row.get(0)?, row.get(1)?)))?;
                    tx.prepare_cached(
                "INSERT INTO events (owner, topic, topic_seq, payload, published_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![owner, topic, seq, payload, published_at_ms])?;
                    if count > keep {
                        // The newest event to drop: the (count - keep)th oldest. Usually the oldest itself,
                        // so this reads one index entry, not the `keep` entries a count from the end would.
                        let cutoff: Option<i64> = tx
                            .prepare_cached(
                                "SELECT topic_seq FROM events WHERE owner = ?1 AND topic = ?2
                         ORDER BY topic_seq LIMIT 1 OFFSET ?3",
                            )?
                            .query_row(params![owner, topic, count - keep - 1], |row| row.get(0))
                            .optional()?;
                        let Some(cutoff) = cutoff else {
                            // The count disagrees with the rows (it never should): trust the rows.
                            tx.prepare_cached(
                        "UPDATE event_topics SET events = (SELECT count(*) FROM events WHERE owner = ?1 AND topic = ?2)
                         WHERE owner = ?1 AND topic = ?2",
                    )?
                    .execute(params![owner, topic])?;
                            return Ok(Published { seq, published_at_ms });
                        };
                        let dropped = tx
                            .prepare_cached("DELETE FROM events WHERE owner = ?1 AND topic = ?2 AND topic_seq <= ?3")?
                            .execute(params![owner, topic, cutoff])?;
                        tx.prepare_cached(
                            "UPDATE event_topics SET events = events - ?3, trimmed_through = max(trimmed_through, ?4)
                     WHERE owner = ?1 AND topic = ?2",
                        )?
                        .execute(params![owner, topic, dropped as i64, cutoff])?;
                    }
                    Ok(Published { seq, published_at_ms })
                })
            })
            .await?
            .map_err(StoreError::from)
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
        let (owner, topic) = (owner.to_owned(), topic.to_owned());
        self.read(move |conn| {
            // One snapshot for both reads, so `trimmed_through` matches the events returned.
            let tx = conn.unchecked_transaction()?;
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let mut events = tx
                .prepare_cached(
                    "SELECT topic_seq, payload, published_at FROM events
                     WHERE owner = ?1 AND topic = ?2 AND topic_seq > ?3 ORDER BY topic_seq LIMIT ?4",
                )?
                .query_map(params![owner, topic, after, fetch], |row| {
                    Ok(StoredEvent {
                        seq: row.get(0)?,
                        payload: row.get(1)?,
                        published_at_ms: row.get(2)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let trimmed_through: i64 = tx
                .prepare_cached("SELECT trimmed_through FROM event_topics WHERE owner = ?1 AND topic = ?2")?
                .query_row(params![owner, topic], |row| row.get(0))
                .optional()?
                .unwrap_or(0);
            let has_more = events.len() > limit;
            events.truncate(limit);
            Ok(EventPage {
                events,
                has_more,
                trimmed_through,
            })
        })
        .boxed()
    }

    fn events_clear<'a>(
        &'a self,
        owner: &'a str,
        topic: &'a str,
        through: Option<i64>,
    ) -> BoxFuture<'a, Result<usize, StoreError>> {
        let (owner, topic) = (owner.to_owned(), topic.to_owned());
        self.write(move |tx| {
            let last: Option<i64> = tx
                .prepare_cached("SELECT last_seq FROM event_topics WHERE owner = ?1 AND topic = ?2")?
                .query_row(params![owner, topic], |row| row.get(0))
                .optional()?;
            let Some(last) = last else { return Ok(0) };
            let cutoff = through.unwrap_or(last).min(last);
            let deleted = tx
                .prepare_cached("DELETE FROM events WHERE owner = ?1 AND topic = ?2 AND topic_seq <= ?3")?
                .execute(params![owner, topic, cutoff])?;
            tx.prepare_cached(
                "UPDATE event_topics SET events = max(events - ?3, 0), trimmed_through = max(trimmed_through, ?4)
                 WHERE owner = ?1 AND topic = ?2",
            )?
            .execute(params![owner, topic, deleted as i64, cutoff])?;
            Ok(deleted)
        })
        .boxed()
    }

    fn events_last_seq<'a>(&'a self, owner: &'a str, topic: &'a str) -> BoxFuture<'a, Result<i64, StoreError>> {
        let (owner, topic) = (owner.to_owned(), topic.to_owned());
        self.read(move |conn| {
            conn.prepare_cached("SELECT max(topic_seq) FROM events WHERE owner = ?1 AND topic = ?2")?
                .query_row(params![owner, topic], |row| row.get::<_, Option<i64>>(0))
                .map(|seq| seq.unwrap_or(0))
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Synchronous;

    fn seqs(page: &EventPage) -> Vec<i64> {
        page.events.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn cursors_grow_per_topic_and_owners_are_separate() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        let a1 = store.events_publish("a", "t", "1".into(), 100).await.unwrap();
        let b1 = store.events_publish("b", "t", "10".into(), 100).await.unwrap();
        let a2 = store.events_publish("a", "t", "2".into(), 100).await.unwrap();
        let other = store.events_publish("a", "u", "3".into(), 100).await.unwrap();
        // Numbered per owner and topic: B's event between A's two leaves no gap in A's numbers.
        assert_eq!((a1.seq, b1.seq, a2.seq, other.seq), (1, 1, 2, 1));

        let page = store.events_poll("a", "t", 0, 10).await.unwrap();
        assert_eq!(seqs(&page), [a1.seq, a2.seq]);
        assert_eq!(page.events[1].payload, "2");
        assert!(!page.has_more);
        assert_eq!(seqs(&store.events_poll("a", "t", a1.seq, 10).await.unwrap()), [a2.seq]);
        assert_eq!(seqs(&store.events_poll("b", "t", 0, 10).await.unwrap()), [b1.seq]);
        assert!(store.events_poll("c", "t", 0, 10).await.unwrap().events.is_empty());
        assert_eq!(store.events_last_seq("a", "t").await.unwrap(), a2.seq);
        assert_eq!(store.events_last_seq("c", "t").await.unwrap(), 0);

        let first = store.events_poll("a", "t", 0, 1).await.unwrap();
        assert_eq!(seqs(&first), [a1.seq]);
        assert!(first.has_more);
    }

    #[tokio::test]
    async fn retention_keeps_the_newest_and_records_what_it_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store.events_publish("a", "t", "1".into(), 2).await.unwrap();
        store
            .write(|tx| tx.execute("UPDATE event_topics SET events = 100", []))
            .await
            .unwrap();
        let second = store.events_publish("a", "t", "2".into(), 2).await.unwrap().seq;
        let third = store.events_publish("a", "t", "3".into(), 2).await.unwrap().seq;
        assert_eq!(
            seqs(&store.events_poll("a", "t", 0, 10).await.unwrap()),
            [second, third]
        );
    }
}

//! Per-agent key-value memory: values as JSON text, optional expiry, prefix listing.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::quota::{Family, within_quota};
use super::ranking::{self, Collection, WordMatch};
use super::{Migration, SqliteStore, StoreError, now_ms};

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "memory_1",
        // The FTS5 index mirrors keys and values through triggers, so it can never drift from the
        // table, whichever statement writes it.
        sql: "CREATE TABLE memory (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER,
        UNIQUE (owner, key)
    );
    CREATE VIRTUAL TABLE memory_fts USING fts5(
        key, value, content = 'memory', content_rowid = 'id', tokenize = 'unicode61'
    );
    CREATE TRIGGER memory_fts_insert AFTER INSERT ON memory BEGIN
        INSERT INTO memory_fts (rowid, key, value) VALUES (new.id, new.key, new.value);
    END;
    CREATE TRIGGER memory_fts_delete AFTER DELETE ON memory BEGIN
        INSERT INTO memory_fts (memory_fts, rowid, key, value) VALUES ('delete', old.id, old.key, old.value);
    END;
    CREATE TRIGGER memory_fts_update AFTER UPDATE ON memory BEGIN
        INSERT INTO memory_fts (memory_fts, rowid, key, value) VALUES ('delete', old.id, old.key, old.value);
        INSERT INTO memory_fts (rowid, key, value) VALUES (new.id, new.key, new.value);
    END;",
    },
    Migration {
        name: "memory_2",
        // Search scores from the caller's rows alone (see `ranking`): the index gains an owner tag
        // column so a query reaches only the caller's rows, and `memory_search_stats` keeps each
        // owner's row count and indexed length. The index is rebuilt from the table, so every
        // existing entry stays searchable; triggers keep index and statistics exact from here on.
        sql: "DROP TRIGGER memory_fts_insert;
        DROP TRIGGER memory_fts_delete;
        DROP TRIGGER memory_fts_update;
        DROP TABLE memory_fts;
        CREATE VIEW memory_fts_content AS SELECT id, key, value, hex(owner) AS owner_tag FROM memory;
        CREATE VIRTUAL TABLE memory_fts USING fts5(
            key, value, owner_tag, content = 'memory_fts_content', content_rowid = 'id', tokenize = 'unicode61'
        );
        INSERT INTO memory_fts (memory_fts) VALUES ('rebuild');
        CREATE TRIGGER memory_fts_insert AFTER INSERT ON memory BEGIN
            INSERT INTO memory_fts (rowid, key, value, owner_tag) VALUES (new.id, new.key, new.value, hex(new.owner));
        END;
        CREATE TRIGGER memory_fts_delete AFTER DELETE ON memory BEGIN
            INSERT INTO memory_fts (memory_fts, rowid, key, value, owner_tag)
            VALUES ('delete', old.id, old.key, old.value, hex(old.owner));
        END;
        CREATE TRIGGER memory_fts_update AFTER UPDATE ON memory BEGIN
            INSERT INTO memory_fts (memory_fts, rowid, key, value, owner_tag)
            VALUES ('delete', old.id, old.key, old.value, hex(old.owner));
            INSERT INTO memory_fts (rowid, key, value, owner_tag) VALUES (new.id, new.key, new.value, hex(new.owner));
        END;
        CREATE TABLE memory_search_stats (
            owner TEXT PRIMARY KEY,
            entries INTEGER NOT NULL,
            characters INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO memory_search_stats (owner, entries, characters)
            SELECT owner, count(*), sum(length(key) + length(value)) FROM memory GROUP BY owner;
        CREATE TRIGGER memory_stats_insert AFTER INSERT ON memory BEGIN
            INSERT INTO memory_search_stats (owner, entries, characters)
            VALUES (new.owner, 1, length(new.key) + length(new.value))
            ON CONFLICT (owner) DO UPDATE SET entries = entries + 1, characters = characters + excluded.characters;
        END;
        CREATE TRIGGER memory_stats_delete AFTER DELETE ON memory BEGIN
            UPDATE memory_search_stats SET entries = entries - 1,
                characters = characters - length(old.key) - length(old.value)
            WHERE owner = old.owner;
        END;
        CREATE TRIGGER memory_stats_update AFTER UPDATE ON memory BEGIN
            UPDATE memory_search_stats SET entries = entries - 1,
                characters = characters - length(old.key) - length(old.value)
            WHERE owner = old.owner;
            INSERT INTO memory_search_stats (owner, entries, characters)
            VALUES (new.owner, 1, length(new.key) + length(new.value))
            ON CONFLICT (owner) DO UPDATE SET entries = entries + 1, characters = characters + excluded.characters;
        END;",
    },
];

/// One memory entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEntry {
    pub key: String,
    /// The value as JSON text, exactly as it was written.
    pub value: String,
    pub updated_at_ms: i64,
    pub expires_at_ms: Option<i64>,
}

/// A page of memory keys.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPage {
    pub entries: Vec<MemoryEntry>,
    /// Present when more entries follow; pass it back as `after` to continue.
    pub next_after: Option<String>,
}

/// One full-text match.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryHit {
    pub entry: MemoryEntry,
    /// BM25 relevance computed from the owner's entries alone (see `ranking`); higher is better.
    pub score: f64,
}

/// Per-agent key-value memory. Every method is scoped to `owner`: no call can reach another
/// owner's entries.
pub trait MemoryStore: Send + Sync {
    /// Inserts or replaces; returns whether the key was new (or had expired). Resolves only once
    /// the write is durable.
    fn mem_set<'a>(
        &'a self,
        owner: &'a str,
        key: &'a str,
        value: String,
        expires_at_ms: Option<i64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn mem_get<'a>(&'a self, owner: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<MemoryEntry>, StoreError>>;
    fn mem_delete<'a>(&'a self, owner: &'a str, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn mem_list<'a>(
        &'a self,
        owner: &'a str,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<MemoryPage, StoreError>>;
    /// Deletes every owner's expired entries; returns how many.
    fn mem_purge_expired(&self) -> BoxFuture<'_, Result<usize, StoreError>>;
    /// Full-text search over keys and values; `words` are matched as prefixes, any of them. Scores
    /// depend on `owner`'s entries only, never on what other owners store.
    fn mem_search<'a>(
        &'a self,
        owner: &'a str,
        words: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<MemoryHit>, StoreError>>;
}

fn row_to_entry(row: &rusqlite::Row<'_>) -> Result<MemoryEntry, rusqlite::Error> {
    Ok(MemoryEntry {
        key: row.get(0)?,
        value: row.get(1)?,
        updated_at_ms: row.get(2)?,
        expires_at_ms: row.get(3)?,
    })
}

impl MemoryStore for SqliteStore {
    fn mem_set<'a>(
        &'a self,
        owner: &'a str,
        key: &'a str,
        value: String,
        expires_at_ms: Option<i64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (owner, key) = (owner.to_owned(), key.to_owned());
        let quota = self.quotas().memory;
        async move {
            self.write(move |tx| {
                within_quota(tx, &owner, Family::Memory, quota, |tx| {
                    let now = now_ms();
                    let existed: bool = tx
                .prepare_cached(
                    "SELECT 1 FROM memory WHERE owner = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
                )?
                .exists(params![owner, key, now])?;
                    tx.prepare_cached(
                        "INSERT INTO memory (owner, key, value, updated_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value,
                    updated_at = excluded.updated_at, expires_at = excluded.expires_at",
                    )?
                    .execute(params![owner, key, value, now, expires_at_ms])?;
                    Ok(!existed)
                })
            })
            .await?
            .map_err(StoreError::from)
        }
        .boxed()
    }

    fn mem_get<'a>(&'a self, owner: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<MemoryEntry>, StoreError>> {
        let (owner, key) = (owner.to_owned(), key.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT key, value, updated_at, expires_at FROM memory
                 WHERE owner = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
            )?
            .query_row(params![owner, key, now_ms()], row_to_entry)
            .optional()
        })
        .boxed()
    }

    fn mem_delete<'a>(&'a self, owner: &'a str, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (owner, key) = (owner.to_owned(), key.to_owned());
        self.write(move |tx| {
            let live = tx
                .prepare_cached(
                    "SELECT 1 FROM memory WHERE owner = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
                )?
                .exists(params![owner, key, now_ms()])?;
            tx.prepare_cached("DELETE FROM memory WHERE owner = ?1 AND key = ?2")?
                .execute(params![owner, key])?;
            Ok(live)
        })
        .boxed()
    }

    fn mem_list<'a>(
        &'a self,
        owner: &'a str,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<MemoryPage, StoreError>> {
        let (owner, prefix, after) = (owner.to_owned(), prefix.to_owned(), after.map(str::to_owned));
        self.read(move |conn| {
            // Keys are compared bytewise (BINARY collation), so `prefix <= key < prefix + U+10FFFF`
            // selects exactly the keys starting with `prefix` and uses the primary key index.
            let upper = format!("{prefix}\u{10FFFF}");
            let start = match &after {
                Some(after) if after.as_str() >= prefix.as_str() => after.clone(),
                _ => String::new(),
            };
            let mut statement = conn.prepare_cached(
                "SELECT key, value, updated_at, expires_at FROM memory
                 WHERE owner = ?1 AND key >= ?2 AND key < ?3 AND key > ?4
                   AND (expires_at IS NULL OR expires_at > ?5)
                 ORDER BY key LIMIT ?6",
            )?;
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let mut entries = statement
                .query_map(params![owner, prefix, upper, start, now_ms(), fetch], row_to_entry)?
                .collect::<Result<Vec<_>, _>>()?;
            let next_after = if entries.len() > limit {
                entries.truncate(limit);
                entries.last().map(|e| e.key.clone())
            } else {
                None
            };
            Ok(MemoryPage { entries, next_after })
        })
        .boxed()
    }

    fn mem_search<'a>(
        &'a self,
        owner: &'a str,
        words: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<MemoryHit>, StoreError>> {
        let (owner, words) = (owner.to_owned(), ranking::distinct(words));
        self.read(move |conn| {
            // One snapshot for the statistics, the matches and the entries, so they agree.
            let tx = conn.unchecked_transaction()?;
            let collection = Collection::load(
                &tx,
                "SELECT entries, characters FROM memory_search_stats WHERE owner = ?1",
                &owner,
            )?;
            let tag = ranking::owner_tag(&owner);
            let now = now_ms();
            // Per word: the owner's matching entries (expired ones too: they still count in the
            // statistics until purged), each with its length and how often the word occurs in it
            // (highlight() marks each occurrence with one character, so the growth counts them).
            let mut matching = tx.prepare_cached(
                "SELECT m.id, length(m.key) + length(m.value),
                        length(highlight(memory_fts, 0, char(1), '')) - length(m.key)
                        + length(highlight(memory_fts, 1, char(1), '')) - length(m.value),
                        m.expires_at IS NULL OR m.expires_at > ?3
                 FROM memory_fts JOIN memory m ON m.id = memory_fts.rowid
                 WHERE memory_fts MATCH ?1 AND m.owner = ?2",
            )?;
            let matches = words
                .iter()
                .map(|word| {
                    let query = ranking::match_query(&tag, "{key value}", word);
                    matching
                        .query_map(params![query, owner, now], WordMatch::from_row)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut entry = tx.prepare_cached("SELECT key, value, updated_at, expires_at FROM memory WHERE id = ?1")?;
            ranking::rank(collection, &matches)
                .into_iter()
                .take(limit)
                .map(|(id, score)| {
                    Ok(MemoryHit {
                        entry: entry.query_row(params![id], row_to_entry)?,
                        score,
                    })
                })
                .collect()
        })
        .boxed()
    }

    fn mem_purge_expired(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM memory WHERE expires_at IS NOT NULL AND expires_at <= ?1")?
                .execute(params![now_ms()])
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Synchronous;

    fn words(query: &str) -> Vec<String> {
        query.split(' ').map(str::to_owned).collect()
    }

    async fn score_of(store: &SqliteStore, owner: &str, query: &str, key: &str) -> f64 {
        let hits = store.mem_search(owner, &words(query), 100).await.unwrap();
        hits.iter()
            .find(|hit| hit.entry.key == key)
            .unwrap_or_else(|| panic!("{key} not found: {hits:?}"))
            .score
    }

    /// The statistics row against a count of the owner's rows, so the triggers are checked.
    async fn stats_agree(store: &SqliteStore, owner: &str) {
        let owner = owner.to_owned();
        let (kept, counted) = store
            .read(move |conn| {
                let kept = Collection::load(
                    conn,
                    "SELECT entries, characters FROM memory_search_stats WHERE owner = ?1",
                    &owner,
                )?;
                let counted = Collection::load(
                    conn,
                    "SELECT count(*), coalesce(sum(length(key) + length(value)), 0) FROM memory WHERE owner = ?1",
                    &owner,
                )?;
                Ok((kept, counted))
            })
            .await
            .unwrap();
        assert_eq!(kept, counted);
    }

    #[tokio::test]
    async fn scores_depend_on_the_owners_entries_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store
            .mem_set("a", "bird", "\"a nightingale sang\"".into(), None)
            .await
            .unwrap();
        store.mem_set("a", "other", "\"a sparrow\"".into(), None).await.unwrap();
        let before = score_of(&store, "a", "nightingale", "bird").await;
        for i in 0..30 {
            let value = format!("\"nightingale nightingale number {i} with a much longer text around it\"");
            store.mem_set("b", &format!("n{i}"), value, None).await.unwrap();
        }
        store
            .mem_set("b", "bird", "\"nightingale\"".into(), None)
            .await
            .unwrap();
        assert_eq!(score_of(&store, "a", "nightingale", "bird").await, before);
        assert_eq!(
            store.mem_search("b", &words("nightingale"), 100).await.unwrap().len(),
            31
        );
        // The caller's own data does move its scores: the statistics are really used.
        store
            .mem_set("a", "again", "\"nightingale again\"".into(), None)
            .await
            .unwrap();
        assert_ne!(score_of(&store, "a", "nightingale", "bird").await, before);
    }

    #[tokio::test]
    async fn statistics_follow_every_write_and_matching_stays_exact() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store
            .mem_set("a", "groceries", "[\"milk\", \"eggs\"]".into(), None)
            .await
            .unwrap();
        store
            .mem_set("a", "gone", "\"milk\"".into(), Some(now_ms() - 1))
            .await
            .unwrap();
        store.mem_set("b", "groceries", "\"milk\"".into(), None).await.unwrap();
        let found = store.mem_search("a", &words("mil"), 10).await.unwrap();
        let keys: Vec<_> = found.iter().map(|hit| hit.entry.key.as_str()).collect();
        assert_eq!(
            keys,
            ["groceries"],
            "prefix match, expired and foreign entries left out"
        );
        stats_agree(&store, "a").await;

        store.mem_set("a", "groceries", "\"bread\"".into(), None).await.unwrap();
        assert!(store.mem_search("a", &words("milk"), 10).await.unwrap().is_empty());
        stats_agree(&store, "a").await;
        assert!(store.mem_delete("a", "groceries").await.unwrap());
        assert_eq!(store.mem_purge_expired().await.unwrap(), 1);
        stats_agree(&store, "a").await;
        stats_agree(&store, "b").await;
        // A query word never matches the owner tag column: "61" is the hex of "a".
        store.mem_set("a", "x", "\"plain\"".into(), None).await.unwrap();
        assert!(store.mem_search("a", &words("61"), 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn more_occurrences_and_more_query_words_rank_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        for (key, value) in [
            ("once", "\"alpha beta gamma delta\""),
            ("twice", "\"alpha alpha gamma delta\""),
            ("both", "\"alpha deadline gamma delta\""),
            ("none", "\"omega\""),
        ] {
            store.mem_set("a", key, value.into(), None).await.unwrap();
        }
        let hits = store.mem_search("a", &words("alpha"), 10).await.unwrap();
        assert_eq!(hits[0].entry.key, "twice");
        let hits = store.mem_search("a", &words("alpha deadline alpha"), 10).await.unwrap();
        let keys: Vec<_> = hits.iter().map(|hit| hit.entry.key.as_str()).collect();
        assert_eq!(keys[0], "both");
        assert_eq!(keys.len(), 3);
        assert_eq!(store.mem_search("a", &words("alpha"), 1).await.unwrap().len(), 1);
    }
}

//! Per-agent key-value memory: values as JSON text, optional expiry, prefix listing.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::{Migration, SqliteStore, StoreError, now_ms};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
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
}];

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
    /// BM25 relevance; higher is better.
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
    /// Full-text search over keys and values; `words` are matched as prefixes, any of them.
    fn mem_search<'a>(
        &'a self,
        owner: &'a str,
        words: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<MemoryHit>, StoreError>>;
}

/// An FTS5 query matching any of `words` as a prefix, each quoted so no word is read as syntax.
pub(super) fn fts_any_prefix(words: &[String]) -> String {
    words
        .iter()
        .map(|word| format!("\"{}\"*", word.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" OR ")
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
        self.write(move |tx| {
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
        let (owner, query) = (owner.to_owned(), fts_any_prefix(words));
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(
                "SELECT m.key, m.value, m.updated_at, m.expires_at, bm25(memory_fts) AS rank
                 FROM memory_fts JOIN memory m ON m.id = memory_fts.rowid
                 WHERE memory_fts MATCH ?1 AND m.owner = ?2 AND (m.expires_at IS NULL OR m.expires_at > ?3)
                 ORDER BY rank LIMIT ?4",
            )?;
            let fetch = i64::try_from(limit).unwrap_or(i64::MAX);
            statement
                .query_map(params![query, owner, now_ms(), fetch], |row| {
                    let rank: f64 = row.get(4)?;
                    Ok(MemoryHit {
                        entry: row_to_entry(row)?,
                        // bm25() is lower-is-better and negative; flip it for callers.
                        score: -rank,
                    })
                })?
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

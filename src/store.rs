//! Persistence behind a small trait. SQLite (WAL, group commit) is the embedded default; a
//! database server can stand behind the same trait when several replicas share state.

mod sqlite;

use futures::future::BoxFuture;

pub use sqlite::{SqliteStore, Synchronous};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open the data directory `{path}`: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the store is shutting down")]
    Closed,
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

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
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

//! Persistence behind a small trait. SQLite (WAL, group commit) is the embedded default; a
//! database server can stand behind the same trait when several replicas share state.

mod approvals;
mod audit;
mod changes;
mod events;
mod files;
mod identity;
mod knowledge;
mod memory;
mod postgres;
mod private;
mod queue;
mod quota;
mod ranking;
mod schedule;
mod secrets;
mod skills;
mod sqlite;
mod traces;
mod workflow;

pub use approvals::*;
pub use audit::*;
pub use changes::{StoreAdmin, StoreChange};
pub use events::*;
pub use files::*;
pub use identity::*;
pub use knowledge::*;
pub use memory::*;
pub use postgres::{DEFAULT_POOL_SIZE, PgStore, is_postgres_url};
pub use private::restrict_new_files;
pub use queue::*;
pub use quota::*;
pub use schedule::*;
pub use secrets::*;
pub use skills::*;
pub use sqlite::{Migration, SqliteStore, StoreLimits, Synchronous};
pub use traces::*;
pub use workflow::*;

/// Everything the primitives persist, one trait per family. Every method takes the owning
/// agent's id: no call can reach another agent's items.
pub trait Store:
    MemoryStore
    + FileStore
    + EventStore
    + QueueStore
    + ScheduleStore
    + WorkflowStore
    + SecretStore
    + KnowledgeStore
    + IdentityStore
    + AuditStore
    + ApprovalStore
    + TraceStore
    + QuotaStore
    + SkillStore
    + StoreAdmin
{
}

impl<T> Store for T where
    T: MemoryStore
        + FileStore
        + EventStore
        + QueueStore
        + ScheduleStore
        + WorkflowStore
        + SecretStore
        + KnowledgeStore
        + IdentityStore
        + AuditStore
        + ApprovalStore
        + TraceStore
        + QuotaStore
        + SkillStore
        + StoreAdmin
{
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The database server cannot be reached (down, refusing, or too slow to connect).
    #[error("the database server cannot be reached: {0}")]
    Unreachable(String),
    /// The store's own settings (the database URL, the pool) cannot be used.
    #[error("{0}")]
    Config(String),
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
    /// A request the store refuses as such (a quota, a limit); the message says what to change.
    #[error("{0}")]
    Refused(String),
    /// Every connection of the named kind is busy and its waiting line is full: the request was
    /// not queued (a queue without bound would only grow). Retry shortly.
    #[error("agentos is busy ({0} are all taken and their queue is full); retry in a moment")]
    Busy(&'static str),
    /// The data directory or database is readable by other users; the message says the fix.
    #[error("{0}")]
    Exposed(String),
}

/// Counts and limits are `usize` in Rust and `i64` in both databases; past `i64::MAX` is as good
/// as no limit.
pub(crate) fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

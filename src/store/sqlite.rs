//! The embedded SQLite store: one writer thread that commits writes in batches (group commit)
//! and a small pool of reader connections. WAL lets `agentos mcp` and `agentos serve` share one
//! data directory at once.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{mpsc, oneshot};

use super::{MemoryEntry, MemoryPage, MemoryStore, StoreError, now_ms};

/// How many writes one transaction may carry; bounds the latency a batch adds.
const MAX_BATCH: usize = 512;
const READERS: usize = 4;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite's `synchronous` setting: `Full` survives power loss, `Normal` survives a process
/// crash (every acknowledged write is still in the WAL) but may lose the last commits on power
/// loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

/// A write runs inside the batch transaction and hands back how to answer its caller once the
/// batch's commit outcome is known.
type WriteJob = Box<dyn FnOnce(&Transaction<'_>) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Result<(), &rusqlite::Error>) + Send>;

pub struct SqliteStore {
    path: PathBuf,
    writes: mpsc::UnboundedSender<WriteJob>,
    readers: Arc<[Mutex<Connection>]>,
}

const MIGRATIONS: &[&str] = &[
    // 1: per-agent key-value memory.
    "CREATE TABLE memory (
        owner TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        expires_at INTEGER,
        PRIMARY KEY (owner, key)
    ) WITHOUT ROWID;",
];

impl SqliteStore {
    /// Opens (creating if needed) `agentos.db` in `data_dir` and brings its schema up to date.
    pub fn open(data_dir: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join("agentos.db");
        let mut writer = open_connection(&path, synchronous)?;
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| open_connection(&path, synchronous).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let (writes, jobs) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("agentos-sqlite-writer".into())
            .spawn(move || write_loop(writer, jobs))
            .map_err(|source| StoreError::DataDir {
                path: data_dir.display().to_string(),
                source,
            })?;
        Ok(Self {
            path,
            writes,
            readers: Arc::from(readers),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `job` inside the writer's next transaction; resolves after that transaction commits.
    async fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Transaction<'_>) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel::<Result<T, StoreError>>();
        let job: WriteJob = Box::new(move |tx| {
            // A savepoint per job: one failing write must not undo the others in its batch.
            let outcome = tx.execute_batch("SAVEPOINT job").and_then(|()| match job(tx) {
                Ok(value) => tx.execute_batch("RELEASE job").map(|()| value),
                Err(error) => {
                    let _ = tx.execute_batch("ROLLBACK TO job; RELEASE job");
                    Err(error)
                }
            });
            Box::new(move |committed: Result<(), &rusqlite::Error>| {
                let answer = match (outcome, committed) {
                    (Ok(value), Ok(())) => Ok(value),
                    (Err(error), _) => Err(StoreError::from(error)),
                    (Ok(_), Err(error)) => Err(StoreError::Sqlite(clone_error(error))),
                };
                let _ = reply.send(answer);
            })
        });
        self.writes.send(job).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `job` on a reader connection off the async threads.
    async fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let conn = readers
                .iter()
                .find_map(|r| r.try_lock().ok())
                .unwrap_or_else(|| readers[0].lock().unwrap_or_else(|p| p.into_inner()));
            job(&conn).map_err(StoreError::from)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

fn open_connection(path: &Path, synchronous: Synchronous) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let version = usize::try_from(version).unwrap_or(usize::MAX);
    if version > MIGRATIONS.len() {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {version}, newer than this agentos understands ({}); upgrade agentos",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(version) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
    }
    tx.commit()?;
    Ok(())
}

fn write_loop(mut conn: Connection, mut jobs: mpsc::UnboundedReceiver<WriteJob>) {
    let mut batch: Vec<WriteJob> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, &mut batch);
    }
}

/// Runs a batch in one transaction. Replies wait for the commit, so nobody hears "ok" for a
/// write that could still be lost.
fn run_batch(conn: &mut Connection, batch: &mut Vec<WriteJob>) {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(error) => {
            tracing::error!(%error, "cannot begin a write transaction");
            for job in batch.drain(..) {
                // Answer with the failure without running the write.
                drop(job);
            }
            return;
        }
    };
    let replies: Vec<Reply> = batch.drain(..).map(|job| job(&tx)).collect();
    let committed = tx.commit();
    if let Err(error) = &committed {
        tracing::error!(%error, "a write batch failed to commit; its writes were not acknowledged");
    }
    for reply in replies {
        reply(committed.as_ref().map(|_| ()));
    }
}

/// rusqlite errors are not `Clone`; a failed commit is reported to every writer in the batch.
fn clone_error(error: &rusqlite::Error) -> rusqlite::Error {
    match error {
        rusqlite::Error::SqliteFailure(code, message) => rusqlite::Error::SqliteFailure(*code, message.clone()),
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_are_scoped_to_their_owner_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SqliteStore::open(dir.path(), Synchronous::Full).unwrap();
            assert!(store.mem_set("a", "k", "1".into(), None).await.unwrap());
            assert!(!store.mem_set("a", "k", "2".into(), None).await.unwrap());
            assert!(store.mem_set("b", "k", "3".into(), None).await.unwrap());
            assert!(!store.mem_delete("b", "missing").await.unwrap());
        }
        let store = SqliteStore::open(dir.path(), Synchronous::Full).unwrap();
        assert_eq!(store.mem_get("a", "k").await.unwrap().unwrap().value, "2");
        assert_eq!(store.mem_get("b", "k").await.unwrap().unwrap().value, "3");
        assert!(store.mem_get("c", "k").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn listing_pages_through_a_prefix_in_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        for key in ["p/3", "p/1", "p/2", "q/1", "p"] {
            store.mem_set("a", key, "null".into(), None).await.unwrap();
        }
        let first = store.mem_list("a", "p/", None, 2).await.unwrap();
        let keys: Vec<_> = first.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["p/1", "p/2"]);
        let second = store.mem_list("a", "p/", first.next_after.as_deref(), 2).await.unwrap();
        let keys: Vec<_> = second.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["p/3"]);
        assert_eq!(second.next_after, None);
    }

    #[tokio::test]
    async fn expired_entries_are_invisible() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store.mem_set("a", "old", "1".into(), Some(now_ms() - 1)).await.unwrap();
        assert!(store.mem_get("a", "old").await.unwrap().is_none());
        assert!(store.mem_list("a", "", None, 10).await.unwrap().entries.is_empty());
        assert!(
            store.mem_set("a", "old", "2".into(), None).await.unwrap(),
            "an expired key counts as new"
        );
    }

    #[tokio::test]
    async fn concurrent_writes_are_batched_and_all_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), Synchronous::Normal).unwrap());
        let writes = (0..200).map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.mem_set("a", &format!("k{i:03}"), i.to_string(), None).await })
        });
        for write in futures::future::join_all(writes).await {
            assert!(write.unwrap().unwrap());
        }
        assert_eq!(store.mem_list("a", "k", None, 500).await.unwrap().entries.len(), 200);
    }
}

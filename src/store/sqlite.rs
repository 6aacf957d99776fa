//! The embedded SQLite store: one writer thread that commits writes in batches (group commit)
//! and a small pool of reader connections. WAL lets `agentos mcp` and `agentos serve` share one
//! data directory at once.
//!
//! Both have bounded waiting lines: writes wait in a queue of `max_pending_writes`, reads wait
//! their turn for a connection (first come, first served) with at most `max_waiting_reads`
//! waiting. Past either, the request is refused at once with [`StoreError::Busy`] instead of
//! queueing without bound, and the caller is told to retry shortly.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, Transaction, params};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{Quotas, StoreError};

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

/// How long the store's waiting lines may grow before it answers "busy".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Writes waiting for the writer thread (beyond the batch it is committing).
    pub max_pending_writes: usize,
    /// Reads waiting for a reader connection (beyond the ones being served).
    pub max_waiting_reads: usize,
    /// What each agent may keep in each family; writes past it are refused.
    pub quotas: Quotas,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_pending_writes: 10_000,
            max_waiting_reads: 1024,
            quotas: Quotas::UNLIMITED,
        }
    }
}

pub struct SqliteStore {
    writes: mpsc::Sender<WriteJob>,
    /// Reader connections, each opened when a read first needs it: one serves while reads come
    /// one at a time, and an idle server holds no memory for the others.
    readers: Arc<[Mutex<Option<Connection>>]>,
    /// How a reader connection is opened.
    opening: Arc<(std::path::PathBuf, Synchronous)>,
    /// One permit per reader connection; tokio's semaphore serves waiters in order.
    reader_turns: Arc<Semaphore>,
    /// Reads holding or waiting for a permit.
    reads_in_line: Arc<AtomicUsize>,
    limits: StoreLimits,
}

impl SqliteStore {
    /// The quotas this store enforces on its writes.
    pub(super) fn quotas(&self) -> Quotas {
        self.limits.quotas
    }
}

/// One named schema change. Applied once, in list order, recorded in `schema_migrations`; a
/// shipped migration is never edited, only followed by a new one.
pub struct Migration {
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every family's migrations. Names are unique across families.
const MIGRATIONS: &[&[Migration]] = &[
    super::memory::MIGRATIONS,
    super::files::MIGRATIONS,
    super::events::MIGRATIONS,
    super::queue::MIGRATIONS,
    super::schedule::MIGRATIONS,
    super::workflow::MIGRATIONS,
    super::secrets::MIGRATIONS,
    super::knowledge::MIGRATIONS,
    super::identity::MIGRATIONS,
    super::audit::MIGRATIONS,
    super::approvals::MIGRATIONS,
    super::traces::MIGRATIONS,
    super::skills::MIGRATIONS,
    // Last: its triggers and counts cover the tables of the families above.
    super::quota::MIGRATIONS,
];

impl SqliteStore {
    /// Opens (creating if needed) `agentos.db` in `data_dir` and brings its schema up to date,
    /// with the default waiting lines.
    pub fn open(data_dir: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        Self::open_with(data_dir, synchronous, StoreLimits::default())
    }

    /// Like [`SqliteStore::open`], with these waiting lines (each at least 1).
    pub fn open_with(data_dir: &Path, synchronous: Synchronous, limits: StoreLimits) -> Result<Self, StoreError> {
        let limits = StoreLimits {
            max_pending_writes: limits.max_pending_writes.max(1),
            max_waiting_reads: limits.max_waiting_reads.max(1),
            quotas: limits.quotas,
        };
        super::private::prepare(data_dir)?;
        let path = data_dir.join("agentos.db");
        let mut writer = open_connection(&path, synchronous)?;
        migrate(&mut writer)?;
        // One reader now, so a database that cannot be read fails the start, not a later read.
        let readers: Vec<_> = (0..READERS)
            .map(|index| {
                (index == 0)
                    .then(|| open_connection(&path, synchronous))
                    .transpose()
                    .map(Mutex::new)
            })
            .collect::<Result<_, _>>()?;
        let (writes, jobs) = mpsc::channel(limits.max_pending_writes);
        std::thread::Builder::new()
            .name("agentos-sqlite-writer".into())
            .spawn(move || write_loop(writer, jobs))
            .map_err(|source| StoreError::DataDir {
                path: data_dir.display().to_string(),
                source,
            })?;
        Ok(Self {
            writes,
            readers: Arc::from(readers),
            opening: Arc::new((path, synchronous)),
            reader_turns: Arc::new(Semaphore::new(READERS)),
            reads_in_line: Arc::new(AtomicUsize::new(0)),
            limits,
        })
    }

    /// Runs `job` inside the writer's next transaction; resolves after that transaction commits.
    pub(crate) async fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Transaction<'_>) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel::<Result<T, StoreError>>();
        let job: WriteJob = Box::new(move |tx| {
            // A savepoint per job: one failing write must not undo the others in its batch.
            // Cached statements: parsing these on every write was a measurable share of its cost.
            let run = |sql: &str| tx.prepare_cached(sql).and_then(|mut statement| statement.execute([]));
            let outcome = run("SAVEPOINT job").and_then(|_| match job(tx) {
                Ok(value) => run("RELEASE job").map(|_| value),
                Err(error) => {
                    let _ = run("ROLLBACK TO job").and_then(|_| run("RELEASE job"));
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
        self.writes.try_send(job).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy("write slots"),
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// A trivial read through the reader pool, for health checks: it touches the database file
    /// (the schema table) without scanning any data.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT count(*) FROM sqlite_schema", [], |_| Ok(())))
            .await
    }

    /// Runs `job` on a reader connection off the async threads.
    pub(crate) async fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _place = InLine::join(&self.reads_in_line, READERS + self.limits.max_waiting_reads)?;
        let turn = self
            .reader_turns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let readers = self.readers.clone();
        let opening = self.opening.clone();
        tokio::task::spawn_blocking(move || {
            // A turn guarantees a free connection: there are as many turns as connections, and
            // a connection is unlocked before its turn is handed back. Opened ones come first.
            let mut slot = readers
                .iter()
                .find_map(|r| r.try_lock().ok().filter(|slot| slot.is_some()))
                .or_else(|| readers.iter().find_map(|r| r.try_lock().ok()))
                .unwrap_or_else(|| readers[0].lock().unwrap_or_else(|p| p.into_inner()));
            if slot.is_none() {
                let (path, synchronous) = &*opening;
                *slot = Some(open_connection(path, *synchronous)?);
            }
            let answer = match &*slot {
                Some(conn) => job(conn).map_err(StoreError::from),
                None => Err(StoreError::Closed),
            };
            drop(slot);
            drop(turn);
            answer
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

/// A place in the line for reader connections, given back when the read is done.
struct InLine<'a>(&'a AtomicUsize);

impl<'a> InLine<'a> {
    fn join(line: &'a AtomicUsize, max: usize) -> Result<Self, StoreError> {
        if line.fetch_add(1, Ordering::AcqRel) >= max {
            line.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Busy("reader connections"));
        }
        Ok(Self(line))
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn open_connection(path: &Path, synchronous: Synchronous) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Every family prepares its statements through this cache; the default 16 would thrash.
    conn.set_prepared_statement_cache_capacity(256);
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
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    for migration in MIGRATIONS.iter().flat_map(|family| family.iter()) {
        let applied = tx
            .prepare_cached("SELECT 1 FROM schema_migrations WHERE name = ?1")?
            .exists(params![migration.name])?;
        if !applied {
            tx.execute_batch(migration.sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
                params![migration.name, super::now_ms()],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn write_loop(mut conn: Connection, mut jobs: mpsc::Receiver<WriteJob>) {
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

impl super::StoreAdmin for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn check(&self) -> futures::future::BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.ping())
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<super::StoreChange>> {
        None
    }

    fn cluster_setting<'a>(
        &'a self,
        _name: &'a str,
        proposed: Vec<u8>,
    ) -> futures::future::BoxFuture<'a, Result<Vec<u8>, StoreError>> {
        Box::pin(std::future::ready(Ok(proposed)))
    }

    fn report_rate_charges(&self, _report: String) -> futures::future::BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, now_ms};

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
    async fn expired_entries_are_purged() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store.mem_set("a", "old", "1".into(), Some(now_ms() - 1)).await.unwrap();
        store.mem_set("a", "new", "1".into(), None).await.unwrap();
        assert_eq!(store.mem_purge_expired().await.unwrap(), 1);
        assert!(store.mem_get("a", "new").await.unwrap().is_some());
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

    fn opened_readers(store: &SqliteStore) -> usize {
        store
            .readers
            .iter()
            .filter(|slot| slot.lock().unwrap_or_else(|p| p.into_inner()).is_some())
            .count()
    }

    /// An idle store holds one reader connection; reads that overlap open more, up to the pool,
    /// and every one of them answers.
    #[tokio::test]
    async fn reader_connections_open_as_concurrent_reads_need_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path(), Synchronous::Normal).unwrap());
        store.mem_set("a", "k", "1".into(), None).await.unwrap();
        for _ in 0..20 {
            assert!(store.mem_get("a", "k").await.unwrap().is_some());
        }
        assert_eq!(opened_readers(&store), 1, "reads one at a time share one connection");

        // READERS reads that each wait for all the others to hold a connection at once.
        let together = Arc::new(std::sync::Barrier::new(READERS));
        let reads = (0..READERS).map(|_| {
            let (store, together) = (store.clone(), together.clone());
            tokio::spawn(async move {
                store
                    .read(move |conn| {
                        together.wait();
                        conn.query_row("SELECT count(*) FROM memory", [], |row| row.get::<_, i64>(0))
                    })
                    .await
            })
        });
        for read in futures::future::join_all(reads).await {
            assert_eq!(read.unwrap().unwrap(), 1);
        }
        assert_eq!(opened_readers(&store), READERS);
    }

    /// A database as the previous release left it: every migration but the privacy ones (per-owner
    /// search statistics, queue ids and event cursors), holding rows of two owners written the
    /// old way. Opening the store must migrate it without losing or renumbering anything.
    #[tokio::test]
    async fn existing_rows_survive_the_privacy_migrations() {
        use crate::store::{EventStore, KnowledgeStore, QueueStore, QuotaStore};
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join("agentos.db")).unwrap();
            conn.execute_batch("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)")
                .unwrap();
            let newer = ["memory_2", "knowledge_2", "queue_2", "events_2", "quota_1"];
            for migration in MIGRATIONS.iter().flat_map(|family| family.iter()) {
                if !newer.contains(&migration.name) {
                    conn.execute_batch(migration.sql).unwrap();
                    conn.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [migration.name])
                        .unwrap();
                }
            }
            conn.execute_batch(
                "INSERT INTO memory (owner, key, value, updated_at) VALUES
                    ('a', 'bird', '\"a nightingale\"', 1), ('b', 'bird', '\"nightingale\"', 1);
                 INSERT INTO knowledge_docs (id, owner, doc_id, metadata, chunks, created_at) VALUES
                    (1, 'a', 'doc', '{}', 1, 1), (2, 'b', 'doc', '{}', 1, 1);
                 INSERT INTO knowledge_chunks (doc, seq, text) VALUES (1, 0, 'old roadmap'), (2, 0, 'roadmap');
                 INSERT INTO queue_items (id, owner, queue, item, enqueued_at, visible_at, attempts, lease) VALUES
                    (1, 'a', 'q', '\"first\"', 1, 9999999999999, 1, '1.0123456789abcdef0123456789abcdef'),
                    (2, 'b', 'q', '\"theirs\"', 1, 1, 0, NULL),
                    (3, 'a', 'q', '\"second\"', 1, 1, 0, NULL);
                 INSERT INTO queues VALUES ('a', 'q', 2), ('b', 'q', 1);
                 INSERT INTO events (seq, owner, topic, payload, published_at) VALUES
                    (5, 'a', 't', '1', 1), (6, 'b', 't', '2', 1), (7, 'a', 't', '3', 1);
                 INSERT INTO event_topics VALUES ('a', 't', 2, 4), ('b', 't', 1, 0);",
            )
            .unwrap();
        }
        // Older versions created the directory with the default umask; make it private as the
        // operator is told to.
        for (path, mode) in [
            (dir.path().to_path_buf(), 0o700),
            (dir.path().join("agentos.db"), 0o600),
        ] {
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        }
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        // What was stored before quotas existed is counted against them from the start.
        for owner in ["a", "b", "c"] {
            let counted = store.quota_usage(owner).await.unwrap();
            let owner_ = owner.to_owned();
            let recounted = store
                .read(move |conn| {
                    Ok(super::super::quota::Family::ALL
                        .iter()
                        .map(|&family| (family, super::super::quota::recount(conn, &owner_, family)))
                        .collect::<Vec<_>>())
                })
                .await
                .unwrap();
            assert_eq!(counted, recounted, "usage of {owner} after the upgrade");
        }
        assert_eq!(store.quota_usage("a").await.unwrap()[0].1.items, 1);
        let nightingale = ["nightingale".to_owned()];
        let found = store.mem_search("a", &nightingale, 10).await.unwrap();
        assert_eq!(found.len(), 1, "old entries are indexed, the owner's only");
        assert_eq!(found[0].entry.value, "\"a nightingale\"");
        let roadmap = ["roadmap".to_owned()];
        let chunks = store.knowledge_search("a", &roadmap, &[], 10).await.unwrap();
        assert_eq!(
            chunks.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
            ["old roadmap"]
        );

        // Items keep their ids, a receipt from before the upgrade still acks, and the owner's
        // numbering continues above its own items.
        assert!(
            store
                .queue_ack("a", "q", "1.0123456789abcdef0123456789abcdef")
                .await
                .unwrap()
        );
        let popped = store.queue_pop("a", "q", 10, 60_000).await.unwrap();
        assert_eq!(popped.iter().map(|p| p.id).collect::<Vec<_>>(), [3]);
        assert_eq!(store.queue_push("a", "q", "4".into(), 0, 10).await.unwrap().id, 4);
        assert_eq!(store.queue_push("c", "q", "1".into(), 0, 10).await.unwrap().id, 1);
        assert_eq!(store.queue_pop("b", "q", 10, 60_000).await.unwrap()[0].id, 2);

        // Cursors resume where they were; the next event follows the topic's last one.
        let page = store.events_poll("a", "t", 5, 10).await.unwrap();
        assert_eq!(page.events.iter().map(|e| e.seq).collect::<Vec<_>>(), [7]);
        assert_eq!(page.trimmed_through, 4);
        assert_eq!(store.events_last_seq("a", "t").await.unwrap(), 7);
        assert_eq!(store.events_publish("a", "t", "4".into(), 100).await.unwrap().seq, 8);
        assert_eq!(store.events_publish("b", "t", "5".into(), 100).await.unwrap().seq, 7);
        assert_eq!(store.events_publish("c", "t", "6".into(), 100).await.unwrap().seq, 1);
    }

    /// A store with waiting lines of two writes and one read.
    fn small_store(dir: &Path) -> Arc<SqliteStore> {
        let limits = StoreLimits {
            max_pending_writes: 2,
            max_waiting_reads: 1,
            quotas: Quotas::UNLIMITED,
        };
        Arc::new(SqliteStore::open_with(dir, Synchronous::Normal, limits).unwrap())
    }

    #[tokio::test]
    async fn a_full_write_queue_answers_busy_and_loses_nothing_it_took() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(dir.path());
        // Hold the writer thread inside a job until told to go on.
        let (started, started_rx) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .write(move |_| {
                        let _ = started.send(());
                        let _ = released.recv();
                        Ok(())
                    })
                    .await
            })
        };
        tokio::task::spawn_blocking(move || started_rx.recv())
            .await
            .unwrap()
            .unwrap();
        let queued: Vec<_> = (0..2)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move { store.mem_set("a", &format!("k{i}"), "1".into(), None).await })
            })
            .collect();
        // Wait until both writes sit in the queue, then a third finds it full.
        while store.writes.capacity() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = store.mem_set("a", "k-extra", "1".into(), None).await.unwrap_err();
        assert!(matches!(refused, StoreError::Busy("write slots")), "{refused}");
        assert!(refused.to_string().contains("retry"), "{refused}");
        release.send(()).unwrap();
        blocker.await.unwrap().unwrap();
        for write in queued {
            assert!(write.await.unwrap().unwrap(), "every accepted write is acknowledged");
        }
        assert!(store.mem_get("a", "k0").await.unwrap().is_some());
        assert!(store.mem_get("a", "k1").await.unwrap().is_some());
        assert!(store.mem_get("a", "k-extra").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn reads_wait_their_turn_in_a_bounded_line() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_store(dir.path());
        let gate = Arc::new(std::sync::Barrier::new(READERS + 1));
        let holders: Vec<_> = (0..READERS)
            .map(|_| {
                let (store, gate) = (store.clone(), gate.clone());
                tokio::spawn(async move {
                    store
                        .read(move |_| {
                            gate.wait();
                            Ok(())
                        })
                        .await
                })
            })
            .collect();
        // Every connection is busy once READERS reads are in line; one more may wait.
        while store.reads_in_line.load(Ordering::Acquire) < READERS {
            tokio::task::yield_now().await;
        }
        let waiting = {
            let store = store.clone();
            tokio::spawn(async move { store.ping().await })
        };
        while store.reads_in_line.load(Ordering::Acquire) < READERS + 1 {
            tokio::task::yield_now().await;
        }
        let refused = store.ping().await.unwrap_err();
        assert!(matches!(refused, StoreError::Busy("reader connections")), "{refused}");
        let gate_release = gate.clone();
        tokio::task::spawn_blocking(move || gate_release.wait()).await.unwrap();
        for holder in holders {
            holder.await.unwrap().unwrap();
        }
        waiting.await.unwrap().unwrap();
        store.ping().await.unwrap();
    }
}

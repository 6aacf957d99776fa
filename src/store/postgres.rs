//! The PostgreSQL store, for replicas that share one database: a pool of connections, the schema
//! kept as SQL files in `migrations/postgres/` and applied once under an advisory lock (replicas
//! starting together apply each file once), and per-owner write transactions.
//!
//! Writes to one owner's items run one at a time (each write transaction first takes a
//! transaction-scoped advisory lock on the owner), which is what the SQLite store's single writer
//! gives: a quota check and the write it guards, or a read-then-write, cannot interleave with
//! another replica's write for the same owner. Writes of different owners run in parallel.
//! Work that spans owners (firing schedules, leasing queue items, deciding approvals) takes row
//! locks (`FOR UPDATE SKIP LOCKED`) instead. Memory writes, the busiest, commit in groups
//! (`memory/batch.rs`): one statement takes each owner's lock in turn and writes them all.
//!
//! A write is acknowledged after PostgreSQL commits it, which with the server's default
//! `synchronous_commit = on` means after its WAL is flushed: a replica dying afterwards loses
//! nothing.

mod approvals;
mod audit;
mod events;
mod files;
mod identity;
mod knowledge;
mod listen;
mod memory;
mod migrations;
mod queue;
mod quota;
mod schedule;
mod secrets;
mod skills;
mod tls;
mod traces;
mod workflow;

use std::time::Duration;

use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use futures::future::BoxFuture;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Quotas, StoreAdmin, StoreChange, StoreError, StoreLimits};

/// Connections each replica keeps open at most. PostgreSQL's `max_connections` (100 by
/// default) must cover every replica's pool: size it as replicas × this.
pub const DEFAULT_POOL_SIZE: usize = 32;
/// How long a call waits for a free connection before it is answered "busy".
const POOL_WAIT: Duration = Duration::from_secs(10);
/// How long opening a connection may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PgStore {
    pool: Pool,
    limits: StoreLimits,
    memory_writes: memory::MemoryWrites,
    changes: broadcast::Sender<StoreChange>,
    /// Stops the change feed when the store goes.
    _feed: DropGuard,
}

/// What `--database-url` may name: the embedded SQLite file (the default) or a PostgreSQL server.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl PgStore {
    /// Connects to the server `url` names (`postgres://user:password@host:port/database`), checks
    /// that it answers, and brings the schema up to date.
    pub async fn connect(url: &str, pool_size: usize, limits: StoreLimits) -> Result<Self, StoreError> {
        let tls::Target { mut config, tls } = tls::target(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("agentos");
        if config.get_options().is_none() {
            // PostgreSQL's notices ("relation ... already exists, skipping") are not news here.
            config.options("-c client_min_messages=warning");
        }
        let stop = CancellationToken::new();
        let changes = listen::start(config.clone(), tls.clone(), stop.clone());
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let uses_tls = tls.is_some();
        let manager = match tls {
            Some(tls) => Manager::from_config(config, tls, manager_config),
            None => Manager::from_config(config, NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| StoreError::Config(format!("cannot set up the database pool: {error}")))?;
        let store = Self {
            memory_writes: memory::MemoryWrites::start(pool.clone(), limits.quotas.memory),
            pool,
            limits,
            changes,
            _feed: stop.drop_guard(),
        };
        let mut client = store.client().await.map_err(|error| match error {
            StoreError::Postgres(error) if uses_tls => StoreError::Unreachable(format!(
                "{} (the URL asks for TLS: the server must offer it, and its certificate must be \
                 issued for the URL's host by a CA in sslrootcert or the system's trusted roots)",
                crate::error_chain::error_chain(&error)
            )),
            other => other,
        })?;
        migrations::apply(&mut client).await?;
        Ok(store)
    }

    /// The quotas this store enforces on its writes.
    pub(super) fn quotas(&self) -> Quotas {
        self.limits.quotas
    }

    /// A connection from the pool; "busy" when every one stays taken for [`POOL_WAIT`].
    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        client_from(&self.pool).await
    }

    /// A trivial query, for health checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// How many connections the pool holds and how many of them are idle.
    pub fn pool_status(&self) -> (usize, usize) {
        let status = self.pool.status();
        (status.size, status.available)
    }
}

impl StoreAdmin for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(self.ping())
    }

    fn changes(&self) -> Option<broadcast::Receiver<StoreChange>> {
        Some(self.changes.subscribe())
    }

    fn cluster_setting<'a>(&'a self, name: &'a str, proposed: Vec<u8>) -> BoxFuture<'a, Result<Vec<u8>, StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            // Insert-or-keep and read back in one statement. When another replica inserts the
            // same name at the same moment, this statement waits for it and inserts nothing,
            // but its snapshot predates that row: the next attempt sees it.
            for _ in 0..3 {
                let row = client
                    .query_opt(
                        "WITH inserted AS (
                            INSERT INTO cluster_settings (name, value, recorded_at) VALUES ($1, $2, $3)
                            ON CONFLICT (name) DO NOTHING RETURNING value
                        )
                        SELECT value FROM inserted UNION ALL SELECT value FROM cluster_settings WHERE name = $1
                        LIMIT 1",
                        &[&name, &proposed, &super::now_ms()],
                    )
                    .await?;
                if let Some(row) = row {
                    return Ok(row.get(0));
                }
            }
            Err(StoreError::Corrupt(format!(
                "the cluster setting `{name}` could not be recorded or read"
            )))
        })
    }

    fn report_rate_charges(&self, report: String) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let notify = client.prepare_cached("SELECT pg_notify($1, $2)").await?;
            client.execute(&notify, &[&listen::RATES, &report]).await?;
            Ok(())
        })
    }
}

/// A connection from `pool`; "busy" when every one stays taken for [`POOL_WAIT`].
async fn client_from(pool: &Pool) -> Result<Object, StoreError> {
    pool.get().await.map_err(|error| match error {
        deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            StoreError::Busy("database connections")
        }
        deadpool_postgres::PoolError::Backend(error) => StoreError::Postgres(error),
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        other => StoreError::Unreachable(other.to_string()),
    })
}

/// Begins a write transaction that holds `owner`'s write lock until it commits or rolls back,
/// so writes to one owner's items never interleave, on this replica or any other.
pub(crate) async fn owner_tx<'c>(client: &'c mut Object, owner: &str) -> Result<Transaction<'c>, StoreError> {
    let tx = client.transaction().await?;
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .await?;
    tx.execute(&lock, &[&owner]).await?;
    Ok(tx)
}

pub(crate) use super::to_i64;

#[cfg(test)]
pub(crate) mod testing {
    //! A fresh database per test on the server `AGENTOS_TEST_DATABASE_URL` names (scripts/test
    //! starts one). Without it the PostgreSQL unit tests have nothing to run against and say so.

    use super::*;

    /// A new, empty database with the schema applied, or `None` (with a line on stderr) when no
    /// test server is configured.
    pub async fn store() -> Option<PgStore> {
        store_with(StoreLimits::default()).await
    }

    pub async fn store_with(limits: StoreLimits) -> Option<PgStore> {
        let url = fresh_database().await?;
        Some(
            PgStore::connect(&url, 8, limits)
                .await
                .expect("connect to the test database"),
        )
    }

    /// Creates a database with a unique name and returns its URL.
    pub async fn fresh_database() -> Option<String> {
        let Ok(server) = std::env::var("AGENTOS_TEST_DATABASE_URL") else {
            eprintln!("AGENTOS_TEST_DATABASE_URL is not set: skipping a PostgreSQL test (scripts/test sets it)");
            return None;
        };
        let name = format!("agentos_unit_{}", uuid::Uuid::new_v4().simple());
        let (client, connection) = tokio_postgres::connect(&server, NoTls)
            .await
            .expect("reach the test server");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create a test database");
        Some(with_database(&server, &name))
    }

    /// `url` with its database replaced by `name`.
    pub fn with_database(url: &str, name: &str) -> String {
        let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
        let after_scheme = base.find("://").map_or(0, |i| i + 3);
        let cut = base[after_scheme..].find('/').map_or(base.len(), |i| after_scheme + i);
        let mut out = format!("{}/{name}", &base[..cut]);
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    }
}

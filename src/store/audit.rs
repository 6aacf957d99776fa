//! The audit trail of tool calls and per-agent activity counters.
//!
//! Records arrive in batches (see `primitives::audit`): one write appends a batch and bumps the
//! counters of the agents in it, in one transaction, so the counters always match the trail.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, ToSql, params, params_from_iter};

use super::{Migration, SqliteStore, StoreError};

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "audit_1",
        // AUTOINCREMENT: a purged sequence number is never reused, so a page cursor stays valid.
        sql: "CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        time_ms INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        account_id TEXT,
        tool TEXT NOT NULL,
        origin TEXT,
        input_digest TEXT NOT NULL,
        outcome TEXT NOT NULL,
        latency_us INTEGER NOT NULL,
        error TEXT
    );
    CREATE INDEX audit_log_agent ON audit_log (agent_id, seq);
    CREATE INDEX audit_log_account ON audit_log (account_id, seq) WHERE account_id IS NOT NULL;
    CREATE INDEX audit_log_time ON audit_log (time_ms);
    CREATE TABLE agent_activity (
        agent_id TEXT PRIMARY KEY,
        total_calls INTEGER NOT NULL,
        last_active_at INTEGER NOT NULL
    ) WITHOUT ROWID;",
    },
    Migration {
        name: "audit_2",
        // The skill a call was made through (`<slug>@<version>`), for host calls of skills.
        sql: "ALTER TABLE audit_log ADD COLUMN skill TEXT;",
    },
];

/// One audit record as stored. The names a record shares with the call that made it are kept
/// shared (`Arc<str>`), so queueing and writing a record copies none of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Position in the trail; assigned by the store (ignored on append).
    pub seq: i64,
    pub time_ms: i64,
    pub request_id: Arc<str>,
    pub agent_id: Arc<str>,
    pub account_id: Option<Arc<str>>,
    pub tool: Arc<str>,
    pub origin: Option<Cow<'static, str>>,
    pub input_digest: String,
    pub outcome: Cow<'static, str>,
    pub latency_us: i64,
    pub error: Option<String>,
    /// The skill the call was made through (`<slug>@<version>`), for a skill's host calls.
    pub skill: Option<Arc<str>>,
}

impl AuditEntry {
    /// The values of one row of [`insert_sql`], in its column order.
    fn row(&self) -> [&dyn ToSql; 11] {
        [
            &self.time_ms,
            &self.request_id,
            &self.agent_id,
            &self.account_id,
            &self.tool,
            &self.origin,
            &self.input_digest,
            &self.outcome,
            &self.latency_us,
            &self.error,
            &self.skill,
        ]
    }
}

/// Records per `INSERT` statement: a statement's fixed cost (opening its cursors, reading and
/// writing back the AUTOINCREMENT counter, ending) is paid once for this many records rather than
/// for each. 32 rows bind 352 values, far below SQLite's limit.
const ROWS_PER_INSERT: usize = 32;

/// An `INSERT` of `rows` audit records.
fn insert_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO audit_log (time_ms, request_id, agent_id, account_id, tool, origin, input_digest,
            outcome, latency_us, error, skill) VALUES ",
    );
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push_str("(?,?,?,?,?,?,?,?,?,?,?)");
    }
    sql
}

static INSERT_ONE: LazyLock<String> = LazyLock::new(|| insert_sql(1));
static INSERT_MANY: LazyLock<String> = LazyLock::new(|| insert_sql(ROWS_PER_INSERT));

/// Whose records (or approvals) a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visibility {
    /// An ops-admin: everyone's.
    All,
    /// An agent: its own.
    Agent(String),
    /// An operator: its own and those of its account's agents.
    Account { agent_id: String, account_id: String },
}

impl Visibility {
    /// The SQL condition (over `agent_id` and `account_id` columns) and its parameters.
    pub(super) fn condition(&self) -> (&'static str, Vec<SqlValue>) {
        match self {
            Visibility::All => ("1", Vec::new()),
            Visibility::Agent(agent) => ("agent_id = ?", vec![SqlValue::Text(agent.clone())]),
            Visibility::Account { agent_id, account_id } => (
                "(agent_id = ? OR account_id = ?)",
                vec![SqlValue::Text(agent_id.clone()), SqlValue::Text(account_id.clone())],
            ),
        }
    }
}

/// The `WHERE` clause of a newest-first listing (audit records, traces), built condition by
/// condition with its bound values; every listing starts from what the reader may see.
pub(super) struct Listing {
    sql: String,
    values: Vec<SqlValue>,
}

impl Listing {
    pub(super) fn new(columns: &str, table: &str, visibility: &Visibility) -> Self {
        let (visible, values) = visibility.condition();
        Self {
            sql: format!("SELECT {columns} FROM {table} WHERE {visible}"),
            values,
        }
    }

    pub(super) fn and(&mut self, clause: &str, bound: SqlValue) {
        self.sql.push_str(" AND ");
        self.sql.push_str(clause);
        self.values.push(bound);
    }

    pub(super) fn and_opt_text(&mut self, clause: &str, value: Option<&String>) {
        if let Some(value) = value {
            self.and(clause, SqlValue::Text(value.clone()));
        }
    }

    pub(super) fn and_opt_int(&mut self, clause: &str, value: Option<i64>) {
        if let Some(value) = value {
            self.and(clause, SqlValue::Integer(value));
        }
    }

    /// An exact tool name, or a prefix when `prefix` is set.
    pub(super) fn tool(&mut self, tool: Option<&String>, prefix: bool) {
        match (tool, prefix) {
            // substr rather than LIKE: tool names contain `_`, a LIKE wildcard.
            (Some(start), true) => {
                let length = i64::try_from(start.chars().count()).unwrap_or(i64::MAX);
                self.sql.push_str(" AND substr(tool, 1, ?) = ?");
                self.values.push(SqlValue::Integer(length));
                self.values.push(SqlValue::Text(start.clone()));
            }
            (Some(tool), false) => self.and("tool = ?", SqlValue::Text(tool.clone())),
            (None, _) => {}
        }
    }

    /// The statement, newest first, at most `limit` rows, and its values.
    pub(super) fn finish(mut self, limit: usize) -> (String, Vec<SqlValue>) {
        self.sql.push_str(" ORDER BY seq DESC LIMIT ?");
        self.values
            .push(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        (self.sql, self.values)
    }
}

/// Which records to read, newest first.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    pub visibility: Visibility,
    pub agent_id: Option<String>,
    /// An exact tool name, or a prefix when `tool_prefix` is set.
    pub tool: Option<String>,
    pub tool_prefix: bool,
    pub outcome: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only records older than this position (the previous page's cursor).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

pub trait AuditStore: Send + Sync {
    /// Appends a batch and updates the activity counters, in one transaction.
    fn audit_append(&self, entries: Vec<AuditEntry>) -> BoxFuture<'_, Result<usize, StoreError>>;
    fn audit_query<'a>(&'a self, filter: &'a AuditFilter) -> BoxFuture<'a, Result<Vec<AuditEntry>, StoreError>>;
    /// Deletes records that started before `before_ms`; returns how many.
    fn audit_purge(&self, before_ms: i64) -> BoxFuture<'_, Result<usize, StoreError>>;
    /// An agent's total calls and the time (ms) of its latest one.
    fn activity<'a>(&'a self, agent_id: &'a str) -> BoxFuture<'a, Result<(u64, Option<i64>), StoreError>>;
}

const COLUMNS: &str =
    "seq, time_ms, request_id, agent_id, account_id, tool, origin, input_digest, outcome, latency_us, error, skill";

impl AuditStore for SqliteStore {
    fn audit_append(&self, entries: Vec<AuditEntry>) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(move |tx| {
            let mut many = tx.prepare_cached(&INSERT_MANY)?;
            let mut chunks = entries.chunks_exact(ROWS_PER_INSERT);
            for chunk in &mut chunks {
                many.execute(params_from_iter(chunk.iter().flat_map(AuditEntry::row)))?;
            }
            let mut one = tx.prepare_cached(&INSERT_ONE)?;
            for entry in chunks.remainder() {
                one.execute(params_from_iter(entry.row()))?;
            }
            let mut activity: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
            for entry in &entries {
                let counter = activity.entry(&entry.agent_id).or_insert((0, entry.time_ms));
                counter.0 += 1;
                counter.1 = counter.1.max(entry.time_ms);
            }
            let mut bump = tx.prepare_cached(
                "INSERT INTO agent_activity (agent_id, total_calls, last_active_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (agent_id) DO UPDATE SET total_calls = total_calls + excluded.total_calls,
                    last_active_at = max(last_active_at, excluded.last_active_at)",
            )?;
            for (agent, (calls, last)) in activity {
                bump.execute(params![agent, calls, last])?;
            }
            Ok(entries.len())
        })
        .boxed()
    }

    fn audit_query<'a>(&'a self, filter: &'a AuditFilter) -> BoxFuture<'a, Result<Vec<AuditEntry>, StoreError>> {
        let mut listing = Listing::new(COLUMNS, "audit_log", &filter.visibility);
        listing.and_opt_text("agent_id = ?", filter.agent_id.as_ref());
        listing.tool(filter.tool.as_ref(), filter.tool_prefix);
        listing.and_opt_text("outcome = ?", filter.outcome.as_ref());
        listing.and_opt_int("time_ms >= ?", filter.since_ms);
        listing.and_opt_int("time_ms <= ?", filter.until_ms);
        listing.and_opt_int("seq < ?", filter.before_seq);
        let (sql, values) = listing.finish(filter.limit);
        self.read(move |conn| {
            conn.prepare_cached(&sql)?
                .query_map(params_from_iter(values), |row| {
                    Ok(AuditEntry {
                        seq: row.get(0)?,
                        time_ms: row.get(1)?,
                        request_id: row.get(2)?,
                        agent_id: row.get(3)?,
                        account_id: row.get(4)?,
                        tool: row.get(5)?,
                        origin: row.get::<_, Option<String>>(6)?.map(Cow::Owned),
                        input_digest: row.get(7)?,
                        outcome: Cow::Owned(row.get(8)?),
                        latency_us: row.get(9)?,
                        error: row.get(10)?,
                        skill: row.get(11)?,
                    })
                })?
                .collect()
        })
        .boxed()
    }

    fn audit_purge(&self, before_ms: i64) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM audit_log WHERE time_ms < ?1")?
                .execute(params![before_ms])
        })
        .boxed()
    }

    fn activity<'a>(&'a self, agent_id: &'a str) -> BoxFuture<'a, Result<(u64, Option<i64>), StoreError>> {
        let agent = agent_id.to_owned();
        self.read(move |conn| {
            let row: Option<(i64, i64)> = conn
                .prepare_cached("SELECT total_calls, last_active_at FROM agent_activity WHERE agent_id = ?1")?
                .query_row(params![agent], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            Ok(match row {
                Some((calls, last)) => (u64::try_from(calls).unwrap_or(0), Some(last)),
                None => (0, None),
            })
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Synchronous;

    fn entry(agent: &str, account: Option<&str>, tool: &str, outcome: &str, time_ms: i64) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time_ms,
            request_id: "r".into(),
            agent_id: agent.into(),
            account_id: account.map(Arc::from),
            tool: tool.into(),
            origin: Some("primitive".into()),
            input_digest: "d".into(),
            outcome: Cow::Owned(outcome.into()),
            latency_us: 5,
            error: None,
            skill: None,
        }
    }

    fn filter(visibility: Visibility) -> AuditFilter {
        AuditFilter {
            visibility,
            agent_id: None,
            tool: None,
            tool_prefix: false,
            outcome: None,
            since_ms: None,
            until_ms: None,
            before_seq: None,
            limit: 50,
        }
    }

    #[tokio::test]
    async fn batches_append_count_activity_and_read_back_by_visibility() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store
            .audit_append(vec![
                entry("a", Some("acct"), "agentos.mem_set", "ok", 10),
                entry("b", Some("acct"), "agentos.mem_get", "error", 20),
                entry("c", None, "mcp.x_y.echo", "ok", 30),
                entry("a", Some("acct"), "agentos.time_now", "ok", 40),
            ])
            .await
            .unwrap();
        assert_eq!(store.activity("a").await.unwrap(), (2, Some(40)));
        assert_eq!(store.activity("nobody").await.unwrap(), (0, None));
        store
            .audit_append(vec![entry("a", Some("acct"), "x", "ok", 35)])
            .await
            .unwrap();
        assert_eq!(
            store.activity("a").await.unwrap(),
            (3, Some(40)),
            "the latest time stays"
        );

        let all = store.audit_query(&filter(Visibility::All)).await.unwrap();
        assert_eq!(all.len(), 5);
        assert!(all.windows(2).all(|w| w[0].seq > w[1].seq), "newest first");
        let own = store.audit_query(&filter(Visibility::Agent("b".into()))).await.unwrap();
        assert_eq!(own.len(), 1);
        let account = Visibility::Account {
            agent_id: "op".into(),
            account_id: "acct".into(),
        };
        assert_eq!(store.audit_query(&filter(account)).await.unwrap().len(), 4);

        let mut prefix = filter(Visibility::All);
        prefix.tool = Some("agentos.mem_".into());
        prefix.tool_prefix = true;
        assert_eq!(store.audit_query(&prefix).await.unwrap().len(), 2);
        let mut underscore = filter(Visibility::All);
        underscore.tool = Some("mcp.x_".into());
        underscore.tool_prefix = true;
        assert_eq!(
            store.audit_query(&underscore).await.unwrap().len(),
            1,
            "`_` is no wildcard"
        );

        let mut page = filter(Visibility::All);
        page.limit = 2;
        let first = store.audit_query(&page).await.unwrap();
        page.before_seq = first.last().map(|e| e.seq);
        let second = store.audit_query(&page).await.unwrap();
        assert_eq!(second.len(), 2);
        assert!(second[0].seq < first[1].seq);

        let mut window = filter(Visibility::All);
        window.since_ms = Some(20);
        window.until_ms = Some(35);
        window.outcome = Some("ok".into());
        assert_eq!(window_tools(&store, &window).await, ["x", "mcp.x_y.echo"]);

        assert_eq!(store.audit_purge(25).await.unwrap(), 2);
        assert_eq!(store.audit_query(&filter(Visibility::All)).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn large_batches_are_written_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        // Two full multi-row statements and a remainder written row by row.
        let count = 2 * ROWS_PER_INSERT + 6;
        let batch: Vec<AuditEntry> = (0..count)
            .map(|n| {
                let mut e = entry(
                    if n % 2 == 0 { "even" } else { "odd" },
                    None,
                    &format!("t{n}"),
                    "ok",
                    n as i64,
                );
                e.error = (n % 3 == 0).then(|| format!("e{n}"));
                e.skill = (n % 5 == 0).then(|| Arc::from(format!("s{n}@1").as_str()));
                e
            })
            .collect();
        assert_eq!(store.audit_append(batch.clone()).await.unwrap(), count);
        let mut all = filter(Visibility::All);
        all.limit = 500;
        let mut stored = store.audit_query(&all).await.unwrap();
        stored.reverse();
        assert_eq!(stored.len(), count);
        for (written, read) in batch.iter().zip(&stored) {
            assert_eq!(
                AuditEntry {
                    seq: read.seq,
                    ..written.clone()
                },
                *read
            );
        }
        assert!(stored.windows(2).all(|w| w[0].seq + 1 == w[1].seq), "appended in order");
        assert_eq!(store.activity("even").await.unwrap(), (35, Some(68)));
        assert_eq!(store.activity("odd").await.unwrap(), (35, Some(69)));
    }

    async fn window_tools(store: &SqliteStore, filter: &AuditFilter) -> Vec<String> {
        store
            .audit_query(filter)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.tool.to_string())
            .collect()
    }
}

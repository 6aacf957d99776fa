//! The audit trail and per-agent activity counters on PostgreSQL, one trail for every replica;
//! also the newest-first listing (visibility, filters, `seq` cursor) that traces share.
//!
//! Cursors are `seq` positions, as on SQLite, where `seq` order is write order. An identity
//! column alone would not give that here: concurrent appenders draw numbers in one order and
//! commit in another, so a reader paging with `seq < cursor` could miss a record that commits
//! after it read a page that already showed higher numbers. So every append first takes one
//! transaction-scoped lock for the trail ([`APPEND_LOCK`]), held until it commits: numbers are
//! drawn in commit order, and whenever a reader sees `seq = s`, every record below `s` that will
//! ever exist is already visible. Appends are batched (one statement per batch), so the lock is
//! held for one insert and one commit at a time; replicas' batches queue for it.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use deadpool_postgres::GenericClient;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_postgres::types::ToSql;

use super::{PgStore, to_i64};
use crate::store::{AuditEntry, AuditFilter, AuditStore, StoreError, Visibility};

/// The lock appends to the trail take (a two-key advisory lock: its key space is apart from the
/// one-key locks `owner_tx` and migrations take, so no owner's lock can collide with it).
/// Keys: "agen" in ASCII, then 1 for the audit trail (traces use 2).
pub(super) const LOCK_CLASS: i32 = 0x6167_656e;
const APPEND_LOCK: i32 = 1;

/// A bound value of a listing.
type Bound = Box<dyn ToSql + Sync + Send>;

/// The statement of a newest-first listing (audit records, traces), built condition by
/// condition with its bound values; every listing starts from what the reader may see.
pub(super) struct Listing {
    sql: String,
    values: Vec<Bound>,
}

impl Listing {
    pub(super) fn new(columns: &str, table: &str, visibility: &Visibility) -> Self {
        let mut listing = Self {
            sql: format!("SELECT {columns} FROM {table} WHERE "),
            values: Vec::new(),
        };
        let visible = match visibility {
            Visibility::All => "TRUE".to_owned(),
            Visibility::Agent(agent) => format!("agent_id = {}", listing.bind(agent.clone())),
            Visibility::Account { agent_id, account_id } => {
                let agent = listing.bind(agent_id.clone());
                let account = listing.bind(account_id.clone());
                format!("(agent_id = {agent} OR account_id = {account})")
            }
        };
        listing.sql.push_str(&visible);
        listing
    }

    /// Binds `value` and answers its placeholder (`$n`).
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    /// Adds `clause`, whose `?` is `value`'s placeholder.
    pub(super) fn and(&mut self, clause: &str, value: impl ToSql + Sync + Send + 'static) {
        let placeholder = self.bind(value);
        self.sql.push_str(" AND ");
        self.sql.push_str(&clause.replace('?', &placeholder));
    }

    pub(super) fn and_opt_text(&mut self, clause: &str, value: Option<&String>) {
        if let Some(value) = value {
            self.and(clause, value.clone());
        }
    }

    pub(super) fn and_opt_int(&mut self, clause: &str, value: Option<i64>) {
        if let Some(value) = value {
            self.and(clause, value);
        }
    }

    /// An exact tool name, or a prefix when `prefix` is set (`starts_with`, not LIKE: tool names
    /// contain `_`, a LIKE wildcard).
    pub(super) fn tool(&mut self, tool: Option<&String>, prefix: bool) {
        match (tool, prefix) {
            (Some(start), true) => self.and("starts_with(tool, ?)", start.clone()),
            (Some(tool), false) => self.and("tool = ?", tool.clone()),
            (None, _) => {}
        }
    }

    /// Runs the listing, newest first, at most `limit` rows.
    pub(super) async fn run(
        mut self,
        client: &impl GenericClient,
        limit: usize,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let limit = self.bind(to_i64(limit));
        self.sql.push_str(&format!(" ORDER BY seq DESC LIMIT {limit}"));
        let statement = client.prepare_cached(&self.sql).await?;
        let values: Vec<&(dyn ToSql + Sync)> = self.values.iter().map(|v| v.as_ref() as _).collect();
        Ok(client.query(&statement, &values).await?)
    }
}

/// Takes the append lock `key` of [`LOCK_CLASS`] until the transaction ends.
pub(super) async fn lock_appends(tx: &deadpool_postgres::Transaction<'_>, key: i32) -> Result<(), StoreError> {
    let lock = tx.prepare_cached("SELECT pg_advisory_xact_lock($1, $2)").await?;
    tx.execute(&lock, &[&LOCK_CLASS, &key]).await?;
    Ok(())
}

/// One statement appends a whole batch, in order: each column travels as one array and
/// `WITH ORDINALITY ... ORDER BY` keeps the batch's order, so its `seq`s follow it.
const INSERT: &str = "INSERT INTO audit_log (time_ms, request_id, agent_id, account_id, tool, origin, input_digest,
        outcome, latency_us, error, skill)
    SELECT time_ms, request_id, agent_id, account_id, tool, origin, input_digest, outcome, latency_us, error, skill
    FROM unnest($1::BIGINT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[],
        $9::BIGINT[], $10::TEXT[], $11::TEXT[])
        WITH ORDINALITY AS batch (time_ms, request_id, agent_id, account_id, tool, origin, input_digest, outcome,
            latency_us, error, skill, position)
    ORDER BY position";

const COLUMNS: &str =
    "seq, time_ms, request_id, agent_id, account_id, tool, origin, input_digest, outcome, latency_us, error, skill";

fn entry_of(row: &tokio_postgres::Row) -> AuditEntry {
    AuditEntry {
        seq: row.get(0),
        time_ms: row.get(1),
        request_id: Arc::from(row.get::<_, &str>(2)),
        agent_id: Arc::from(row.get::<_, &str>(3)),
        account_id: row.get::<_, Option<&str>>(4).map(Arc::from),
        tool: Arc::from(row.get::<_, &str>(5)),
        origin: row.get::<_, Option<String>>(6).map(Cow::Owned),
        input_digest: row.get(7),
        outcome: Cow::Owned(row.get(8)),
        latency_us: row.get(9),
        error: row.get(10),
        skill: row.get::<_, Option<&str>>(11).map(Arc::from),
    }
}

impl AuditStore for PgStore {
    fn audit_append(&self, entries: Vec<AuditEntry>) -> BoxFuture<'_, Result<usize, StoreError>> {
        async move {
            if entries.is_empty() {
                return Ok(0);
            }
            let column = |get: fn(&AuditEntry) -> &str| entries.iter().map(get).collect::<Vec<&str>>();
            let optional =
                |get: fn(&AuditEntry) -> Option<&str>| entries.iter().map(get).collect::<Vec<Option<&str>>>();
            let times: Vec<i64> = entries.iter().map(|e| e.time_ms).collect();
            let latencies: Vec<i64> = entries.iter().map(|e| e.latency_us).collect();
            let (requests, agents, tools) = (column(|e| &e.request_id), column(|e| &e.agent_id), column(|e| &e.tool));
            let (digests, outcomes) = (column(|e| &e.input_digest), column(|e| &e.outcome));
            let accounts = optional(|e| e.account_id.as_deref());
            let origins = optional(|e| e.origin.as_deref());
            let errors = optional(|e| e.error.as_deref());
            let skills = optional(|e| e.skill.as_deref());

            // Each agent's calls and latest time, bumped in agent order (a fixed lock order).
            let mut activity: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
            for entry in &entries {
                let counter = activity.entry(&entry.agent_id).or_insert((0, entry.time_ms));
                counter.0 += 1;
                counter.1 = counter.1.max(entry.time_ms);
            }

            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_appends(&tx, APPEND_LOCK).await?;
            let insert = tx.prepare_cached(INSERT).await?;
            tx.execute(
                &insert,
                &[
                    &times, &requests, &agents, &accounts, &tools, &origins, &digests, &outcomes, &latencies, &errors,
                    &skills,
                ],
            )
            .await?;
            let bump = tx
                .prepare_cached(
                    "INSERT INTO agent_activity (agent_id, total_calls, last_active_at) VALUES ($1, $2, $3)
                     ON CONFLICT (agent_id) DO UPDATE SET total_calls = agent_activity.total_calls + excluded.total_calls,
                        last_active_at = greatest(agent_activity.last_active_at, excluded.last_active_at)",
                )
                .await?;
            for (agent, (calls, last)) in activity {
                tx.execute(&bump, &[&agent, &calls, &last]).await?;
            }
            tx.commit().await?;
            Ok(entries.len())
        }
        .boxed()
    }

    fn audit_query<'a>(&'a self, filter: &'a AuditFilter) -> BoxFuture<'a, Result<Vec<AuditEntry>, StoreError>> {
        async move {
            let mut listing = Listing::new(COLUMNS, "audit_log", &filter.visibility);
            listing.and_opt_text("agent_id = ?", filter.agent_id.as_ref());
            listing.tool(filter.tool.as_ref(), filter.tool_prefix);
            listing.and_opt_text("outcome = ?", filter.outcome.as_ref());
            listing.and_opt_int("time_ms >= ?", filter.since_ms);
            listing.and_opt_int("time_ms <= ?", filter.until_ms);
            listing.and_opt_int("seq < ?", filter.before_seq);
            let client = self.client().await?;
            let rows = listing.run(&client, filter.limit).await?;
            Ok(rows.iter().map(entry_of).collect())
        }
        .boxed()
    }

    fn audit_purge(&self, before_ms: i64) -> BoxFuture<'_, Result<usize, StoreError>> {
        async move {
            let client = self.client().await?;
            let purge = client
                .prepare_cached("DELETE FROM audit_log WHERE time_ms < $1")
                .await?;
            let purged = client.execute(&purge, &[&before_ms]).await?;
            Ok(usize::try_from(purged).unwrap_or(usize::MAX))
        }
        .boxed()
    }

    fn activity<'a>(&'a self, agent_id: &'a str) -> BoxFuture<'a, Result<(u64, Option<i64>), StoreError>> {
        async move {
            let client = self.client().await?;
            let read = client
                .prepare_cached("SELECT total_calls, last_active_at FROM agent_activity WHERE agent_id = $1")
                .await?;
            Ok(match client.query_opt(&read, &[&agent_id]).await? {
                Some(row) => (u64::try_from(row.get::<_, i64>(0)).unwrap_or(0), Some(row.get(1))),
                None => (0, None),
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreLimits;
    use crate::store::postgres::testing;

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

    async fn window_tools(store: &PgStore, filter: &AuditFilter) -> Vec<String> {
        store
            .audit_query(filter)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.tool.to_string())
            .collect()
    }

    #[tokio::test]
    async fn batches_append_count_activity_and_read_back_by_visibility() {
        let Some(store) = testing::store().await else { return };
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
        assert_eq!(store.audit_append(Vec::new()).await.unwrap(), 0);

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
        let mut agent = filter(Visibility::All);
        agent.agent_id = Some("a".into());
        assert_eq!(
            window_tools(&store, &agent).await,
            ["x", "agentos.time_now", "agentos.mem_set"]
        );

        assert_eq!(store.audit_purge(25).await.unwrap(), 2);
        assert_eq!(store.audit_query(&filter(Visibility::All)).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn large_batches_are_written_whole_and_in_order() {
        let Some(store) = testing::store().await else { return };
        let count = 70;
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
                e.origin = (n % 7 != 0).then_some(Cow::Borrowed("primitive"));
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

    /// Two replicas append while a third pages: `seq` order is commit order, so whatever record
    /// a reader sees, every record below it is already visible (a cursor never skips one that
    /// commits later), each batch's numbers are contiguous, and the counters add up.
    #[tokio::test]
    async fn replicas_append_one_trail_in_commit_order() {
        let Some(url) = testing::fresh_database().await else {
            return;
        };
        let connect = || PgStore::connect(&url, 4, StoreLimits::default());
        let (one, two, reader) = (
            connect().await.unwrap(),
            connect().await.unwrap(),
            connect().await.unwrap(),
        );
        let (batches, per_batch) = (40, 25);
        async fn append(store: &PgStore, agent: &'static str, batches: i64, per_batch: i64) {
            for b in 0..batches {
                let batch = (0..per_batch)
                    .map(|n| entry(agent, None, &format!("{agent}-{b}-{n}"), "ok", b * 100 + n))
                    .collect();
                store.audit_append(batch).await.unwrap();
            }
        }
        let snapshots = async {
            let mut all = filter(Visibility::All);
            all.limit = 100_000;
            let mut seen = Vec::new();
            for _ in 0..30 {
                let rows = reader.audit_query(&all).await.unwrap();
                seen.push(
                    rows.into_iter()
                        .map(|e| e.seq)
                        .collect::<std::collections::BTreeSet<i64>>(),
                );
                tokio::task::yield_now().await;
            }
            seen
        };
        let ((), (), seen) = tokio::join!(
            append(&one, "one", batches, per_batch),
            append(&two, "two", batches, per_batch),
            snapshots
        );

        let mut all = filter(Visibility::All);
        all.limit = 100_000;
        let trail = reader.audit_query(&all).await.unwrap();
        assert_eq!(trail.len(), (2 * batches * per_batch) as usize);
        for snapshot in &seen {
            let Some(&highest) = snapshot.last() else { continue };
            let below = trail.iter().filter(|e| e.seq < highest).count();
            assert_eq!(
                snapshot.len() - 1,
                below,
                "every record below a visible one was visible"
            );
        }
        // Each batch got contiguous numbers: its first and last are per_batch - 1 apart.
        let position = |tool: &str| trail.iter().find(|e| &*e.tool == tool).map(|e| e.seq).unwrap();
        for agent in ["one", "two"] {
            for b in 0..batches {
                let (first, last) = (
                    position(&format!("{agent}-{b}-0")),
                    position(&format!("{agent}-{b}-24")),
                );
                assert_eq!(last - first, per_batch - 1);
            }
            assert_eq!(
                one.activity(agent).await.unwrap(),
                ((batches * per_batch) as u64, Some((batches - 1) * 100 + per_batch - 1))
            );
        }

        // Paging from another replica walks the whole trail once, newest first.
        let mut page = filter(Visibility::All);
        page.limit = 333;
        let mut walked = Vec::new();
        loop {
            let rows = two.audit_query(&page).await.unwrap();
            let Some(last) = rows.last() else { break };
            page.before_seq = Some(last.seq);
            walked.extend(rows.into_iter().map(|e| e.seq));
        }
        assert_eq!(walked, trail.iter().map(|e| e.seq).collect::<Vec<_>>());
    }
}

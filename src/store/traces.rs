//! Traces of tool calls: one row per trace, its spans kept beside the summary as one JSON array
//! (read only when a single trace is opened). One row per call, not one per span, because at
//! tens of thousands of calls a second the rows written are most of what tracing costs. Traces
//! arrive in batches from `ops::traces`; retention deletes by age and by count, oldest first.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, params, params_from_iter};

use super::audit::Listing;
use super::{Migration, SqliteStore, StoreError, Visibility};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    name: "traces_1",
    // `seq` orders traces as they were written (newest first in lists), so retention by count
    // deletes a contiguous range.
    sql: "CREATE TABLE traces (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        trace_id TEXT NOT NULL UNIQUE,
        started_ms INTEGER NOT NULL,
        duration_us INTEGER NOT NULL,
        root TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        account_id TEXT,
        tool TEXT NOT NULL,
        status TEXT NOT NULL,
        error TEXT,
        request_id TEXT NOT NULL,
        spans TEXT NOT NULL
    );
    CREATE INDEX traces_agent ON traces (agent_id, seq);",
}];

/// One trace as stored; `spans` is filled only when a single trace is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceRow {
    /// Assigned by the store (ignored on append).
    pub seq: i64,
    /// 32 lowercase hex digits.
    pub trace_id: String,
    pub started_ms: i64,
    pub duration_us: i64,
    /// The root span's name: the front door (`mcp.http`, `rest GET /api/audit`, `schedule`...).
    pub root: String,
    pub agent_id: String,
    pub account_id: Option<String>,
    pub tool: String,
    /// `ok` or `error`.
    pub status: String,
    pub error: Option<String>,
    pub request_id: String,
    pub spans: Vec<SpanRow>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpanRow {
    /// 16 lowercase hex digits.
    pub span_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    /// `adapter`, `registry`, `tool` or `upstream`.
    pub layer: String,
    /// `server`, `internal` or `client`.
    pub kind: String,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub error: Option<String>,
    /// A JSON object.
    pub attributes: String,
}

/// Which traces to list, newest first.
#[derive(Debug, Clone)]
pub struct TraceFilter {
    pub visibility: Visibility,
    pub agent_id: Option<String>,
    /// An exact tool name, or a prefix when `tool_prefix` is set.
    pub tool: Option<String>,
    pub tool_prefix: bool,
    pub status: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only traces older than this position (the previous page's cursor).
    pub before_seq: Option<i64>,
    pub limit: usize,
}

pub trait TraceStore: Send + Sync {
    /// Appends a batch of traces with their spans, in one transaction.
    fn traces_append(&self, traces: Vec<TraceRow>) -> BoxFuture<'_, Result<usize, StoreError>>;
    /// Summaries (without spans) matching `filter`.
    fn traces_query<'a>(&'a self, filter: &'a TraceFilter) -> BoxFuture<'a, Result<Vec<TraceRow>, StoreError>>;
    /// One trace with its spans, if it exists and `visibility` allows it.
    fn trace_get<'a>(
        &'a self,
        trace_id: &'a str,
        visibility: &'a Visibility,
    ) -> BoxFuture<'a, Result<Option<TraceRow>, StoreError>>;
    /// Deletes traces started before `before_ms`, then all but the newest `keep`; returns how
    /// many traces went.
    fn traces_purge(&self, before_ms: i64, keep: u64) -> BoxFuture<'_, Result<usize, StoreError>>;
}

const COLUMNS: &str =
    "seq, trace_id, started_ms, duration_us, root, agent_id, account_id, tool, status, error, request_id";

fn trace_of(row: &rusqlite::Row<'_>) -> rusqlite::Result<TraceRow> {
    Ok(TraceRow {
        seq: row.get(0)?,
        trace_id: row.get(1)?,
        started_ms: row.get(2)?,
        duration_us: row.get(3)?,
        root: row.get(4)?,
        agent_id: row.get(5)?,
        account_id: row.get(6)?,
        tool: row.get(7)?,
        status: row.get(8)?,
        error: row.get(9)?,
        request_id: row.get(10)?,
        spans: Vec::new(),
    })
}

impl TraceStore for SqliteStore {
    fn traces_append(&self, traces: Vec<TraceRow>) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(move |tx| {
            // OR IGNORE: a repeated trace id (vanishingly unlikely) loses that trace, not the batch.
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO traces (trace_id, started_ms, duration_us, root, agent_id, account_id,
                    tool, status, error, request_id, spans) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut written = 0;
            for trace in &traces {
                let spans = serde_json::to_string(&trace.spans)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                written += insert.execute(params![
                    trace.trace_id,
                    trace.started_ms,
                    trace.duration_us,
                    trace.root,
                    trace.agent_id,
                    trace.account_id,
                    trace.tool,
                    trace.status,
                    trace.error,
                    trace.request_id,
                    spans,
                ])?;
            }
            Ok(written)
        })
        .boxed()
    }

    fn traces_query<'a>(&'a self, filter: &'a TraceFilter) -> BoxFuture<'a, Result<Vec<TraceRow>, StoreError>> {
        let mut listing = Listing::new(COLUMNS, "traces", &filter.visibility);
        listing.and_opt_text("agent_id = ?", filter.agent_id.as_ref());
        listing.tool(filter.tool.as_ref(), filter.tool_prefix);
        listing.and_opt_text("status = ?", filter.status.as_ref());
        listing.and_opt_int("started_ms >= ?", filter.since_ms);
        listing.and_opt_int("started_ms <= ?", filter.until_ms);
        listing.and_opt_int("seq < ?", filter.before_seq);
        let (sql, values) = listing.finish(filter.limit);
        self.read(move |conn| {
            conn.prepare_cached(&sql)?
                .query_map(params_from_iter(values), trace_of)?
                .collect()
        })
        .boxed()
    }

    fn trace_get<'a>(
        &'a self,
        trace_id: &'a str,
        visibility: &'a Visibility,
    ) -> BoxFuture<'a, Result<Option<TraceRow>, StoreError>> {
        let (visible, mut values) = visibility.condition();
        let sql = format!("SELECT {COLUMNS} FROM traces WHERE trace_id = ? AND {visible}");
        values.insert(0, SqlValue::Text(trace_id.to_owned()));
        self.read(move |conn| {
            let Some(mut trace) = conn
                .prepare_cached(&sql)?
                .query_row(params_from_iter(values), trace_of)
                .optional()?
            else {
                return Ok(None);
            };
            let spans: String = conn
                .prepare_cached("SELECT spans FROM traces WHERE seq = ?1")?
                .query_row(params![trace.seq], |row| row.get(0))?;
            trace.spans = serde_json::from_str(&spans)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))?;
            Ok(Some(trace))
        })
        .boxed()
    }

    fn traces_purge(&self, before_ms: i64, keep: u64) -> BoxFuture<'_, Result<usize, StoreError>> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        self.write(move |tx| {
            // Every trace at or below this position goes: the oldest beyond `keep`.
            let excess: Option<i64> = tx
                .prepare_cached("SELECT seq FROM traces ORDER BY seq DESC LIMIT 1 OFFSET ?1")?
                .query_row(params![keep], |row| row.get(0))
                .optional()?;
            let mut purged = 0;
            if let Some(last) = excess {
                purged += tx
                    .prepare_cached("DELETE FROM traces WHERE seq <= ?1")?
                    .execute(params![last])?;
            }
            purged += tx
                .prepare_cached("DELETE FROM traces WHERE started_ms < ?1")?
                .execute(params![before_ms])?;
            Ok(purged)
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Synchronous;

    fn trace(id: u8, agent: &str, account: Option<&str>, tool: &str, status: &str, started_ms: i64) -> TraceRow {
        TraceRow {
            seq: 0,
            trace_id: format!("{id:032x}"),
            started_ms,
            duration_us: 7,
            root: "mcp.http".into(),
            agent_id: agent.into(),
            account_id: account.map(str::to_owned),
            tool: tool.into(),
            status: status.into(),
            error: (status == "error").then(|| "boom".into()),
            request_id: "r".into(),
            spans: vec![SpanRow {
                span_id: format!("{id:016x}"),
                parent_id: None,
                name: "mcp.http".into(),
                layer: "adapter".into(),
                kind: "server".into(),
                start_ns: started_ms * 1_000_000,
                duration_ns: 7000,
                error: None,
                attributes: "{}".into(),
            }],
        }
    }

    fn filter(visibility: Visibility) -> TraceFilter {
        TraceFilter {
            visibility,
            agent_id: None,
            tool: None,
            tool_prefix: false,
            status: None,
            since_ms: None,
            until_ms: None,
            before_seq: None,
            limit: 50,
        }
    }

    async fn ids(store: &SqliteStore, filter: &TraceFilter) -> Vec<String> {
        let rows = store.traces_query(filter).await.unwrap();
        rows.into_iter().map(|t| t.trace_id[30..].to_owned()).collect()
    }

    #[tokio::test]
    async fn traces_filter_page_and_respect_visibility() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        let batch = vec![
            trace(1, "a", Some("acct"), "agentos.mem_set", "ok", 10),
            trace(2, "b", Some("acct"), "agentos.mem_get", "error", 20),
            trace(3, "c", None, "mcp.x_y.echo", "ok", 30),
            trace(4, "a", Some("acct"), "agentos.time_now", "ok", 40),
        ];
        assert_eq!(store.traces_append(batch).await.unwrap(), 4);

        assert_eq!(ids(&store, &filter(Visibility::All)).await, ["04", "03", "02", "01"]);
        assert_eq!(ids(&store, &filter(Visibility::Agent("b".into()))).await, ["02"]);
        let account = Visibility::Account {
            agent_id: "op".into(),
            account_id: "acct".into(),
        };
        assert_eq!(ids(&store, &filter(account.clone())).await, ["04", "02", "01"]);

        let mut prefix = filter(Visibility::All);
        prefix.tool = Some("mcp.x_".into());
        prefix.tool_prefix = true;
        assert_eq!(ids(&store, &prefix).await, ["03"], "`_` is no wildcard");
        let mut exact = filter(Visibility::All);
        exact.tool = Some("agentos.mem_get".into());
        assert_eq!(ids(&store, &exact).await, ["02"]);
        let mut failed = filter(Visibility::All);
        failed.status = Some("error".into());
        assert_eq!(ids(&store, &failed).await, ["02"]);
        let mut window = filter(Visibility::All);
        window.since_ms = Some(15);
        window.until_ms = Some(35);
        window.agent_id = Some("c".into());
        assert_eq!(ids(&store, &window).await, ["03"]);

        let mut page = filter(Visibility::All);
        page.limit = 3;
        let first = store.traces_query(&page).await.unwrap();
        page.before_seq = first.last().map(|t| t.seq);
        assert_eq!(ids(&store, &page).await, ["01"]);

        let one = store
            .trace_get(&format!("{:032x}", 2), &Visibility::Agent("b".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.spans.len(), 1);
        assert_eq!(one.error.as_deref(), Some("boom"));
        let (two, other) = (format!("{:032x}", 2), Visibility::Agent("a".into()));
        let hidden = store.trace_get(&two, &other).await.unwrap();
        assert_eq!(hidden, None, "another agent's trace is not there");
        assert_eq!(store.trace_get(&format!("{:032x}", 9), &account).await.unwrap(), None);
    }

    #[tokio::test]
    async fn retention_drops_old_traces_and_the_oldest_beyond_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        let batch = (1..=6)
            .map(|i| trace(i, "a", None, "t", "ok", i64::from(i) * 10))
            .collect();
        store.traces_append(batch).await.unwrap();
        assert_eq!(store.traces_purge(0, 100).await.unwrap(), 0, "nothing to do");
        assert_eq!(store.traces_purge(25, 100).await.unwrap(), 2, "started before 25 ms");
        assert_eq!(store.traces_purge(0, 3).await.unwrap(), 1, "the oldest beyond 3");
        assert_eq!(ids(&store, &filter(Visibility::All)).await, ["06", "05", "04"]);
        let left: i64 = store
            .read(|conn| conn.query_row("SELECT count(*) FROM traces", [], |row| row.get(0)))
            .await
            .unwrap();
        assert_eq!(left, 3, "spans live in their trace's row and go with it");
    }
}

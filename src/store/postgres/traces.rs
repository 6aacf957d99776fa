//! Traces on PostgreSQL: one row per trace with its spans as one JSON array, one set of traces
//! for every replica, listed newest first with `seq` cursors and retained by age and by count.
//!
//! As for the audit trail (see `audit`), appends take a transaction lock so that `seq` numbers are
//! drawn in commit order: a reader paging with `seq < cursor` never skips a trace that commits
//! after a higher-numbered one was already visible, and retention by count deletes the oldest.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::PgStore;
use super::audit::{Listing, lock_appends};
use crate::store::{SpanRow, StoreError, TraceFilter, TraceRow, TraceStore, Visibility};

/// The trace append lock's key within `audit::LOCK_CLASS` (the audit trail's is 1).
const APPEND_LOCK: i32 = 2;

const COLUMNS: &str =
    "seq, trace_id, started_ms, duration_us, root, agent_id, account_id, tool, status, error, request_id";

/// A batch in one statement, in its order. `ON CONFLICT DO NOTHING`: a repeated trace id
/// (vanishingly unlikely) loses that trace, not the batch, as SQLite's `OR IGNORE` does.
const INSERT: &str = "INSERT INTO traces (trace_id, started_ms, duration_us, root, agent_id, account_id, tool, status,
        error, request_id, spans)
    SELECT trace_id, started_ms, duration_us, root, agent_id, account_id, tool, status, error, request_id, spans
    FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[],
        $9::TEXT[], $10::TEXT[], $11::TEXT[])
        WITH ORDINALITY AS batch (trace_id, started_ms, duration_us, root, agent_id, account_id, tool, status, error,
            request_id, spans, position)
    ORDER BY position
    ON CONFLICT (trace_id) DO NOTHING";

fn trace_of(row: &tokio_postgres::Row) -> TraceRow {
    TraceRow {
        seq: row.get(0),
        trace_id: row.get(1),
        started_ms: row.get(2),
        duration_us: row.get(3),
        root: row.get(4),
        agent_id: row.get(5),
        account_id: row.get(6),
        tool: row.get(7),
        status: row.get(8),
        error: row.get(9),
        request_id: row.get(10),
        spans: Vec::new(),
    }
}

impl TraceStore for PgStore {
    fn traces_append(&self, traces: Vec<TraceRow>) -> BoxFuture<'_, Result<usize, StoreError>> {
        async move {
            if traces.is_empty() {
                return Ok(0);
            }
            let spans = traces
                .iter()
                .map(|trace| serde_json::to_string(&trace.spans))
                .collect::<Result<Vec<String>, _>>()
                .map_err(|error| StoreError::Corrupt(format!("a trace's spans cannot be written: {error}")))?;
            let text = |get: fn(&TraceRow) -> &str| traces.iter().map(get).collect::<Vec<&str>>();
            let optional = |get: fn(&TraceRow) -> Option<&str>| traces.iter().map(get).collect::<Vec<Option<&str>>>();
            let started: Vec<i64> = traces.iter().map(|t| t.started_ms).collect();
            let durations: Vec<i64> = traces.iter().map(|t| t.duration_us).collect();
            let (ids, roots, agents) = (text(|t| &t.trace_id), text(|t| &t.root), text(|t| &t.agent_id));
            let (tools, statuses, requests) = (text(|t| &t.tool), text(|t| &t.status), text(|t| &t.request_id));
            let accounts = optional(|t| t.account_id.as_deref());
            let errors = optional(|t| t.error.as_deref());

            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_appends(&tx, APPEND_LOCK).await?;
            let insert = tx.prepare_cached(INSERT).await?;
            let written = tx
                .execute(
                    &insert,
                    &[
                        &ids, &started, &durations, &roots, &agents, &accounts, &tools, &statuses, &errors, &requests,
                        &spans,
                    ],
                )
                .await?;
            tx.commit().await?;
            Ok(usize::try_from(written).unwrap_or(usize::MAX))
        }
        .boxed()
    }

    fn traces_query<'a>(&'a self, filter: &'a TraceFilter) -> BoxFuture<'a, Result<Vec<TraceRow>, StoreError>> {
        async move {
            let mut listing = Listing::new(COLUMNS, "traces", &filter.visibility);
            listing.and_opt_text("agent_id = ?", filter.agent_id.as_ref());
            listing.tool(filter.tool.as_ref(), filter.tool_prefix);
            listing.and_opt_text("status = ?", filter.status.as_ref());
            listing.and_opt_int("started_ms >= ?", filter.since_ms);
            listing.and_opt_int("started_ms <= ?", filter.until_ms);
            listing.and_opt_int("seq < ?", filter.before_seq);
            let client = self.client().await?;
            let rows = listing.run(&client, filter.limit).await?;
            Ok(rows.iter().map(trace_of).collect())
        }
        .boxed()
    }

    fn trace_get<'a>(
        &'a self,
        trace_id: &'a str,
        visibility: &'a Visibility,
    ) -> BoxFuture<'a, Result<Option<TraceRow>, StoreError>> {
        async move {
            // The listing's visibility condition, narrowed to one id; the spans come in the same row.
            let mut listing = Listing::new(&format!("{COLUMNS}, spans"), "traces", visibility);
            listing.and("trace_id = ?", trace_id.to_owned());
            let client = self.client().await?;
            let Some(row) = listing.run(&client, 1).await?.into_iter().next() else {
                return Ok(None);
            };
            let mut trace = trace_of(&row);
            let spans: &str = row.get(11);
            trace.spans = serde_json::from_str::<Vec<SpanRow>>(spans)
                .map_err(|error| StoreError::Corrupt(format!("trace {trace_id} has unreadable spans: {error}")))?;
            Ok(Some(trace))
        }
        .boxed()
    }

    fn traces_purge(&self, before_ms: i64, keep: u64) -> BoxFuture<'_, Result<usize, StoreError>> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Every trace at or below this position goes: the oldest beyond `keep`. Replicas
            // purging at once only delete the same rows twice over; each counts what it deleted.
            let excess = tx
                .prepare_cached("SELECT seq FROM traces ORDER BY seq DESC LIMIT 1 OFFSET $1")
                .await?;
            let mut purged = 0;
            if let Some(row) = tx.query_opt(&excess, &[&keep]).await? {
                let last: i64 = row.get(0);
                let by_count = tx.prepare_cached("DELETE FROM traces WHERE seq <= $1").await?;
                purged += tx.execute(&by_count, &[&last]).await?;
            }
            let by_age = tx.prepare_cached("DELETE FROM traces WHERE started_ms < $1").await?;
            purged += tx.execute(&by_age, &[&before_ms]).await?;
            tx.commit().await?;
            Ok(usize::try_from(purged).unwrap_or(usize::MAX))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreLimits;
    use crate::store::postgres::testing;

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

    async fn ids(store: &PgStore, filter: &TraceFilter) -> Vec<String> {
        let rows = store.traces_query(filter).await.unwrap();
        rows.into_iter().map(|t| t.trace_id[30..].to_owned()).collect()
    }

    #[tokio::test]
    async fn traces_filter_page_and_respect_visibility() {
        let Some(store) = testing::store().await else { return };
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
        assert!(first.iter().all(|t| t.spans.is_empty()), "lists carry no spans");
        page.before_seq = first.last().map(|t| t.seq);
        assert_eq!(ids(&store, &page).await, ["01"]);

        let one = store
            .trace_get(&format!("{:032x}", 2), &Visibility::Agent("b".into()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(one.spans, trace(2, "b", None, "t", "ok", 20).spans, "spans round-trip");
        assert_eq!(one.error.as_deref(), Some("boom"));
        let (two, other) = (format!("{:032x}", 2), Visibility::Agent("a".into()));
        let hidden = store.trace_get(&two, &other).await.unwrap();
        assert_eq!(hidden, None, "another agent's trace is not there");
        assert_eq!(store.trace_get(&format!("{:032x}", 9), &account).await.unwrap(), None);
        assert!(
            store.trace_get(&two, &account).await.unwrap().is_some(),
            "the account's trace"
        );
    }

    #[tokio::test]
    async fn a_repeated_trace_id_loses_that_trace_not_the_batch() {
        let Some(store) = testing::store().await else { return };
        store
            .traces_append(vec![trace(1, "a", None, "t", "ok", 10)])
            .await
            .unwrap();
        let batch = vec![
            trace(1, "b", None, "t", "ok", 20),
            trace(2, "a", None, "t", "ok", 30),
            trace(2, "c", None, "t", "ok", 40),
        ];
        assert_eq!(store.traces_append(batch).await.unwrap(), 1);
        assert_eq!(ids(&store, &filter(Visibility::All)).await, ["02", "01"]);
        let first = store
            .trace_get(&format!("{:032x}", 1), &Visibility::All)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.agent_id, "a", "the first one stays");
        assert_eq!(store.traces_append(Vec::new()).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn retention_drops_old_traces_and_the_oldest_beyond_the_cap() {
        let Some(store) = testing::store().await else { return };
        let batch = (1..=6)
            .map(|i| trace(i, "a", None, "t", "ok", i64::from(i) * 10))
            .collect();
        store.traces_append(batch).await.unwrap();
        assert_eq!(store.traces_purge(0, 100).await.unwrap(), 0, "nothing to do");
        assert_eq!(store.traces_purge(25, 100).await.unwrap(), 2, "started before 25 ms");
        assert_eq!(store.traces_purge(0, 3).await.unwrap(), 1, "the oldest beyond 3");
        assert_eq!(ids(&store, &filter(Visibility::All)).await, ["06", "05", "04"]);
        let client = store.client().await.unwrap();
        let left: i64 = client
            .query_one("SELECT count(*) FROM traces", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 3, "spans live in their trace's row and go with it");
    }

    /// Two replicas append batches while a third reads: `seq` order is commit order, so a
    /// reader that sees a trace already sees every trace numbered below it, and paging walks
    /// the whole set once.
    #[tokio::test]
    async fn replicas_append_traces_in_commit_order() {
        let Some(url) = testing::fresh_database().await else {
            return;
        };
        let connect = || PgStore::connect(&url, 4, StoreLimits::default());
        let (one, two, reader) = (
            connect().await.unwrap(),
            connect().await.unwrap(),
            connect().await.unwrap(),
        );
        async fn append(store: &PgStore, base: u8) {
            for b in 0..30u8 {
                let batch = (0..4u8)
                    .map(|n| {
                        let mut t = trace(0, "a", None, "t", "ok", i64::from(b));
                        t.trace_id = format!("{base:02x}{b:02x}{n:02x}{:026x}", 0);
                        t
                    })
                    .collect();
                assert_eq!(store.traces_append(batch).await.unwrap(), 4);
            }
        }
        let snapshots = async {
            let mut all = filter(Visibility::All);
            all.limit = 10_000;
            let mut seen = Vec::new();
            for _ in 0..30 {
                let rows = reader.traces_query(&all).await.unwrap();
                seen.push(
                    rows.into_iter()
                        .map(|t| t.seq)
                        .collect::<std::collections::BTreeSet<i64>>(),
                );
                tokio::task::yield_now().await;
            }
            seen
        };
        let ((), (), seen) = tokio::join!(append(&one, 1), append(&two, 2), snapshots);
        let mut all = filter(Visibility::All);
        all.limit = 10_000;
        let every: Vec<i64> = reader
            .traces_query(&all)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.seq)
            .collect();
        assert_eq!(every.len(), 240);
        for snapshot in &seen {
            let Some(&highest) = snapshot.last() else { continue };
            assert_eq!(snapshot.len() - 1, every.iter().filter(|&&seq| seq < highest).count());
        }
        let mut page = filter(Visibility::All);
        page.limit = 7;
        let mut walked = Vec::new();
        loop {
            let rows = one.traces_query(&page).await.unwrap();
            let Some(last) = rows.last() else { break };
            page.before_seq = Some(last.seq);
            walked.extend(rows.into_iter().map(|t| t.seq));
        }
        assert_eq!(walked, every);
    }
}

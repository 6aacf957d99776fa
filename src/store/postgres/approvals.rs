//! Pending, decided and completed approvals of tool calls on the PostgreSQL store (the
//! `ApprovalStore` trait; semantics pinned by the SQLite impl in src/store/approvals.rs).
//!
//! Approvals are decided, finished and swept by any replica, so every status change is a
//! compare-and-set on the current status: PostgreSQL's row lock makes a second writer wait and
//! then re-check `status` against the committed row, so two deciders racing, or a decision
//! racing the expiry sweep, change an approval exactly once. The sweep locks the rows it changes
//! with `FOR UPDATE SKIP LOCKED` (in a fixed order), so replicas sweeping at once split the work
//! instead of waiting on, or deadlocking with, each other or a decider.
//!
//! Every status change notifies `agentos_approvals` with the approval's id, inside its
//! transaction (a trigger in `migrations/postgres/0011_approvals.sql`), so a call waiting on
//! another replica wakes when the change commits.

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgStore, to_i64};
use crate::store::{ApprovalRecord, ApprovalStatus, ApprovalStore, StoreError, Visibility};

const COLUMNS: &str = "id, agent_id, account_id, caller, tool, input, preview, request_id, status, created_at, \
                       expires_at, decided_at, decided_by, note, result, sealed_input";

/// What a run that was approved but never finished is failed with (its replica died mid-run).
const STALE_RESULT: &str = "agentos stopped while the approved call was running; call the tool again";

fn from_row(row: &Row) -> Result<ApprovalRecord, StoreError> {
    let status: String = row.try_get(8)?;
    let status = ApprovalStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown approval status `{status}`")))?;
    Ok(ApprovalRecord {
        id: row.try_get(0)?,
        agent_id: row.try_get(1)?,
        account_id: row.try_get(2)?,
        caller: row.try_get(3)?,
        tool: row.try_get(4)?,
        input: row.try_get(5)?,
        preview: row.try_get(6)?,
        request_id: row.try_get(7)?,
        status,
        created_at: row.try_get(9)?,
        expires_at: row.try_get(10)?,
        decided_at: row.try_get(11)?,
        decided_by: row.try_get(12)?,
        note: row.try_get(13)?,
        result: row.try_get(14)?,
        sealed_input: row.try_get(15)?,
    })
}

/// A listing's `WHERE` clause with its bound values, numbered `$1`, `$2`, ... as they are added.
struct Listing {
    sql: String,
    values: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Listing {
    fn new(visibility: &Visibility) -> Self {
        let mut listing = Self {
            sql: format!("SELECT {COLUMNS} FROM approvals WHERE TRUE"),
            values: Vec::new(),
        };
        match visibility {
            Visibility::All => {}
            Visibility::Agent(agent) => listing.and("agent_id", agent.clone()),
            Visibility::Account { agent_id, account_id } => {
                let (agent, account) = (listing.bind(agent_id.clone()), listing.bind(account_id.clone()));
                listing
                    .sql
                    .push_str(&format!(" AND (agent_id = {agent} OR account_id = {account})"));
            }
        }
        listing
    }

    /// Binds a value; returns its placeholder.
    fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.values.push(Box::new(value));
        format!("${}", self.values.len())
    }

    /// Adds ` AND <column> = <placeholder>`.
    fn and(&mut self, column: &str, value: impl ToSql + Sync + Send + 'static) {
        let placeholder = self.bind(value);
        self.sql.push_str(&format!(" AND {column} = {placeholder}"));
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.values
            .iter()
            .map(|value| &**value as &(dyn ToSql + Sync))
            .collect()
    }
}

impl ApprovalStore for PgStore {
    fn approval_create(&self, r: ApprovalRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&format!(
                    "INSERT INTO approvals ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
                     $13, $14, $15, $16)"
                ))
                .await?;
            client
                .execute(
                    &statement,
                    &[
                        &r.id,
                        &r.agent_id,
                        &r.account_id,
                        &r.caller,
                        &r.tool,
                        &r.input,
                        &r.preview,
                        &r.request_id,
                        &r.status.as_str(),
                        &r.created_at,
                        &r.expires_at,
                        &r.decided_at,
                        &r.decided_by,
                        &r.note,
                        &r.result,
                        &r.sealed_input,
                    ],
                )
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn approval_get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApprovalRecord>, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
                .await?;
            client
                .query_opt(&statement, &[&id])
                .await?
                .as_ref()
                .map(from_row)
                .transpose()
        }
        .boxed()
    }

    fn approval_list<'a>(
        &'a self,
        visibility: &'a Visibility,
        status: Option<ApprovalStatus>,
        agent_id: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ApprovalRecord>, StoreError>> {
        async move {
            let mut listing = Listing::new(visibility);
            if let Some(status) = status {
                listing.and("status", status.as_str());
            }
            if let Some(agent) = agent_id {
                listing.and("agent_id", agent.to_owned());
            }
            let limit = listing.bind(to_i64(limit));
            // `id` is COLLATE "C": ties order by bytes, as on SQLite.
            listing
                .sql
                .push_str(&format!(" ORDER BY created_at DESC, id LIMIT {limit}"));
            let client = self.client().await?;
            let statement = client.prepare_cached(&listing.sql).await?;
            let rows = client.query(&statement, &listing.params()).await?;
            rows.iter().map(from_row).collect()
        }
        .boxed()
    }

    fn approval_decide<'a>(
        &'a self,
        id: &'a str,
        approve: bool,
        decided_by: &'a str,
        note: Option<&'a str>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let status = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Denied
        };
        async move {
            let client = self.client().await?;
            // Compare-and-set: of two deciders (on any replicas) the later one waits for the
            // earlier's row lock, re-checks `status = 'pending'` on the committed row and
            // changes nothing.
            let statement = client
                .prepare_cached(
                    "UPDATE approvals SET status = $2, decided_at = $3, decided_by = $4, note = $5
                     WHERE id = $1 AND status = 'pending' AND expires_at > $3",
                )
                .await?;
            let changed = client
                .execute(&statement, &[&id, &status.as_str(), &now_ms, &decided_by, &note])
                .await?;
            Ok(changed == 1)
        }
        .boxed()
    }

    fn approval_finish<'a>(
        &'a self,
        id: &'a str,
        status: ApprovalStatus,
        result: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "UPDATE approvals SET status = $2, result = $3, finished_at = $4
                     WHERE id = $1 AND status = 'approved'",
                )
                .await?;
            let changed = client
                .execute(&statement, &[&id, &status.as_str(), &result, &now_ms])
                .await?;
            Ok(changed == 1)
        }
        .boxed()
    }

    fn approval_sweep(&self, now_ms: i64, stale_before_ms: i64) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Rows another transaction holds (a decider, another replica's sweep) are skipped:
            // the holder changes them, or the next sweep does. Ids come back in the order the
            // SQLite store's index walk gives them: by expiry, then id.
            let expire = tx
                .prepare_cached(
                    "WITH due AS (
                         SELECT id FROM approvals WHERE status = 'pending' AND expires_at <= $1
                         ORDER BY expires_at, id FOR UPDATE SKIP LOCKED
                     ), changed AS (
                         UPDATE approvals SET status = 'expired' FROM due
                         WHERE approvals.id = due.id AND approvals.status = 'pending'
                         RETURNING approvals.id, approvals.expires_at
                     )
                     SELECT id FROM changed ORDER BY expires_at, id",
                )
                .await?;
            let mut ids: Vec<String> = tx
                .query(&expire, &[&now_ms])
                .await?
                .iter()
                .map(|row| row.try_get(0))
                .collect::<Result<_, _>>()?;
            let fail = tx
                .prepare_cached(
                    "WITH stale AS (
                         SELECT id FROM approvals WHERE status = 'approved' AND decided_at < $2
                         ORDER BY expires_at, id FOR UPDATE SKIP LOCKED
                     ), changed AS (
                         UPDATE approvals SET status = 'failed', finished_at = $1, result = $3 FROM stale
                         WHERE approvals.id = stale.id AND approvals.status = 'approved'
                         RETURNING approvals.id, approvals.expires_at
                     )
                     SELECT id FROM changed ORDER BY expires_at, id",
                )
                .await?;
            for row in tx.query(&fail, &[&now_ms, &stale_before_ms, &STALE_RESULT]).await? {
                ids.push(row.try_get(0)?);
            }
            tx.commit().await?;
            Ok(ids)
        }
        .boxed()
    }

    fn approval_pending_count(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        async move {
            let client = self.client().await?;
            // Served by the (status, expires_at) index.
            let statement = client
                .prepare_cached("SELECT COUNT(*) FROM approvals WHERE status = 'pending' AND expires_at > $1")
                .await?;
            let count: i64 = client.query_one(&statement, &[&now_ms]).await?.try_get(0)?;
            Ok(u64::try_from(count).unwrap_or(0))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests;

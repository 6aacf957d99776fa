//! Pending, decided and completed approvals of tool calls that need a human.
//!
//! Every status change is a conditional UPDATE on the current status, so two deciders racing,
//! or a decision racing the expiry sweep, change an approval exactly once.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use super::{Migration, SqliteStore, StoreError, Visibility};

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "approvals_1",
        sql: "CREATE TABLE approvals (
        id TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        account_id TEXT,
        caller TEXT NOT NULL,
        tool TEXT NOT NULL,
        input TEXT NOT NULL,
        preview TEXT NOT NULL,
        request_id TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        decided_at INTEGER,
        decided_by TEXT,
        note TEXT,
        result TEXT,
        finished_at INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX approvals_status ON approvals (status, expires_at);
    CREATE INDEX approvals_agent ON approvals (agent_id, created_at);
    CREATE INDEX approvals_account ON approvals (account_id, created_at) WHERE account_id IS NOT NULL;",
    },
    // `input` holds the redacted input since; the real one, when it differs, is sealed here.
    Migration {
        name: "approvals_2",
        sql: "ALTER TABLE approvals ADD COLUMN sealed_input BLOB;",
    },
];

/// Where an approval stands. `pending` → `approved` → `completed` | `failed`; `pending` →
/// `denied` | `expired`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    /// Approved; the call is running.
    Approved,
    Denied,
    /// Approved and run; the result is stored (it may itself be a tool error).
    Completed,
    /// Approved but the call could not run (its agent is gone, the tool refused it).
    Failed,
    /// Nobody decided in time.
    Expired,
}

impl ApprovalStatus {
    pub const ALL: [ApprovalStatus; 6] = [
        Self::Pending,
        Self::Approved,
        Self::Denied,
        Self::Completed,
        Self::Failed,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether nothing will change this approval any more.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Pending | Self::Approved)
    }
}

/// One approval as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRecord {
    pub id: String,
    /// The requesting agent.
    pub agent_id: String,
    pub account_id: Option<String>,
    /// The requester as it was when it asked (JSON), for when no directory can say who it is now.
    pub caller: String,
    pub tool: String,
    /// The input as it may be shown (JSON, sensitive values redacted); the call runs with it
    /// once approved unless `sealed_input` is set.
    pub input: String,
    /// The real input (JSON) sealed with the secrets key (`crate::sealing`, nonce and
    /// ciphertext in one blob), when it holds sensitive values; never shown.
    pub sealed_input: Option<Vec<u8>>,
    /// What a decider sees of the input: pretty JSON, truncated.
    pub preview: String,
    pub request_id: String,
    pub status: ApprovalStatus,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_at: Option<i64>,
    pub decided_by: Option<String>,
    pub note: Option<String>,
    /// The run's `CallToolResult` (JSON) once completed, or why it failed.
    pub result: Option<String>,
}

pub trait ApprovalStore: Send + Sync {
    fn approval_create(&self, record: ApprovalRecord) -> BoxFuture<'_, Result<(), StoreError>>;
    fn approval_get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApprovalRecord>, StoreError>>;
    /// Newest first.
    fn approval_list<'a>(
        &'a self,
        visibility: &'a Visibility,
        status: Option<ApprovalStatus>,
        agent_id: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ApprovalRecord>, StoreError>>;
    /// Approves or denies a pending, unexpired approval; false if it was not pending (any more).
    fn approval_decide<'a>(
        &'a self,
        id: &'a str,
        approve: bool,
        decided_by: &'a str,
        note: Option<&'a str>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Records how an approved call ended (`Completed` or `Failed`); false if it was not running.
    fn approval_finish<'a>(
        &'a self,
        id: &'a str,
        status: ApprovalStatus,
        result: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Expires pending approvals past their time and fails approved runs decided before
    /// `stale_before_ms` (their process died mid-run); returns the ids changed.
    fn approval_sweep(&self, now_ms: i64, stale_before_ms: i64) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
    /// How many approvals are pending and unexpired at `now_ms`, over every agent (metrics).
    fn approval_pending_count(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>>;
}

const COLUMNS: &str = "id, agent_id, account_id, caller, tool, input, preview, request_id, status, created_at, \
                       expires_at, decided_at, decided_by, note, result, sealed_input";

fn from_row(row: &Row<'_>) -> Result<ApprovalRecord, rusqlite::Error> {
    let status: String = row.get(8)?;
    let status = ApprovalStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(8, rusqlite::types::Type::Text, "unknown approval status".into())
    })?;
    Ok(ApprovalRecord {
        id: row.get(0)?,
        agent_id: row.get(1)?,
        account_id: row.get(2)?,
        caller: row.get(3)?,
        tool: row.get(4)?,
        input: row.get(5)?,
        preview: row.get(6)?,
        request_id: row.get(7)?,
        status,
        created_at: row.get(9)?,
        expires_at: row.get(10)?,
        decided_at: row.get(11)?,
        decided_by: row.get(12)?,
        note: row.get(13)?,
        result: row.get(14)?,
        sealed_input: row.get(15)?,
    })
}

impl ApprovalStore for SqliteStore {
    fn approval_create(&self, r: ApprovalRecord) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO approvals ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
                 ?14, ?15, ?16)"
            ))?
            .execute(params![
                r.id,
                r.agent_id,
                r.account_id,
                r.caller,
                r.tool,
                r.input,
                r.preview,
                r.request_id,
                r.status.as_str(),
                r.created_at,
                r.expires_at,
                r.decided_at,
                r.decided_by,
                r.note,
                r.result,
                r.sealed_input,
            ])?;
            Ok(())
        })
        .boxed()
    }

    fn approval_get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<ApprovalRecord>, StoreError>> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {COLUMNS} FROM approvals WHERE id = ?1"))?
                .query_row(params![id], from_row)
                .optional()
        })
        .boxed()
    }

    fn approval_list<'a>(
        &'a self,
        visibility: &'a Visibility,
        status: Option<ApprovalStatus>,
        agent_id: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<ApprovalRecord>, StoreError>> {
        let (visible, mut values) = visibility.condition();
        let mut sql = format!("SELECT {COLUMNS} FROM approvals WHERE {visible}");
        if let Some(status) = status {
            sql.push_str(" AND status = ?");
            values.push(SqlValue::Text(status.as_str().to_owned()));
        }
        if let Some(agent) = agent_id {
            sql.push_str(" AND agent_id = ?");
            values.push(SqlValue::Text(agent.to_owned()));
        }
        sql.push_str(" ORDER BY created_at DESC, id LIMIT ?");
        values.push(SqlValue::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        self.read(move |conn| {
            conn.prepare_cached(&sql)?
                .query_map(params_from_iter(values), from_row)?
                .collect()
        })
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
        let (id, decided_by, note) = (id.to_owned(), decided_by.to_owned(), note.map(str::to_owned));
        let status = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Denied
        };
        self.write(move |tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE approvals SET status = ?2, decided_at = ?3, decided_by = ?4, note = ?5
                     WHERE id = ?1 AND status = 'pending' AND expires_at > ?3",
                )?
                .execute(params![id, status.as_str(), now_ms, decided_by, note])?;
            Ok(changed == 1)
        })
        .boxed()
    }

    fn approval_finish<'a>(
        &'a self,
        id: &'a str,
        status: ApprovalStatus,
        result: &'a str,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (id, result) = (id.to_owned(), result.to_owned());
        self.write(move |tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE approvals SET status = ?2, result = ?3, finished_at = ?4
                     WHERE id = ?1 AND status = 'approved'",
                )?
                .execute(params![id, status.as_str(), result, now_ms])?;
            Ok(changed == 1)
        })
        .boxed()
    }

    fn approval_sweep(&self, now_ms: i64, stale_before_ms: i64) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.write(move |tx| {
            let mut ids: Vec<String> = tx
                .prepare_cached(
                    "UPDATE approvals SET status = 'expired' WHERE status = 'pending' AND expires_at <= ?1
                     RETURNING id",
                )?
                .query_map(params![now_ms], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let stale = tx
                .prepare_cached(
                    "UPDATE approvals SET status = 'failed', finished_at = ?1,
                        result = 'agentos stopped while the approved call was running; call the tool again'
                     WHERE status = 'approved' AND decided_at < ?2 RETURNING id",
                )?
                .query_map(params![now_ms, stale_before_ms], |row| row.get(0))?
                .collect::<Result<Vec<String>, _>>()?;
            ids.extend(stale);
            Ok(ids)
        })
        .boxed()
    }

    fn approval_pending_count(&self, now_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.read(move |conn| {
            // Served by the (status, expires_at) index.
            let count: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM approvals WHERE status = 'pending' AND expires_at > ?1")?
                .query_row(params![now_ms], |row| row.get(0))?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Synchronous;

    fn pending(id: &str, agent: &str, account: Option<&str>, created_at: i64) -> ApprovalRecord {
        ApprovalRecord {
            id: id.into(),
            agent_id: agent.into(),
            account_id: account.map(str::to_owned),
            caller: "{}".into(),
            tool: "mcp.e.echo".into(),
            input: r#"{"message":"hi"}"#.into(),
            sealed_input: None,
            preview: "{\n  \"message\": \"hi\"\n}".into(),
            request_id: "r1".into(),
            status: ApprovalStatus::Pending,
            created_at,
            expires_at: created_at + 1000,
            decided_at: None,
            decided_by: None,
            note: None,
            result: None,
        }
    }

    #[tokio::test]
    async fn an_approval_is_decided_once_and_finished_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store.approval_create(pending("p1", "a", None, 100)).await.unwrap();
        assert_eq!(store.approval_pending_count(150).await.unwrap(), 1);
        assert_eq!(store.approval_pending_count(1100).await.unwrap(), 0, "expired");
        assert!(
            !store
                .approval_finish("p1", ApprovalStatus::Completed, "{}", 150)
                .await
                .unwrap()
        );
        let (first, second) = tokio::join!(
            store.approval_decide("p1", true, "op", Some("fine"), 200),
            store.approval_decide("p1", false, "other", None, 200),
        );
        assert!(first.unwrap() ^ second.unwrap(), "exactly one decision wins");
        let decided = store.approval_get("p1").await.unwrap().unwrap();
        assert!(matches!(
            decided.status,
            ApprovalStatus::Approved | ApprovalStatus::Denied
        ));
        if decided.status == ApprovalStatus::Approved {
            assert!(
                store
                    .approval_finish("p1", ApprovalStatus::Completed, "{\"content\":[]}", 300)
                    .await
                    .unwrap()
            );
            assert!(
                !store
                    .approval_finish("p1", ApprovalStatus::Failed, "x", 301)
                    .await
                    .unwrap()
            );
            let done = store.approval_get("p1").await.unwrap().unwrap();
            assert_eq!(done.status, ApprovalStatus::Completed);
            assert_eq!(done.result.as_deref(), Some("{\"content\":[]}"));
        }
        assert!(store.approval_get("nope").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn expired_ones_cannot_be_decided_and_lists_respect_visibility() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store
            .approval_create(pending("p1", "a", Some("acct"), 100))
            .await
            .unwrap();
        store
            .approval_create(pending("p2", "b", Some("acct"), 200))
            .await
            .unwrap();
        store.approval_create(pending("p3", "c", None, 5000)).await.unwrap();
        assert!(
            !store.approval_decide("p1", true, "op", None, 1100).await.unwrap(),
            "past expiry"
        );
        assert_eq!(store.approval_sweep(1250, 0).await.unwrap(), ["p1", "p2"]);
        assert_eq!(
            store.approval_get("p2").await.unwrap().unwrap().status,
            ApprovalStatus::Expired
        );

        let all = store.approval_list(&Visibility::All, None, None, 10).await.unwrap();
        let ids: Vec<_> = all.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["p3", "p2", "p1"]);
        let operator = Visibility::Account {
            agent_id: "op".into(),
            account_id: "acct".into(),
        };
        assert_eq!(store.approval_list(&operator, None, None, 10).await.unwrap().len(), 2);
        let agent = Visibility::Agent("c".into());
        let own = store
            .approval_list(&agent, Some(ApprovalStatus::Pending), None, 10)
            .await
            .unwrap();
        assert_eq!(own.len(), 1);
        let filtered = store
            .approval_list(&Visibility::All, None, Some("b"), 10)
            .await
            .unwrap();
        assert_eq!(filtered.len(), 1);

        assert!(store.approval_decide("p3", true, "op", None, 5001).await.unwrap());
        assert_eq!(
            store.approval_sweep(6000, 5002).await.unwrap(),
            ["p3"],
            "a stale run fails"
        );
        assert_eq!(
            store.approval_get("p3").await.unwrap().unwrap().status,
            ApprovalStatus::Failed
        );
    }
}

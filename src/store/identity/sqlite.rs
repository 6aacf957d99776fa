//! The identity tables on the embedded SQLite store.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{OptionalExtension, Row, params};

use super::{AccountRow, AgentRow, IdentityStore, PasswordReset, SessionRow, TokenRow};
use crate::store::{SqliteStore, StoreError, now_ms};

const AGENT_COLUMNS: &str = "id, name, description, owner_email, account_id, role, status, allowed_domains,
    allowed_tools, tokens_valid_after, created_at";

fn agent_from_row(row: &Row<'_>) -> rusqlite::Result<AgentRow> {
    Ok(AgentRow {
        id: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        owner_email: row.get(3)?,
        account_id: row.get(4)?,
        role: row.get(5)?,
        status: row.get(6)?,
        allowed_domains: json_list(row, 7)?,
        allowed_tools: json_list(row, 8)?,
        tokens_valid_after_ms: row.get(9)?,
        created_at_ms: row.get(10)?,
    })
}

/// Lists are kept as JSON arrays of strings; a damaged one is reported, never read as empty
/// (an empty domain list would mean "any host").
fn json_list(row: &Row<'_>, index: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e)))
}

fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

fn insert_agent(tx: &rusqlite::Transaction<'_>, agent: &AgentRow) -> rusqlite::Result<bool> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO agents (id, name, description, owner_email, account_id, role, status, allowed_domains,
                allowed_tools, tokens_valid_after, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![
            agent.id,
            agent.name,
            agent.description,
            agent.owner_email,
            agent.account_id,
            agent.role,
            agent.status,
            to_json(&agent.allowed_domains),
            to_json(&agent.allowed_tools),
            agent.tokens_valid_after_ms,
            agent.created_at_ms,
        ])?;
    Ok(inserted > 0)
}

impl IdentityStore for SqliteStore {
    fn identity_create_account(&self, account: AccountRow, agent: AgentRow) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.write(move |tx| {
            let taken = tx
                .prepare_cached("SELECT 1 FROM accounts WHERE email = ?1")?
                .exists(params![account.email])?;
            if taken {
                return Ok(false);
            }
            if !insert_agent(tx, &agent)? {
                // Agent ids are 64 random bits; a clash is a bug worth failing loudly on.
                return Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
                    Some(format!("agent id `{}` already exists", agent.id)),
                ));
            }
            tx.prepare_cached(
                "INSERT INTO accounts (id, email, password_hash, agent_id, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![
                account.id,
                account.email,
                account.password_hash,
                account.agent_id,
                account.created_at_ms
            ])?;
            Ok(true)
        })
        .boxed()
    }

    fn identity_account_by_email<'a>(
        &'a self,
        email: &'a str,
    ) -> BoxFuture<'a, Result<Option<AccountRow>, StoreError>> {
        let email = email.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT id, email, password_hash, agent_id, created_at FROM accounts WHERE email = ?1")?
                .query_row(params![email], |row| {
                    Ok(AccountRow {
                        id: row.get(0)?,
                        email: row.get(1)?,
                        password_hash: row.get(2)?,
                        agent_id: row.get(3)?,
                        created_at_ms: row.get(4)?,
                    })
                })
                .optional()
        })
        .boxed()
    }

    fn identity_create_agent(&self, agent: AgentRow) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.write(move |tx| insert_agent(tx, &agent)).boxed()
    }

    fn identity_agent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<AgentRow>, StoreError>> {
        let id = id.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?1"))?
                .query_row(params![id], agent_from_row)
                .optional()
        })
        .boxed()
    }

    fn identity_agents<'a>(
        &'a self,
        account: Option<(&'a str, &'a str)>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AgentRow>, StoreError>> {
        let account = account.map(|(account, also)| (account.to_owned(), also.to_owned()));
        let after = after.unwrap_or("").to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| match account {
            None => conn
                .prepare_cached(&format!(
                    "SELECT {AGENT_COLUMNS} FROM agents WHERE id > ?1 ORDER BY id LIMIT ?2"
                ))?
                .query_map(params![after, limit], agent_from_row)?
                .collect(),
            Some((account, also)) => conn
                .prepare_cached(&format!(
                    "SELECT {AGENT_COLUMNS} FROM agents WHERE id > ?1 AND (account_id = ?2 OR id = ?3) \
                     ORDER BY id LIMIT ?4"
                ))?
                .query_map(params![after, account, also, limit], agent_from_row)?
                .collect(),
        })
        .boxed()
    }

    fn identity_set_agent_tools<'a>(
        &'a self,
        id: &'a str,
        tools: Vec<String>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let id = id.to_owned();
        self.write(move |tx| {
            let changed = tx
                .prepare_cached("UPDATE agents SET allowed_tools = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![id, to_json(&tools), now_ms()])?;
            Ok(changed > 0)
        })
        .boxed()
    }

    fn identity_set_agent_status<'a>(
        &'a self,
        id: &'a str,
        status: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (id, status) = (id.to_owned(), status.to_owned());
        self.write(move |tx| {
            let changed = tx
                .prepare_cached("UPDATE agents SET status = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![id, status, now_ms()])?;
            Ok(changed > 0)
        })
        .boxed()
    }

    fn identity_set_agent_role<'a>(&'a self, id: &'a str, role: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (id, role) = (id.to_owned(), role.to_owned());
        self.write(move |tx| {
            let changed = tx
                .prepare_cached("UPDATE agents SET role = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![id, role, now_ms()])?;
            Ok(changed > 0)
        })
        .boxed()
    }

    fn identity_invalidate_tokens<'a>(
        &'a self,
        agent_id: &'a str,
        valid_after_ms: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let agent_id = agent_id.to_owned();
        self.write(move |tx| {
            // MAX: a late, slower revocation must never revive tokens an earlier one killed.
            let changed = tx
                .prepare_cached(
                    "UPDATE agents SET tokens_valid_after = MAX(tokens_valid_after, ?2), updated_at = ?2
                     WHERE id = ?1",
                )?
                .execute(params![agent_id, valid_after_ms])?;
            Ok(changed > 0)
        })
        .boxed()
    }

    fn identity_record_token(&self, token: TokenRow) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |tx| {
            let revoked_at = token.revoked.then_some(token.issued_at_ms);
            tx.prepare_cached(
                "INSERT INTO tokens (jti, agent_id, issued_at, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                token.jti,
                token.agent_id,
                token.issued_at_ms,
                token.expires_at_ms,
                revoked_at
            ])?;
            Ok(())
        })
        .boxed()
    }

    fn identity_token<'a>(&'a self, jti: &'a str) -> BoxFuture<'a, Result<Option<TokenRow>, StoreError>> {
        let jti = jti.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT jti, agent_id, issued_at, expires_at, revoked_at FROM tokens WHERE jti = ?1")?
                .query_row(params![jti], |row| {
                    Ok(TokenRow {
                        jti: row.get(0)?,
                        agent_id: row.get(1)?,
                        issued_at_ms: row.get(2)?,
                        expires_at_ms: row.get(3)?,
                        revoked: row.get::<_, Option<i64>>(4)?.is_some(),
                    })
                })
                .optional()
        })
        .boxed()
    }

    fn identity_revoke_token<'a>(
        &'a self,
        jti: &'a str,
        agent_id: &'a str,
        expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (jti, agent_id) = (jti.to_owned(), agent_id.to_owned());
        self.write(move |tx| {
            let now = now_ms();
            tx.prepare_cached(
                "INSERT INTO tokens (jti, agent_id, issued_at, expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?3)
                 ON CONFLICT (jti) DO UPDATE SET revoked_at = COALESCE(tokens.revoked_at, excluded.revoked_at)",
            )?
            .execute(params![jti, agent_id, now, expires_at_ms])?;
            Ok(())
        })
        .boxed()
    }

    fn identity_create_session(&self, session: SessionRow) -> BoxFuture<'_, Result<(), StoreError>> {
        self.write(move |tx| {
            tx.prepare_cached("DELETE FROM sessions WHERE account_id = ?1 AND expires_at <= ?2")?
                .execute(params![session.account_id, session.created_at_ms])?;
            tx.prepare_cached(
                "INSERT INTO sessions (id_hash, account_id, agent_id, csrf_token, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                session.id_hash,
                session.account_id,
                session.agent_id,
                session.csrf_token,
                session.created_at_ms,
                session.expires_at_ms
            ])?;
            Ok(())
        })
        .boxed()
    }

    fn identity_session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, Result<Option<SessionRow>, StoreError>> {
        let id_hash = id_hash.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id_hash, account_id, agent_id, csrf_token, created_at, expires_at FROM sessions
                 WHERE id_hash = ?1",
            )?
            .query_row(params![id_hash], |row| {
                Ok(SessionRow {
                    id_hash: row.get(0)?,
                    account_id: row.get(1)?,
                    agent_id: row.get(2)?,
                    csrf_token: row.get(3)?,
                    created_at_ms: row.get(4)?,
                    expires_at_ms: row.get(5)?,
                })
            })
            .optional()
        })
        .boxed()
    }

    fn identity_delete_session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let id_hash = id_hash.to_owned();
        self.write(move |tx| {
            let deleted = tx
                .prepare_cached("DELETE FROM sessions WHERE id_hash = ?1")?
                .execute(params![id_hash])?;
            Ok(deleted > 0)
        })
        .boxed()
    }

    fn identity_create_reset<'a>(
        &'a self,
        token_hash: &'a str,
        account_id: &'a str,
        expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let (token_hash, account_id) = (token_hash.to_owned(), account_id.to_owned());
        self.write(move |tx| {
            let now = now_ms();
            tx.prepare_cached("DELETE FROM password_resets WHERE expires_at <= ?1")?
                .execute(params![now])?;
            tx.prepare_cached(
                "INSERT INTO password_resets (token_hash, account_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![token_hash, account_id, now, expires_at_ms])?;
            Ok(())
        })
        .boxed()
    }

    fn identity_reset_password(&self, reset: PasswordReset) -> BoxFuture<'_, Result<bool, StoreError>> {
        self.write(move |tx| {
            let now = reset.now_ms;
            // The conditional UPDATE is the single-use guarantee: of two racing confirmations
            // only one sees `used_at IS NULL`.
            let consumed = tx
                .prepare_cached(
                    "UPDATE password_resets SET used_at = ?3
                     WHERE token_hash = ?1 AND account_id = ?2 AND used_at IS NULL AND expires_at > ?3",
                )?
                .execute(params![reset.token_hash, reset.account_id, now])?;
            if consumed == 0 {
                return Ok(false);
            }
            tx.prepare_cached("UPDATE accounts SET password_hash = ?2, updated_at = ?3 WHERE id = ?1")?
                .execute(params![reset.account_id, reset.password_hash, now])?;
            tx.prepare_cached("UPDATE password_resets SET used_at = ?2 WHERE account_id = ?1 AND used_at IS NULL")?
                .execute(params![reset.account_id, now])?;
            tx.prepare_cached("DELETE FROM sessions WHERE account_id = ?1")?
                .execute(params![reset.account_id])?;
            tx.prepare_cached(
                "UPDATE agents SET tokens_valid_after = MAX(tokens_valid_after, ?2), updated_at = ?2
                 WHERE id = (SELECT agent_id FROM accounts WHERE id = ?1)",
            )?
            .execute(params![reset.account_id, now])?;
            Ok(true)
        })
        .boxed()
    }

    fn identity_prune(&self, now_ms: i64) -> BoxFuture<'_, Result<usize, StoreError>> {
        self.write(move |tx| {
            let mut gone = 0;
            for sql in [
                "DELETE FROM sessions WHERE expires_at <= ?1",
                "DELETE FROM password_resets WHERE expires_at <= ?1",
                "DELETE FROM tokens WHERE expires_at <= ?1",
            ] {
                gone += tx.prepare_cached(sql)?.execute(params![now_ms])?;
            }
            Ok(gone)
        })
        .boxed()
    }
}

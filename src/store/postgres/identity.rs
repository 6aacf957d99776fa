//! Accounts, agents, issued and revoked tokens, browser sessions and password resets on the
//! PostgreSQL store (the `IdentityStore` trait; semantics pinned by the SQLite impl and its tests).
//!
//! Identity rows are not an owner's items under a quota, so writes take no owner lock: each one
//! is a single conditional statement (or a few in one transaction) whose outcome PostgreSQL's row
//! locks and unique indexes make exact under concurrency — a taken email stays taken when two
//! replicas sign up at once, a reset token is consumed once, `tokens_valid_after` never moves back.
//!
//! Cache invalidation across replicas (`pg_notify('agentos_identity', ...)` for every agent row
//! change, revoked token and deleted session) is done by triggers in
//! `migrations/postgres/0009_identity.sql`, inside each writing transaction, so every write below
//! notifies exactly when it commits.

use deadpool_postgres::GenericClient;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_postgres::Row;

use super::{PgStore, to_i64};
use crate::store::{AccountRow, AgentRow, IdentityStore, PasswordReset, SessionRow, StoreError, TokenRow, now_ms};

const AGENT_COLUMNS: &str = "id, name, description, owner_email, account_id, role, status, allowed_domains,
    allowed_tools, tokens_valid_after, created_at";

fn agent_from_row(row: &Row) -> Result<AgentRow, StoreError> {
    Ok(AgentRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        description: row.try_get(2)?,
        owner_email: row.try_get(3)?,
        account_id: row.try_get(4)?,
        role: row.try_get(5)?,
        status: row.try_get(6)?,
        allowed_domains: json_list(row, 7)?,
        allowed_tools: json_list(row, 8)?,
        tokens_valid_after_ms: row.try_get(9)?,
        created_at_ms: row.try_get(10)?,
    })
}

/// Lists are kept as JSON arrays of strings; a damaged one is reported, never read as empty
/// (an empty domain list would mean "any host").
fn json_list(row: &Row, index: usize) -> Result<Vec<String>, StoreError> {
    let text: String = row.try_get(index)?;
    serde_json::from_str(&text)
        .map_err(|error| StoreError::Corrupt(format!("an agent's list (column {index}) is not a JSON list: {error}")))
}

fn to_json(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

const INSERT_AGENT: &str = "INSERT INTO agents (id, name, description, owner_email, account_id, role, status,
        allowed_domains, allowed_tools, tokens_valid_after, created_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)";

/// Inserts an agent; `false` when its id is taken, or with `clash_is_error` a database error
/// (the unique violation), as SQLite's constraint failure is one.
async fn insert_agent(client: &impl GenericClient, agent: &AgentRow, clash_is_error: bool) -> Result<bool, StoreError> {
    let statement = if clash_is_error {
        client.prepare_cached(INSERT_AGENT).await?
    } else {
        client
            .prepare_cached(&format!("{INSERT_AGENT} ON CONFLICT (id) DO NOTHING"))
            .await?
    };
    let inserted = client
        .execute(
            &statement,
            &[
                &agent.id,
                &agent.name,
                &agent.description,
                &agent.owner_email,
                &agent.account_id,
                &agent.role,
                &agent.status,
                &to_json(&agent.allowed_domains),
                &to_json(&agent.allowed_tools),
                &agent.tokens_valid_after_ms,
                &agent.created_at_ms,
            ],
        )
        .await?;
    Ok(inserted > 0)
}

impl PgStore {
    /// One statement in autocommit: a single UPDATE is atomic, and its row lock orders it against
    /// concurrent writes to the same agent. `true` when a row matched.
    async fn identity_update(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await?;
        Ok(client.execute(&statement, params).await? > 0)
    }
}

impl IdentityStore for PgStore {
    fn identity_create_account(&self, account: AccountRow, agent: AgentRow) -> BoxFuture<'_, Result<bool, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let taken = tx.prepare_cached("SELECT 1 FROM accounts WHERE email = $1").await?;
            if tx.query_opt(&taken, &[&account.email]).await?.is_some() {
                return Ok(false);
            }
            // Agent ids are 64 random bits; a clash is a bug worth failing loudly on (an error,
            // not "email taken").
            insert_agent(&tx, &agent, true).await?;
            // Two sign-ups with one email racing past the check above: the unique index makes the
            // later one wait for the earlier and then insert nothing; it answers "taken" and
            // rolls back its agent (the transaction is dropped uncommitted), as on SQLite.
            let insert = tx
                .prepare_cached(
                    "INSERT INTO accounts (id, email, password_hash, agent_id, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5)
                     ON CONFLICT (email) DO NOTHING",
                )
                .await?;
            let inserted = tx
                .execute(
                    &insert,
                    &[
                        &account.id,
                        &account.email,
                        &account.password_hash,
                        &account.agent_id,
                        &account.created_at_ms,
                    ],
                )
                .await?;
            if inserted == 0 {
                return Ok(false);
            }
            tx.commit().await?;
            Ok(true)
        }
        .boxed()
    }

    fn identity_account_by_email<'a>(
        &'a self,
        email: &'a str,
    ) -> BoxFuture<'a, Result<Option<AccountRow>, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT id, email, password_hash, agent_id, created_at FROM accounts WHERE email = $1")
                .await?;
            let Some(row) = client.query_opt(&statement, &[&email]).await? else {
                return Ok(None);
            };
            Ok(Some(AccountRow {
                id: row.try_get(0)?,
                email: row.try_get(1)?,
                password_hash: row.try_get(2)?,
                agent_id: row.try_get(3)?,
                created_at_ms: row.try_get(4)?,
            }))
        }
        .boxed()
    }

    fn identity_create_agent(&self, agent: AgentRow) -> BoxFuture<'_, Result<bool, StoreError>> {
        async move {
            let client = self.client().await?;
            insert_agent(&client, &agent, false).await
        }
        .boxed()
    }

    fn identity_agent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<AgentRow>, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&format!("SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1"))
                .await?;
            client
                .query_opt(&statement, &[&id])
                .await?
                .as_ref()
                .map(agent_from_row)
                .transpose()
        }
        .boxed()
    }

    fn identity_agents<'a>(
        &'a self,
        account: Option<(&'a str, &'a str)>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AgentRow>, StoreError>> {
        async move {
            let client = self.client().await?;
            let after = after.unwrap_or("");
            let limit = to_i64(limit);
            // `id` is COLLATE "C": the cursor compares bytes, as SQLite's does.
            let rows = match account {
                None => {
                    let statement = client
                        .prepare_cached(&format!(
                            "SELECT {AGENT_COLUMNS} FROM agents WHERE id > $1 ORDER BY id LIMIT $2"
                        ))
                        .await?;
                    client.query(&statement, &[&after, &limit]).await?
                }
                Some((account, also)) => {
                    let statement = client
                        .prepare_cached(&format!(
                            "SELECT {AGENT_COLUMNS} FROM agents WHERE id > $1 AND (account_id = $2 OR id = $3) \
                             ORDER BY id LIMIT $4"
                        ))
                        .await?;
                    client.query(&statement, &[&after, &account, &also, &limit]).await?
                }
            };
            rows.iter().map(agent_from_row).collect()
        }
        .boxed()
    }

    fn identity_set_agent_tools<'a>(
        &'a self,
        id: &'a str,
        tools: Vec<String>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            self.identity_update(
                "UPDATE agents SET allowed_tools = $2, updated_at = $3 WHERE id = $1",
                &[&id, &to_json(&tools), &now_ms()],
            )
            .await
        }
        .boxed()
    }

    fn identity_set_agent_status<'a>(
        &'a self,
        id: &'a str,
        status: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            self.identity_update(
                "UPDATE agents SET status = $2, updated_at = $3 WHERE id = $1",
                &[&id, &status, &now_ms()],
            )
            .await
        }
        .boxed()
    }

    fn identity_set_agent_role<'a>(&'a self, id: &'a str, role: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            self.identity_update(
                "UPDATE agents SET role = $2, updated_at = $3 WHERE id = $1",
                &[&id, &role, &now_ms()],
            )
            .await
        }
        .boxed()
    }

    fn identity_invalidate_tokens<'a>(
        &'a self,
        agent_id: &'a str,
        valid_after_ms: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            // GREATEST, evaluated under the row lock: a late, slower revocation must never revive
            // tokens an earlier one killed, even when two replicas revoke at once.
            self.identity_update(
                "UPDATE agents SET tokens_valid_after = GREATEST(tokens_valid_after, $2), updated_at = $2
                 WHERE id = $1",
                &[&agent_id, &valid_after_ms],
            )
            .await
        }
        .boxed()
    }

    fn identity_record_token(&self, token: TokenRow) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            let revoked_at = token.revoked.then_some(token.issued_at_ms);
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "INSERT INTO tokens (jti, agent_id, issued_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .await?;
            client
                .execute(
                    &statement,
                    &[
                        &token.jti,
                        &token.agent_id,
                        &token.issued_at_ms,
                        &token.expires_at_ms,
                        &revoked_at,
                    ],
                )
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn identity_token<'a>(&'a self, jti: &'a str) -> BoxFuture<'a, Result<Option<TokenRow>, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT jti, agent_id, issued_at, expires_at, revoked_at FROM tokens WHERE jti = $1")
                .await?;
            let Some(row) = client.query_opt(&statement, &[&jti]).await? else {
                return Ok(None);
            };
            Ok(Some(TokenRow {
                jti: row.try_get(0)?,
                agent_id: row.try_get(1)?,
                issued_at_ms: row.try_get(2)?,
                expires_at_ms: row.try_get(3)?,
                revoked: row.try_get::<_, Option<i64>>(4)?.is_some(),
            }))
        }
        .boxed()
    }

    fn identity_revoke_token<'a>(
        &'a self,
        jti: &'a str,
        agent_id: &'a str,
        expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let client = self.client().await?;
            // An upsert is atomic against a concurrent record or revoke of the same jti.
            let statement = client
                .prepare_cached(
                    "INSERT INTO tokens (jti, agent_id, issued_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $3)
                     ON CONFLICT (jti) DO UPDATE SET revoked_at = COALESCE(tokens.revoked_at, excluded.revoked_at)",
                )
                .await?;
            client
                .execute(&statement, &[&jti, &agent_id, &now_ms(), &expires_at_ms])
                .await?;
            Ok(())
        }
        .boxed()
    }

    fn identity_create_session(&self, session: SessionRow) -> BoxFuture<'_, Result<(), StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let expired = tx
                .prepare_cached("DELETE FROM sessions WHERE account_id = $1 AND expires_at <= $2")
                .await?;
            tx.execute(&expired, &[&session.account_id, &session.created_at_ms])
                .await?;
            let insert = tx
                .prepare_cached(
                    "INSERT INTO sessions (id_hash, account_id, agent_id, csrf_token, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await?;
            tx.execute(
                &insert,
                &[
                    &session.id_hash,
                    &session.account_id,
                    &session.agent_id,
                    &session.csrf_token,
                    &session.created_at_ms,
                    &session.expires_at_ms,
                ],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .boxed()
    }

    fn identity_session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, Result<Option<SessionRow>, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT id_hash, account_id, agent_id, csrf_token, created_at, expires_at FROM sessions
                     WHERE id_hash = $1",
                )
                .await?;
            let Some(row) = client.query_opt(&statement, &[&id_hash]).await? else {
                return Ok(None);
            };
            Ok(Some(SessionRow {
                id_hash: row.try_get(0)?,
                account_id: row.try_get(1)?,
                agent_id: row.try_get(2)?,
                csrf_token: row.try_get(3)?,
                created_at_ms: row.try_get(4)?,
                expires_at_ms: row.try_get(5)?,
            }))
        }
        .boxed()
    }

    fn identity_delete_session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            self.identity_update("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])
                .await
        }
        .boxed()
    }

    fn identity_create_reset<'a>(
        &'a self,
        token_hash: &'a str,
        account_id: &'a str,
        expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        async move {
            let now = now_ms();
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let expired = tx
                .prepare_cached("DELETE FROM password_resets WHERE expires_at <= $1")
                .await?;
            tx.execute(&expired, &[&now]).await?;
            let insert = tx
                .prepare_cached(
                    "INSERT INTO password_resets (token_hash, account_id, created_at, expires_at)
                     VALUES ($1, $2, $3, $4)",
                )
                .await?;
            tx.execute(&insert, &[&token_hash, &account_id, &now, &expires_at_ms])
                .await?;
            tx.commit().await?;
            Ok(())
        }
        .boxed()
    }

    fn identity_reset_password(&self, reset: PasswordReset) -> BoxFuture<'_, Result<bool, StoreError>> {
        async move {
            let now = reset.now_ms;
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // The conditional UPDATE is the single-use guarantee: of two racing confirmations
            // (on any replicas) the later waits for the earlier's row lock, then re-checks
            // `used_at IS NULL` against the committed row and changes nothing.
            let consume = tx
                .prepare_cached(
                    "UPDATE password_resets SET used_at = $3
                     WHERE token_hash = $1 AND account_id = $2 AND used_at IS NULL AND expires_at > $3",
                )
                .await?;
            if tx
                .execute(&consume, &[&reset.token_hash, &reset.account_id, &now])
                .await?
                == 0
            {
                return Ok(false);
            }
            let password = tx
                .prepare_cached("UPDATE accounts SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .await?;
            tx.execute(&password, &[&reset.account_id, &reset.password_hash, &now])
                .await?;
            let others = tx
                .prepare_cached("UPDATE password_resets SET used_at = $2 WHERE account_id = $1 AND used_at IS NULL")
                .await?;
            tx.execute(&others, &[&reset.account_id, &now]).await?;
            // Each deleted session and the agent's raised `tokens_valid_after` notify (triggers).
            let sessions = tx.prepare_cached("DELETE FROM sessions WHERE account_id = $1").await?;
            tx.execute(&sessions, &[&reset.account_id]).await?;
            let tokens = tx
                .prepare_cached(
                    "UPDATE agents SET tokens_valid_after = GREATEST(tokens_valid_after, $2), updated_at = $2
                     WHERE id = (SELECT agent_id FROM accounts WHERE id = $1)",
                )
                .await?;
            tx.execute(&tokens, &[&reset.account_id, &now]).await?;
            tx.commit().await?;
            Ok(true)
        }
        .boxed()
    }

    fn identity_prune(&self, now_ms: i64) -> BoxFuture<'_, Result<usize, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let mut gone = 0;
            for sql in [
                "DELETE FROM sessions WHERE expires_at <= $1",
                "DELETE FROM password_resets WHERE expires_at <= $1",
                "DELETE FROM tokens WHERE expires_at <= $1",
            ] {
                let statement = tx.prepare_cached(sql).await?;
                gone += tx.execute(&statement, &[&now_ms]).await?;
            }
            tx.commit().await?;
            Ok(usize::try_from(gone).unwrap_or(usize::MAX))
        }
        .boxed()
    }
}

#[cfg(test)]
pub(super) mod tests;

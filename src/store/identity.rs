//! Accounts, agents, issued and revoked tokens, browser sessions and password resets.
//!
//! Times are epoch milliseconds. Secrets never reach this table set in the clear: passwords are
//! argon2 hashes, session ids and reset tokens are SHA-256 hashes.

mod sqlite;
#[cfg(test)]
mod tests;

use futures::future::BoxFuture;

use super::{Migration, StoreError};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    name: "identity_1",
    sql: "CREATE TABLE agents (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        description TEXT,
        owner_email TEXT,
        account_id TEXT,
        role TEXT NOT NULL,
        status TEXT NOT NULL,
        allowed_domains TEXT NOT NULL,
        allowed_tools TEXT NOT NULL,
        tokens_valid_after INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX agents_account ON agents (account_id);
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        agent_id TEXT NOT NULL REFERENCES agents (id),
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE tokens (
        jti TEXT PRIMARY KEY,
        agent_id TEXT NOT NULL,
        issued_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX tokens_expiry ON tokens (expires_at);
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        csrf_token TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX sessions_account ON sessions (account_id);
    CREATE INDEX sessions_expiry ON sessions (expires_at);
    CREATE TABLE password_resets (
        token_hash TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX password_resets_account ON password_resets (account_id);",
}];

/// A person's sign-in: an email, a password hash and the agent that acts for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub id: String,
    pub email: String,
    pub password_hash: String,
    pub agent_id: String,
    pub created_at_ms: i64,
}

/// An agent as stored. `role` and `status` are the identity service's words ("operator",
/// "active", ...); the store keeps them as text so it does not depend on the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub owner_email: Option<String>,
    pub account_id: Option<String>,
    pub role: String,
    pub status: String,
    pub allowed_domains: Vec<String>,
    pub allowed_tools: Vec<String>,
    /// Tokens issued before this instant are dead (set by a revocation or a password reset).
    pub tokens_valid_after_ms: i64,
    pub created_at_ms: i64,
}

/// A bearer token the service issued (never the token itself, only its id and lifetime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub jti: String,
    pub agent_id: String,
    pub issued_at_ms: i64,
    pub expires_at_ms: i64,
    pub revoked: bool,
}

/// A browser session; `id_hash` is the SHA-256 of the cookie, so a leaked table cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id_hash: String,
    pub account_id: String,
    pub agent_id: String,
    pub csrf_token: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// Everything a successful password reset changes, applied in one transaction.
#[derive(Debug, Clone)]
pub struct PasswordReset {
    pub token_hash: String,
    pub account_id: String,
    pub password_hash: String,
    pub now_ms: i64,
}

pub trait IdentityStore: Send + Sync {
    /// Creates an account together with its agent; `false` when the email is already taken.
    fn identity_create_account(&self, account: AccountRow, agent: AgentRow) -> BoxFuture<'_, Result<bool, StoreError>>;
    fn identity_account_by_email<'a>(&'a self, email: &'a str)
    -> BoxFuture<'a, Result<Option<AccountRow>, StoreError>>;
    /// Creates an agent; `false` when the id is already taken.
    fn identity_create_agent(&self, agent: AgentRow) -> BoxFuture<'_, Result<bool, StoreError>>;
    fn identity_agent<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<AgentRow>, StoreError>>;
    /// Agents in id order after `after` (a page of at most `limit`): every agent, or with
    /// `account` those of that account and the agent `also` (an operator and its own agents).
    fn identity_agents<'a>(
        &'a self,
        account: Option<(&'a str, &'a str)>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AgentRow>, StoreError>>;
    /// Replaces an agent's allowed tools; `false` when there is no such agent.
    fn identity_set_agent_tools<'a>(
        &'a self,
        id: &'a str,
        tools: Vec<String>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Sets an agent's status ("active" or "disabled"); `false` when there is no such agent.
    fn identity_set_agent_status<'a>(&'a self, id: &'a str, status: &'a str)
    -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Sets an agent's role ("agent", "operator", "ops-admin"); `false` when there is no such agent.
    fn identity_set_agent_role<'a>(&'a self, id: &'a str, role: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Kills every token of the agent issued before `valid_after_ms`; `false` when there is no such agent.
    fn identity_invalidate_tokens<'a>(
        &'a self,
        agent_id: &'a str,
        valid_after_ms: i64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Records an issued token so an operator can later revoke it by id.
    fn identity_record_token(&self, token: TokenRow) -> BoxFuture<'_, Result<(), StoreError>>;
    fn identity_token<'a>(&'a self, jti: &'a str) -> BoxFuture<'a, Result<Option<TokenRow>, StoreError>>;
    /// Marks a token revoked, recording it first if it was never recorded.
    fn identity_revoke_token<'a>(
        &'a self,
        jti: &'a str,
        agent_id: &'a str,
        expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Stores a session and drops the account's expired ones.
    fn identity_create_session(&self, session: SessionRow) -> BoxFuture<'_, Result<(), StoreError>>;
    fn identity_session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, Result<Option<SessionRow>, StoreError>>;
    fn identity_delete_session<'a>(&'a self, id_hash: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Stores a reset token's hash and drops expired reset tokens.
    fn identity_create_reset<'a>(
        &'a self,
        token_hash: &'a str,
        account_id: &'a str,
        expires_at_ms: i64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Consumes the reset token (once, even under races) and, only if that succeeded, sets the
    /// new password, uses up the account's other reset tokens, deletes its sessions and kills
    /// its agent's tokens issued until now. `false` when the token is unknown, expired or used.
    fn identity_reset_password(&self, reset: PasswordReset) -> BoxFuture<'_, Result<bool, StoreError>>;
    /// Deletes expired sessions, reset tokens and token records; returns how many rows went.
    fn identity_prune(&self, now_ms: i64) -> BoxFuture<'_, Result<usize, StoreError>>;
}

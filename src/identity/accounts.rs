//! Accounts and browser sessions: sign-up, sign-in, sign-out, and turning a session cookie back
//! into its account agent's caller.

use std::sync::Arc;

use chrono::Duration;

use super::error::{AuthError, IdentityError};
use super::types::{ACTIVE, AuthMethod, Authenticated, NewSession, SignedIn, SigninRequest, SignupRequest};
use super::{Identity, caller_of, crypto, types, validate};
use crate::registry::Role;
use crate::store::{AccountRow, AgentRow, SessionRow, now_ms};

/// What a registered agent may call unless its registration names less.
pub(crate) const DEFAULT_TOOLS: &str = "agentos.*";
/// What a signed-up account's own agent may call: the primitives, and the capabilities of the
/// skills it installs for itself (installing one is already the account's own decision; a skill's
/// host calls stay within the primitives).
const ACCOUNT_TOOLS: [&str; 2] = [DEFAULT_TOOLS, "skill.*"];

impl Identity {
    /// Creates an account and its agent, starts a browser session and returns a bearer token.
    pub async fn signup(&self, request: SignupRequest) -> Result<SignedIn, IdentityError> {
        if !self.config.open_signup {
            return Err(IdentityError::SignupClosed);
        }
        let email = validate::email(&request.email, "email")?;
        validate::password(&request.password)?;
        // A blank agentName is what an untouched form field sends: treat it as absent.
        let name = match request.agent_name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => validate::name(name, "agentName")?,
            _ => email.split('@').next().unwrap_or_default().chars().take(200).collect(),
        };
        // Spares the argon2 run for the common mistake; the insert below settles races.
        if self.store.identity_account_by_email(&email).await?.is_some() {
            return Err(IdentityError::EmailTaken);
        }
        let password_hash = crypto::hash_password(request.password).await?;
        let now = now_ms();
        let account_id = format!("acct_{}", uuid::Uuid::new_v4().simple());
        let role = self.account_role(&email);
        let agent = AgentRow {
            id: crypto::new_agent_id()?,
            name,
            description: None,
            owner_email: Some(email.clone()),
            account_id: Some(account_id.clone()),
            role: role.as_str().to_owned(),
            status: ACTIVE.to_owned(),
            allowed_domains: Vec::new(),
            allowed_tools: ACCOUNT_TOOLS.map(str::to_owned).to_vec(),
            tokens_valid_after_ms: 0,
            created_at_ms: now,
        };
        let account = AccountRow {
            id: account_id,
            email,
            password_hash,
            agent_id: agent.id.clone(),
            created_at_ms: now,
        };
        if !self
            .store
            .identity_create_account(account.clone(), agent.clone())
            .await?
        {
            return Err(IdentityError::EmailTaken);
        }
        tracing::info!(agent = %agent.id, role = role.as_str(), "account created");
        self.signed_in(&account, &agent).await
    }

    /// Checks an email and password, starts a browser session and returns a fresh bearer token.
    /// A wrong password and an unknown email are refused alike, in about the same time.
    pub async fn signin(&self, request: SigninRequest) -> Result<SignedIn, IdentityError> {
        let email = request.email.trim().to_lowercase();
        let account = self.store.identity_account_by_email(&email).await?;
        let stored = account.as_ref().map(|account| account.password_hash.clone());
        if !crypto::verify_password(request.password, stored).await? {
            return Err(IdentityError::InvalidCredentials);
        }
        let account = account.ok_or(IdentityError::InvalidCredentials)?;
        let mut agent = self.active_agent(&account.agent_id).await?;
        // `admin_emails` may have changed since sign-up: the account's role follows it.
        let role = self.account_role(&account.email);
        if agent.role != role.as_str() {
            self.store.identity_set_agent_role(&agent.id, role.as_str()).await?;
            self.cache.clear();
            tracing::info!(agent = %agent.id, role = role.as_str(), "account role follows identity.admin_emails");
            agent.role = role.as_str().to_owned();
        }
        self.signed_in(&account, &agent).await
    }

    /// An account agent's role: ops-admin when its email is in `identity.admin_emails`.
    fn account_role(&self, email: &str) -> Role {
        let admin = self
            .config
            .admin_emails
            .iter()
            .any(|admin| admin.trim().eq_ignore_ascii_case(email));
        if admin { Role::OpsAdmin } else { Role::Operator }
    }

    /// Ends what `auth` came with: deletes the browser session, or revokes the bearer token's jti.
    pub async fn sign_out(&self, auth: &Authenticated) -> Result<(), IdentityError> {
        match &auth.via {
            AuthMethod::Session { session_id, .. } => {
                self.store.identity_delete_session(session_id).await?;
                Ok(())
            }
            AuthMethod::Bearer { jti, expires_at } => {
                self.revoke_jti(jti, &auth.caller.agent_id, expires_at.timestamp_millis())
                    .await
            }
        }
    }

    /// Turns a session cookie into its account agent's caller.
    pub async fn authenticate_session(&self, cookie_value: &str) -> Result<Authenticated, AuthError> {
        let cookie = cookie_value.trim();
        if cookie.is_empty() {
            return Err(AuthError::Missing);
        }
        let session_id = crypto::sha256_hex(cookie);
        let session = self
            .store
            .identity_session(&session_id)
            .await?
            .ok_or(AuthError::SessionExpired)?;
        if session.expires_at_ms <= now_ms() {
            return Err(AuthError::SessionExpired);
        }
        let agent = self
            .store
            .identity_agent(&session.agent_id)
            .await?
            .filter(|agent| !super::squats_reserved_name(agent))
            .ok_or(AuthError::UnknownAgent)?;
        if agent.status != ACTIVE {
            return Err(AuthError::AgentDisabled);
        }
        Ok(Authenticated {
            caller: Arc::new(caller_of(&agent)),
            agent_name: agent.name,
            via: AuthMethod::Session {
                session_id,
                csrf_token: session.csrf_token,
                expires_at: types::to_datetime(session.expires_at_ms),
            },
        })
    }

    async fn signed_in(&self, account: &AccountRow, agent: &AgentRow) -> Result<SignedIn, IdentityError> {
        let session = self.start_session(account, agent).await?;
        let credentials = self.issue(agent).await?;
        Ok(SignedIn {
            credentials,
            agent_name: agent.name.clone(),
            session,
        })
    }

    /// A new session; only the cookie's hash is stored.
    async fn start_session(&self, account: &AccountRow, agent: &AgentRow) -> Result<NewSession, IdentityError> {
        let cookie_value = crypto::random_token()?;
        let csrf_token = crypto::random_token()?;
        let now = now_ms();
        let expires_at_ms = now + Duration::hours(i64::from(self.config.session_ttl_hours)).num_milliseconds();
        self.store
            .identity_create_session(SessionRow {
                id_hash: crypto::sha256_hex(&cookie_value),
                account_id: account.id.clone(),
                agent_id: agent.id.clone(),
                csrf_token: csrf_token.clone(),
                created_at_ms: now,
                expires_at_ms,
            })
            .await?;
        Ok(NewSession {
            cookie_value,
            csrf_token,
            expires_at: types::to_datetime(expires_at_ms),
        })
    }
}

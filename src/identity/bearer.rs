//! Bearer tokens as the service uses them: authenticating a request, minting a fresh token, and
//! the operator actions that revoke one token or all of an agent's.

use std::sync::Arc;

use super::error::{AuthError, IdentityError};
use super::types::{ACTIVE, AuthMethod, Authenticated, Credentials, to_datetime};
use super::{Identity, caller_of};
use crate::registry::{Caller, StopKind};
use crate::store::now_ms;

impl Identity {
    /// Verifies a bearer token (without the `Bearer ` prefix) and returns who it belongs to.
    /// A token verified before is answered from the cache, shared rather than copied: this runs
    /// on every request.
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Arc<Authenticated>, AuthError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let now = now_ms();
        if let Some(auth) = self.cache.get(token, now) {
            return Ok(auth);
        }
        let claims = self.signer.verify(token)?;
        if self.revoked.contains_key(&claims.jti) {
            return Err(AuthError::Revoked);
        }
        let (record, agent) = tokio::try_join!(
            self.store.identity_token(&claims.jti),
            self.store.identity_agent(&claims.sub)
        )?;
        if record.as_ref().is_some_and(|record| record.revoked) {
            self.revoked.insert(claims.jti.clone(), claims.exp * 1000);
            return Err(AuthError::Revoked);
        }
        let agent = agent
            .filter(|agent| !super::squats_reserved_name(agent))
            .ok_or(AuthError::UnknownAgent)?;
        if agent.status != ACTIVE {
            return Err(AuthError::AgentDisabled);
        }
        if claims.iat.saturating_mul(1000) < agent.tokens_valid_after_ms {
            return Err(AuthError::Revoked);
        }
        let auth = Arc::new(Authenticated {
            caller: Arc::new(caller_of(&agent)),
            agent_name: agent.name,
            via: AuthMethod::Bearer {
                expires_at: to_datetime(claims.exp * 1000),
                jti: claims.jti,
            },
        });
        self.cache.insert(token, auth.clone(), claims.exp * 1000);
        Ok(auth)
    }

    /// A fresh bearer token for the authenticated agent (the old one stays valid).
    pub async fn mint_token(&self, auth: &Authenticated) -> Result<Credentials, IdentityError> {
        let agent = self.active_agent(&auth.caller.agent_id).await?;
        self.issue(&agent).await
    }

    /// Operator action: a fresh bearer token for `agent_id`, an active agent `by` oversees (its
    /// other tokens stay valid).
    pub async fn mint_token_for(&self, by: &Caller, agent_id: &str) -> Result<Credentials, IdentityError> {
        let agent = self.active_agent(agent_id).await?;
        if !by.oversees(&agent.id, agent.account_id.as_deref()) {
            return Err(IdentityError::Forbidden(format!(
                "you do not oversee agent `{agent_id}`; only its account's operator or an ops-admin may \
                 mint it a token"
            )));
        }
        self.issue(&agent).await
    }

    /// Operator action: revoke one token by jti (the token's agent must be overseen by `by`).
    pub async fn revoke_token(&self, by: &Caller, jti: &str) -> Result<(), IdentityError> {
        let record = self
            .store
            .identity_token(jti)
            .await?
            .ok_or_else(|| IdentityError::TokenNotFound(jti.to_owned()))?;
        let agent = self.store.identity_agent(&record.agent_id).await?;
        let account_id = agent.as_ref().and_then(|agent| agent.account_id.as_deref());
        if !by.oversees(&record.agent_id, account_id) {
            return Err(IdentityError::Forbidden(format!(
                "token `{jti}` belongs to an agent you do not oversee; only its agent, its account's operator \
                 or an ops-admin may revoke it"
            )));
        }
        self.revoke_jti(jti, &record.agent_id, record.expires_at_ms).await
    }

    /// Operator action: revoke every token of `agent_id` issued until now (overseen by `by`).
    /// Tokens minted afterwards work.
    pub async fn revoke_agent_tokens(&self, by: &Caller, agent_id: &str) -> Result<(), IdentityError> {
        let agent = self
            .store
            .identity_agent(agent_id)
            .await?
            .ok_or_else(|| IdentityError::AgentNotFound(agent_id.to_owned()))?;
        if !by.oversees(&agent.id, agent.account_id.as_deref()) {
            return Err(IdentityError::Forbidden(format!(
                "you do not oversee agent `{agent_id}`; only the agent itself, its account's operator or an \
                 ops-admin may revoke its tokens"
            )));
        }
        self.store.identity_invalidate_tokens(agent_id, now_ms()).await?;
        self.cache.clear();
        self.announce_stop(agent_id, StopKind::CredentialsRevoked);
        Ok(())
    }

    /// Revokes one token in the store and in memory, and forgets every cached verification.
    pub(super) async fn revoke_jti(&self, jti: &str, agent_id: &str, expires_at_ms: i64) -> Result<(), IdentityError> {
        self.store.identity_revoke_token(jti, agent_id, expires_at_ms).await?;
        self.revoked.insert(jti.to_owned(), expires_at_ms);
        self.cache.clear();
        Ok(())
    }
}

//! Identity: accounts, agents, passwords, bearer tokens and browser sessions. This is the gate
//! that turns a credential into the [`Caller`] every registry call runs as.
//!
//! # Layout
//! - this file: the [`Identity`] service, agent lookups and the [`CallerDirectory`] it offers.
//! - `accounts`: sign-up, sign-in, sign-out and browser sessions.
//! - `agents`: registering agents, the local owner, disabling agents.
//! - `bearer`: token verification, minting and revocation.
//! - `reset`: forgotten passwords and the outbox that delivers reset tokens.
//! - `gate`: the audit records of the gate's steps (sign-in, sign-up, ...).
//! - `tools`: the operator actions as `agentos.*` tools (list, create, disable and enable
//!   agents; revoke tokens), so they pass the registry's pipeline like every call.
//! - `tokens`, `crypto`, `validate`: JWT signing, hashing and key files, input rules.

mod accounts;
mod agents;
mod bearer;
mod crypto;
mod error;
mod gate;
mod reset;
mod tokens;
pub mod tools;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};

use dashmap::DashMap;
use futures::FutureExt;
use futures::future::BoxFuture;

pub use error::{AuthError, IdentityError};
pub use gate::{Attributed, GateStep};
pub use types::{
    AgentRecord, AuthMethod, Authenticated, Credentials, NewSession, RegisterRequest, Registered, ResetConfirm,
    SignedIn, SigninRequest, SignupRequest,
};

use crate::config::{Config, IdentityConfig};
use crate::registry::{Caller, CallerDirectory, Registry, Role, ToolPolicy};
use crate::store::{AgentRow, Store, StoreChange, TokenRow, now_ms};
use tokens::{Signer, TokenCache};
use types::ACTIVE;

/// The identity service; shared as `Arc<Identity>` by every front door.
pub struct Identity {
    store: Arc<dyn Store>,
    config: IdentityConfig,
    data_dir: PathBuf,
    signer: Signer,
    cache: TokenCache,
    /// Revoked token ids this process knows of, with their expiry (ms) so they can be pruned.
    revoked: DashMap<String, i64>,
    /// What the local owner may use (`access.allowed_tools`), for when its agent row does not
    /// exist yet (`agentos mcp` never creates it).
    owner_tools: ToolPolicy,
    /// The registry: where the gate's audit records go and who hears that an agent was stopped
    /// (see `gate`); weak: the registry holds our tools.
    audit: OnceLock<Weak<Registry>>,
    /// Self-service registrations per client address (`registrations_per_address_per_hour`).
    registrations: agents::RegistrationLimiter,
    /// A digest of the signing key, which replicas sharing a store compare (never the key).
    key_check: Vec<u8>,
}

impl Identity {
    /// Loads or creates the signing key: `config.identity.signing_key` if non-empty, else
    /// `<data_dir>/jwt.key` (random 64 bytes, created with mode 0600, reused on later starts).
    pub fn open(store: Arc<dyn Store>, config: &Config) -> Result<Arc<Self>, IdentityError> {
        let key = crypto::signing_key(&config.identity.signing_key, &config.data_dir)?;
        crypto::warm_up();
        let changes = store.changes();
        let identity = Arc::new(Self {
            store,
            signer: Signer::new(&key, &config.identity.issuer, config.identity.token_ttl_days),
            config: config.identity.clone(),
            data_dir: config.data_dir.clone(),
            cache: TokenCache::default(),
            revoked: DashMap::new(),
            owner_tools: config.access.allowed_tools.clone(),
            audit: OnceLock::new(),
            registrations: agents::RegistrationLimiter::new(config.identity.registrations_per_address_per_hour),
            key_check: {
                use sha2::Digest;
                sha2::Sha256::new()
                    .chain_update(b"agentos token signing key check\0")
                    .chain_update(&key)
                    .finalize()
                    .to_vec()
            },
        });
        if let Some(changes) = changes {
            forget_on_change(Arc::downgrade(&identity), changes);
        }
        Ok(identity)
    }

    /// A digest of the token signing key (never the key): replicas sharing a store compare it.
    pub fn signing_key_check(&self) -> &[u8] {
        &self.key_check
    }

    /// The agent as clients see it, disabled or not; `None` when there is no such agent.
    pub async fn agent(&self, agent_id: &str) -> Result<Option<AgentRecord>, IdentityError> {
        Ok(self.store.identity_agent(agent_id).await?.map(AgentRecord::from_row))
    }

    /// How many calls `agent_id` has made and when it was last active (epoch ms), as the audit
    /// writer counts them.
    pub async fn activity(&self, agent_id: &str) -> Result<(u64, Option<i64>), IdentityError> {
        Ok(self.store.activity(agent_id).await?)
    }

    /// Deletes expired sessions, reset tokens and token records, and forgets expired revocations.
    /// Meant to run now and then (e.g. hourly); returns how many stored rows went.
    pub async fn prune_expired(&self) -> Result<usize, IdentityError> {
        let now = now_ms();
        self.revoked.retain(|_, expires_at| *expires_at > now);
        self.registrations.forget_idle();
        Ok(self.store.identity_prune(now).await?)
    }

    /// An agent's row, refusing unknown and disabled agents.
    async fn active_agent(&self, agent_id: &str) -> Result<AgentRow, IdentityError> {
        let agent = self
            .store
            .identity_agent(agent_id)
            .await?
            .ok_or_else(|| IdentityError::AgentNotFound(agent_id.to_owned()))?;
        if agent.status != ACTIVE {
            return Err(IdentityError::AgentDisabled(agent.id));
        }
        Ok(agent)
    }

    /// Signs a fresh token for `agent` and records it, so an operator can revoke it by id.
    async fn issue(&self, agent: &AgentRow) -> Result<Credentials, IdentityError> {
        let claims = self.signer.claims(&agent.id, now_ms(), agent.tokens_valid_after_ms);
        let bearer_token = self.signer.sign(&claims)?;
        self.store
            .identity_record_token(TokenRow {
                jti: claims.jti.clone(),
                agent_id: agent.id.clone(),
                issued_at_ms: claims.iat * 1000,
                expires_at_ms: claims.exp * 1000,
                revoked: false,
            })
            .await?;
        Ok(Credentials {
            agent_id: agent.id.clone(),
            bearer_token,
            jti: claims.jti,
            expires_at: types::to_datetime(claims.exp * 1000),
            expires_in_days: self.config.token_ttl_days,
        })
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key: Debug output ends up in logs.
        f.debug_struct("Identity")
            .field("issuer", &self.config.issuer)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// Whether a stored agent squats a name the server uses for itself (registered before the name
/// was reserved): its credentials are refused as if the agent did not exist, so it can never act
/// as, or read the records of, `anonymous`, `system` and the like.
fn squats_reserved_name(agent: &AgentRow) -> bool {
    agent.id != Caller::OWNER_ID && Caller::RESERVED_IDS.contains(&agent.id.as_str())
}

/// The caller an agent acts as: its role, account, tool policy and domain allowlist.
fn caller_of(agent: &AgentRow) -> Caller {
    let tools = ToolPolicy::parse(&agent.allowed_tools).unwrap_or_else(|error| {
        // Stored patterns were checked on the way in; a damaged list grants nothing, not everything.
        tracing::error!(agent = %agent.id, %error, "stored allowed tools are invalid; granting none");
        ToolPolicy::none()
    });
    Caller {
        agent_id: Arc::from(agent.id.as_str()),
        role: Role::parse(&agent.role).unwrap_or(Role::Agent),
        account_id: agent.account_id.as_deref().map(Arc::from),
        tools,
        allowed_domains: Arc::from(agent.allowed_domains.clone()),
        skill: None,
    }
}

impl CallerDirectory for Identity {
    fn lookup<'a>(&'a self, agent_id: &'a str) -> BoxFuture<'a, Option<Caller>> {
        async move {
            match self.store.identity_agent(agent_id).await {
                Ok(Some(agent)) if agent.status == ACTIVE && !squats_reserved_name(&agent) => Some(caller_of(&agent)),
                Ok(None) if agent_id == Caller::OWNER_ID => Some(Caller::owner(self.owner_tools.clone())),
                Ok(_) => None,
                Err(error) => {
                    tracing::error!(agent = %agent_id, %error, "cannot look up a caller");
                    None
                }
            }
        }
        .boxed()
    }
}

/// On a store replicas share: drops every cached verification when any replica changes an agent
/// or ends a session (or the feed was interrupted), so a revocation or a disabled agent takes
/// effect here as soon as it commits, not after [`tokens`]' recheck delay. Clearing all is
/// cheap (the next request of each token re-verifies once) and cannot miss a case.
fn forget_on_change(identity: std::sync::Weak<Identity>, mut changes: tokio::sync::broadcast::Receiver<StoreChange>) {
    tokio::spawn(async move {
        loop {
            let relevant = match changes.recv().await {
                Ok(StoreChange::Agent(_) | StoreChange::Session(_) | StoreChange::Resync) => true,
                Ok(_) => false,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => true,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let Some(identity) = identity.upgrade() else { return };
            if relevant {
                identity.cache.clear();
            }
        }
    });
}

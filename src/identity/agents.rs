//! Agents that are not an account's own: registered ones (self-service or by an operator), the
//! local owner, and enabling or disabling an agent.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

use super::accounts::DEFAULT_TOOLS;
use super::error::IdentityError;
use super::types::{ACTIVE, AgentRecord, DISABLED, PENDING, RegisterRequest, Registered};
use super::{Identity, crypto, validate};
use crate::config::SelfRegistration;
use crate::registry::{Caller, Role, StopKind, ToolPolicy};
use crate::store::{AgentRow, now_ms};

const OWNER_TOKEN_FILE: &str = "owner-token";

/// Self-service registrations per client address and hour: one address must not mint agents
/// without end (each brings its own quotas and rate limits).
pub(crate) struct RegistrationLimiter(
    governor::RateLimiter<
        IpAddr,
        governor::state::keyed::DefaultKeyedStateStore<IpAddr>,
        governor::clock::DefaultClock,
    >,
);

impl RegistrationLimiter {
    pub fn new(per_hour: u32) -> Self {
        let per_hour = NonZeroU32::new(per_hour).unwrap_or(NonZeroU32::MIN);
        Self(governor::RateLimiter::keyed(governor::Quota::per_hour(per_hour)))
    }

    fn admit(&self, from: IpAddr) -> Result<(), IdentityError> {
        self.0
            .check_key(&from.to_canonical())
            .map_err(|_| IdentityError::TooManyRegistrations)
    }

    pub fn forget_idle(&self) {
        self.0.retain_recent();
    }
}

impl Identity {
    /// Self-service registration (`POST /register` without a token) from `from`, as
    /// `identity.self_registration` allows: a working agent, a `pending` one an operator must
    /// enable, or a refusal.
    pub async fn register_self(
        &self,
        request: RegisterRequest,
        from: Option<IpAddr>,
    ) -> Result<Registered, IdentityError> {
        let status = match self.config.registration() {
            SelfRegistration::Closed => return Err(IdentityError::RegistrationClosed),
            SelfRegistration::Open => ACTIVE,
            SelfRegistration::Approval => PENDING,
        };
        if let Some(from) = from {
            self.registrations.admit(from)?;
        }
        self.register(None, request, status).await
    }

    /// `by` registers an agent it owns.
    pub async fn register_agent(&self, by: &Caller, request: RegisterRequest) -> Result<Registered, IdentityError> {
        self.register(Some(by), request, ACTIVE).await
    }

    /// `by == None`: self-service registration. Otherwise `by` registers an agent it owns.
    async fn register(
        &self,
        by: Option<&Caller>,
        request: RegisterRequest,
        status: &str,
    ) -> Result<Registered, IdentityError> {
        let default_grant = policy(&[DEFAULT_TOOLS])?;
        // Who grants what: self-service agents get at most `agentos.*`; an operator hands on at
        // most what it holds itself.
        let (grant, account_id, default_tools) = match by {
            None => (default_grant.clone(), None, default_grant),
            Some(by) if by.role == Role::Agent => {
                return Err(IdentityError::Forbidden(
                    "an agent cannot register other agents; use an operator's bearer token".into(),
                ));
            }
            Some(by) => {
                let default = if default_grant.within(&by.tools) {
                    default_grant
                } else {
                    by.tools.clone()
                };
                (by.tools.clone(), by.account_id.as_deref().map(str::to_owned), default)
            }
        };
        validate::agent_id(&request.agent_id)?;
        let name = validate::name(&request.name, "name")?;
        let description = validate::description(request.description)?;
        let owner_email = match request.owner_email.as_deref().map(str::trim) {
            Some(email) if !email.is_empty() => Some(validate::email(email, "ownerEmail")?),
            _ => None,
        };
        let allowed_domains = validate::domains(request.allowed_domains.unwrap_or_default())?;
        let tools = match request.allowed_tools {
            Some(patterns) => policy(&patterns)?,
            None => default_tools,
        };
        let beyond = tools.beyond(&grant);
        if !beyond.is_empty() {
            let listed = beyond.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ");
            let hint = if by.is_none() {
                "self-registered agents may use only `agentos.*` tools; register with an operator's bearer token \
                 to grant more"
            } else {
                "you can hand on only tools you may use yourself"
            };
            return Err(IdentityError::Forbidden(format!(
                "allowedTools {listed} beyond what you may grant: {hint}"
            )));
        }
        let agent = AgentRow {
            id: request.agent_id,
            name,
            description,
            owner_email,
            account_id,
            role: Role::Agent.as_str().to_owned(),
            status: status.to_owned(),
            allowed_domains,
            allowed_tools: tools.patterns().to_vec(),
            tokens_valid_after_ms: 0,
            created_at_ms: now_ms(),
        };
        if !self.store.identity_create_agent(agent.clone()).await? {
            return Err(IdentityError::AgentExists(agent.id));
        }
        tracing::info!(agent = %agent.id, by = by.map(|c| &*c.agent_id), status, "agent registered");
        let credentials = self.issue(&agent).await?;
        Ok(Registered {
            agent: AgentRecord::from_row(agent),
            credentials,
        })
    }

    /// Creates the agent `owner` (Role::OpsAdmin, Caller::OWNER_ID) if missing and sets its tools to
    /// `owner_tools`; writes a fresh token to `<data_dir>/owner-token` (mode 0600) unless the file holds
    /// a token that still verifies. Returns the file's path.
    pub async fn ensure_owner(&self, owner_tools: &ToolPolicy) -> Result<PathBuf, IdentityError> {
        let tools = owner_tools.patterns().to_vec();
        let owner = AgentRow {
            id: Caller::OWNER_ID.to_owned(),
            name: Caller::OWNER_ID.to_owned(),
            description: Some("The local owner of this agentos".to_owned()),
            owner_email: None,
            account_id: None,
            role: Role::OpsAdmin.as_str().to_owned(),
            status: ACTIVE.to_owned(),
            allowed_domains: Vec::new(),
            allowed_tools: tools.clone(),
            tokens_valid_after_ms: 0,
            created_at_ms: now_ms(),
        };
        if !self.store.identity_create_agent(owner).await? {
            self.store.identity_set_agent_tools(Caller::OWNER_ID, tools).await?;
            self.cache.clear();
        }
        let path = self.data_dir.join(OWNER_TOKEN_FILE);
        if let Ok(text) = std::fs::read_to_string(&path)
            && let Ok(auth) = self.authenticate_bearer(text.trim()).await
            && &*auth.caller.agent_id == Caller::OWNER_ID
        {
            // Reused as is, but never left readable by others.
            make_private(&path)?;
            return Ok(path);
        }
        let agent = self.active_agent(Caller::OWNER_ID).await?;
        let credentials = self.issue(&agent).await?;
        crypto::write_private(&path, credentials.bearer_token.as_bytes(), false)
            .map_err(|e| IdentityError::internal(format!("cannot write {}: {e}", path.display())))?;
        tracing::info!(path = %path.display(), "wrote a new owner token");
        Ok(path)
    }

    /// Operator action: disable an agent (its tokens and sessions stop working at once) or enable
    /// it again. `by` must oversee the agent.
    pub async fn set_agent_active(&self, by: &Caller, agent_id: &str, active: bool) -> Result<(), IdentityError> {
        let agent = self
            .store
            .identity_agent(agent_id)
            .await?
            .ok_or_else(|| IdentityError::AgentNotFound(agent_id.to_owned()))?;
        if !by.oversees(&agent.id, agent.account_id.as_deref()) {
            return Err(IdentityError::Forbidden(format!(
                "you do not oversee agent `{agent_id}`; only its account's operator or an ops-admin may change it"
            )));
        }
        let status = if active { ACTIVE } else { DISABLED };
        self.store.identity_set_agent_status(agent_id, status).await?;
        self.cache.clear();
        if !active {
            self.announce_stop(agent_id, StopKind::Disabled);
        }
        Ok(())
    }
}

fn policy<S: AsRef<str>>(patterns: &[S]) -> Result<ToolPolicy, IdentityError> {
    ToolPolicy::parse(patterns).map_err(|e| IdentityError::InvalidToolPattern(e.to_string()))
}

#[cfg(unix)]
fn make_private(path: &std::path::Path) -> Result<(), IdentityError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| IdentityError::internal(format!("cannot restrict {}: {e}", path.display())))
}

#[cfg(not(unix))]
fn make_private(_path: &std::path::Path) -> Result<(), IdentityError> {
    Ok(())
}

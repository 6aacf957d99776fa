//! The audit of the gate: sign-up, sign-in, sessions, token minting, password reset and
//! self-service registration run before there is a caller to make a registry call, so they
//! leave their audit records here, through the registry's audit hook. A record says which step
//! (`gate:signin`), for whom (the agent, once known), how it ended and why it failed; it keeps
//! a digest of the subject (an email, an agent id), never a password or token.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Instant;

use super::types::{Credentials, Registered, SignedIn};
use super::{Identity, IdentityError};
use crate::registry::{AuditOutcome, AuditRecord, Caller, MAX_ERROR_CHARS, Registry, StopKind, input_digest, truncate};

/// One step of the gate, as its audit record names it.
#[derive(Debug, Clone, Copy)]
pub struct GateStep<'a> {
    /// `signup`, `signin`, `signout`, `session_token`, `forgot_password`, `reset_password`,
    /// `register`: recorded as `gate:<action>`.
    pub action: &'static str,
    /// The HTTP request's id, so the record matches the request's log lines.
    pub request_id: &'a str,
    /// Who presented credentials, if anyone did.
    pub caller: Option<&'a Caller>,
    /// What the step is about (an email, an agent id); only its SHA-256 is kept.
    pub subject: &'a str,
}

/// What a successful step tells about the agent it concerns.
pub trait Attributed {
    fn agent_id(&self) -> Option<&str> {
        None
    }
}

impl Attributed for () {}

impl Attributed for SignedIn {
    fn agent_id(&self) -> Option<&str> {
        Some(&self.credentials.agent_id)
    }
}

impl Attributed for Credentials {
    fn agent_id(&self) -> Option<&str> {
        Some(&self.agent_id)
    }
}

impl Attributed for Registered {
    fn agent_id(&self) -> Option<&str> {
        Some(&self.agent.agent_id)
    }
}

impl Identity {
    /// Sends gate records to `registry`'s audit hook from now on (set once, at start).
    pub fn audit_through(&self, registry: &Arc<Registry>) {
        if self.audit.set(Arc::downgrade(registry)).is_err() {
            tracing::warn!("the identity service's audit hook was set already; keeping it");
        }
    }

    /// Tells the registry that `agent_id` was stopped, so what runs for it stops too.
    pub(super) fn announce_stop(&self, agent_id: &str, kind: StopKind) {
        match self.audit.get().and_then(Weak::upgrade) {
            Some(registry) => registry.stop_agent(agent_id, kind),
            None => tracing::warn!(agent = agent_id, "no registry to tell that an agent was stopped"),
        }
    }

    /// Runs one step of the gate and leaves its audit record, success or failure.
    pub async fn audited<T: Attributed>(
        &self,
        step: GateStep<'_>,
        work: impl Future<Output = Result<T, IdentityError>>,
    ) -> Result<T, IdentityError> {
        let started = Instant::now();
        let time_ms = chrono::Utc::now().timestamp_millis();
        let outcome = work.await;
        if let Some(registry) = self.audit.get().and_then(Weak::upgrade) {
            let agent_id = match &outcome {
                Ok(done) => done.agent_id().map(Arc::from),
                Err(_) => None,
            }
            .or_else(|| step.caller.map(|caller| caller.agent_id.clone()))
            .unwrap_or_else(|| Arc::from(Caller::ANONYMOUS_ID));
            let (result, error) = match &outcome {
                Ok(_) => (AuditOutcome::Ok, None),
                Err(error) => (AuditOutcome::Error, Some(truncate(&error.to_string(), MAX_ERROR_CHARS))),
            };
            registry.audit_event(AuditRecord {
                time_ms,
                request_id: Arc::from(step.request_id),
                agent_id,
                account_id: step.caller.and_then(|caller| caller.account_id.clone()),
                tool: Arc::from(format!("gate:{}", step.action)),
                origin: None,
                input_digest: input_digest(&serde_json::Value::String(step.subject.trim().to_lowercase())),
                outcome: result,
                latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                error,
                skill: None,
            });
        }
        outcome
    }
}

//! Confirmation tokens: what a preview hands out and the run that follows must give back. A
//! token is good once, for a short time, for the caller it was issued to and the exact command
//! text it previewed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens held at once, beyond which the oldest go: a caller previewing in a loop cannot grow
/// memory without bound.
const MAX_OUTSTANDING: usize = 10_000;

struct Issued {
    agent_id: String,
    command: String,
    expires: Instant,
}

/// Why a token was refused; each says what to do instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("this confirmation token is unknown or was already used: run the command without it for a new preview")]
    Unknown,
    #[error("this confirmation token expired: run the command without it for a new preview")]
    Expired,
    #[error("this confirmation token was issued to another caller")]
    OtherCaller,
    #[error("this confirmation token was issued for another command: `{0}`")]
    OtherCommand(String),
}

pub struct Confirmations {
    ttl: Duration,
    issued: Mutex<HashMap<String, Issued>>,
}

impl Confirmations {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            issued: Mutex::new(HashMap::new()),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new token for `agent_id` to run `command`.
    pub fn issue(&self, agent_id: &str, command: &str) -> String {
        let token = format!("cfm_{}", uuid::Uuid::new_v4().simple());
        let now = Instant::now();
        let mut issued = self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        issued.retain(|_, held| held.expires > now);
        if issued.len() >= MAX_OUTSTANDING
            && let Some(oldest) = issued
                .iter()
                .min_by_key(|(_, held)| held.expires)
                .map(|(t, _)| t.clone())
        {
            issued.remove(&oldest);
        }
        issued.insert(
            token.clone(),
            Issued {
                agent_id: agent_id.to_owned(),
                command: command.to_owned(),
                expires: now + self.ttl,
            },
        );
        token
    }

    /// Spends `token` for `agent_id` running `command`. A token offered by another caller or
    /// for another command stays good for its own: a mistake elsewhere does not cancel it.
    pub fn redeem(&self, token: &str, agent_id: &str, command: &str) -> Result<(), Refused> {
        let mut issued = self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = issued.get(token).ok_or(Refused::Unknown)?;
        if held.expires <= Instant::now() {
            issued.remove(token);
            return Err(Refused::Expired);
        }
        if held.agent_id != agent_id {
            return Err(Refused::OtherCaller);
        }
        if held.command != command {
            return Err(Refused::OtherCommand(held.command.clone()));
        }
        issued.remove(token);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_once_for_its_caller_and_command() {
        let confirmations = Confirmations::new(Duration::from_secs(60));
        let token = confirmations.issue("alice", "mem set a 1");
        assert_eq!(
            confirmations.redeem(&token, "bob", "mem set a 1"),
            Err(Refused::OtherCaller)
        );
        assert_eq!(
            confirmations.redeem(&token, "alice", "mem set a 2"),
            Err(Refused::OtherCommand("mem set a 1".into()))
        );
        assert_eq!(confirmations.redeem(&token, "alice", "mem set a 1"), Ok(()));
        assert_eq!(
            confirmations.redeem(&token, "alice", "mem set a 1"),
            Err(Refused::Unknown)
        );
        assert_eq!(confirmations.redeem("cfm_made_up", "alice", "x"), Err(Refused::Unknown));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let confirmations = Confirmations::new(Duration::ZERO);
        let token = confirmations.issue("alice", "mem delete a");
        assert_eq!(
            confirmations.redeem(&token, "alice", "mem delete a"),
            Err(Refused::Expired)
        );
        assert_eq!(
            confirmations.redeem(&token, "alice", "mem delete a"),
            Err(Refused::Unknown)
        );
    }
}

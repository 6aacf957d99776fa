//! The identity service's errors: what went wrong with a request, and why a credential was refused.
//!
//! Messages go to clients as they are, so they say what to fix and never carry internals; the
//! internal detail of a 500 is logged where it happens.

use crate::store::StoreError;

/// A refused or failed identity request. `status` and `code` give the HTTP mapping.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(
        "`{field}` must be an email address like name@example.com: one `@`, a domain with a dot, no spaces, \
         at most 254 characters"
    )]
    InvalidEmail { field: &'static str },
    #[error("the password must be 8 to 256 characters long")]
    WeakPassword,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("`agentId` `{0}` is reserved; choose another id")]
    ReservedAgentId(String),
    #[error("an allowed-tools pattern is invalid: {0}")]
    InvalidToolPattern(String),
    #[error("an account with this email already exists; sign in instead, or reset its password")]
    EmailTaken,
    #[error("an agent with id `{0}` already exists; choose another `agentId`")]
    AgentExists(String),
    #[error("the email or password is wrong")]
    InvalidCredentials,
    #[error("sign-up is closed on this server; ask its operator for an account")]
    SignupClosed,
    #[error("self-service registration is closed on this server; register with an operator's bearer token")]
    RegistrationClosed,
    #[error(
        "too many agents registered from this address in the last hour; try again later, or ask an operator to register the agent"
    )]
    TooManyRegistrations,
    #[error("{0}")]
    Forbidden(String),
    #[error("agent `{0}` is disabled; ask an operator to enable it")]
    AgentDisabled(String),
    #[error("there is no agent `{0}`")]
    AgentNotFound(String),
    #[error("there is no token with id `{0}`")]
    TokenNotFound(String),
    #[error("the reset token is invalid, expired or already used; request a new one with POST /api/forgot-password")]
    InvalidResetToken,
    /// Raised by `Identity::open` only: the operator starting the server needs the detail.
    #[error("signing key: {0}")]
    SigningKey(String),
    #[error("the identity store is unavailable; try again later")]
    Storage(#[from] StoreError),
    /// The detail is logged when this is raised and kept here for tests and logs only.
    #[error("internal error in the identity service; try again later")]
    Internal(String),
}

impl IdentityError {
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidEmail { .. }
            | Self::WeakPassword
            | Self::InvalidRequest(_)
            | Self::ReservedAgentId(_)
            | Self::InvalidToolPattern(_)
            | Self::InvalidResetToken => 400,
            Self::InvalidCredentials => 401,
            Self::SignupClosed | Self::RegistrationClosed | Self::Forbidden(_) | Self::AgentDisabled(_) => 403,
            Self::AgentNotFound(_) | Self::TokenNotFound(_) => 404,
            Self::TooManyRegistrations => 429,
            Self::EmailTaken | Self::AgentExists(_) => 409,
            Self::Storage(StoreError::Busy(_)) => 503,
            Self::SigningKey(_) | Self::Storage(_) | Self::Internal(_) => 500,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidEmail { .. } => "invalid_email",
            Self::WeakPassword => "weak_password",
            Self::InvalidRequest(_) => "invalid_request",
            Self::ReservedAgentId(_) => "reserved_agent_id",
            Self::InvalidToolPattern(_) => "invalid_tool_pattern",
            Self::EmailTaken => "email_taken",
            Self::AgentExists(_) => "agent_exists",
            Self::InvalidCredentials => "invalid_credentials",
            Self::SignupClosed => "signup_closed",
            Self::RegistrationClosed => "registration_closed",
            Self::TooManyRegistrations => "too_many_registrations",
            Self::Forbidden(_) => "forbidden",
            Self::AgentDisabled(_) => "agent_disabled",
            Self::AgentNotFound(_) => "agent_not_found",
            Self::TokenNotFound(_) => "token_not_found",
            Self::InvalidResetToken => "invalid_reset_token",
            Self::SigningKey(_) => "signing_key_error",
            Self::Storage(StoreError::Busy(_)) => "busy",
            Self::Storage(_) => "storage_error",
            Self::Internal(_) => "internal_error",
        }
    }

    /// An internal failure: logged here with its detail, shown to clients without it.
    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        tracing::error!(%detail, "identity service failure");
        Self::Internal(detail)
    }
}

/// Why a bearer token or session cookie was not accepted. All are 401 except `Unavailable`
/// (the store could not be asked, 503): the client's credential may be fine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential was sent; send `Authorization: Bearer <token>` or sign in")]
    Missing,
    #[error("the bearer token is malformed; send the token exactly as it was issued")]
    Malformed,
    #[error("the bearer token has expired; sign in again or mint a new one with POST /api/session/token")]
    Expired,
    #[error("the bearer token's signature is invalid; it was not issued by this server")]
    BadSignature,
    #[error("the bearer token uses an algorithm this server does not accept (only HS256)")]
    WrongAlgorithm,
    #[error("the bearer token was issued for another server (wrong issuer)")]
    WrongIssuer,
    #[error("the bearer token has been revoked; sign in again or ask an operator for a new token")]
    Revoked,
    #[error("the credential's agent does not exist; register it again or sign up")]
    UnknownAgent,
    #[error("the credential's agent is disabled; ask an operator to enable it")]
    AgentDisabled,
    #[error("the browser session has expired or was signed out; sign in again")]
    SessionExpired,
    #[error("credentials cannot be checked right now; try again shortly")]
    Unavailable,
}

impl AuthError {
    pub fn status(&self) -> u16 {
        match self {
            Self::Unavailable => 503,
            _ => 401,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing_credentials",
            Self::Malformed => "malformed_token",
            Self::Expired => "token_expired",
            Self::BadSignature => "bad_signature",
            Self::WrongAlgorithm => "wrong_algorithm",
            Self::WrongIssuer => "wrong_issuer",
            Self::Revoked => "token_revoked",
            Self::UnknownAgent => "unknown_agent",
            Self::AgentDisabled => "agent_disabled",
            Self::SessionExpired => "session_expired",
            Self::Unavailable => "auth_unavailable",
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "cannot check a credential: the identity store failed");
        Self::Unavailable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_maps_to_a_status_and_a_code() {
        assert_eq!(IdentityError::EmailTaken.status(), 409);
        assert_eq!(IdentityError::InvalidCredentials.code(), "invalid_credentials");
        assert_eq!(IdentityError::RegistrationClosed.status(), 403);
        assert_eq!(IdentityError::Storage(StoreError::Closed).status(), 500);
        let internal = IdentityError::Internal("disk on fire at /secret/path".into());
        assert!(
            !internal.to_string().contains("/secret/path"),
            "internals never reach clients"
        );
        assert_eq!(AuthError::Expired.status(), 401);
        assert!(AuthError::Expired.to_string().contains("POST /api/session/token"));
    }
}

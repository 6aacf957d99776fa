//! What the identity service takes and gives: requests as clients send them, and the records,
//! credentials and sessions it hands back.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::registry::{Caller, Role};
use crate::store::AgentRow;

/// A caller whose credential checked out, and the credential it came with.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub caller: Arc<Caller>,
    pub agent_name: String,
    pub via: AuthMethod,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    Bearer {
        jti: String,
        expires_at: DateTime<Utc>,
    },
    Session {
        /// The stored hash of the cookie, never the cookie itself.
        session_id: String,
        csrf_token: String,
        expires_at: DateTime<Utc>,
    },
}

/// A freshly issued bearer token.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub agent_id: String,
    pub bearer_token: String,
    pub jti: String,
    pub expires_at: DateTime<Utc>,
    /// The configured token lifetime, for the `expiresIn` wording.
    pub expires_in_days: u32,
}

impl Credentials {
    /// `{"agentId", "bearerToken", "apiKey" (the same token, a legacy alias), "expiresIn": "90 days"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let unit = if self.expires_in_days == 1 { "day" } else { "days" };
        serde_json::json!({
            "agentId": self.agent_id,
            "bearerToken": self.bearer_token,
            "apiKey": self.bearer_token,
            "expiresIn": format!("{} {unit}", self.expires_in_days),
        })
    }
}

/// What signing up or in gives: a bearer token for programs and a session for the browser.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub credentials: Credentials,
    pub agent_name: String,
    pub session: NewSession,
}

/// A browser session just started; `cookie_value` goes into the cookie and is stored nowhere.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub cookie_value: String,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SignupRequest {
    #[schemars(email, length(max = 254))]
    pub email: String,
    /// 8 to 256 characters.
    #[schemars(length(min = 8, max = 256))]
    pub password: String,
    /// The display name of the account's agent.
    #[schemars(length(min = 1, max = 200))]
    pub agent_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SigninRequest {
    #[schemars(email, length(max = 254))]
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResetConfirm {
    #[schemars(email, length(max = 254))]
    pub email: String,
    /// The reset token from the emailed link.
    pub token: String,
    /// 8 to 256 characters.
    #[schemars(length(min = 8, max = 256))]
    pub new_password: String,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RegisterRequest {
    /// 1 to 64 characters of a-z, 0-9 and `-`; `owner` and `agent_*` are reserved.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub agent_id: String,
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    #[schemars(length(max = 2000))]
    pub description: Option<String>,
    #[schemars(length(max = 254))]
    pub owner_email: Option<String>,
    /// Hosts `agentos.net_*` may reach for this agent; empty means any.
    #[schemars(length(max = 100))]
    pub allowed_domains: Option<Vec<String>>,
    /// Tool patterns (`agentos.*`, `mcp.github.*`); defaults to the built-in primitives.
    pub allowed_tools: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Registered {
    pub agent: AgentRecord,
    pub credentials: Credentials,
}

/// An agent as clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentRecord {
    pub agent_id: String,
    pub name: String,
    pub description: Option<String>,
    pub owner_email: Option<String>,
    pub account_id: Option<String>,
    pub role: Role,
    /// `active` or `disabled`.
    pub status: String,
    pub allowed_domains: Vec<String>,
    pub allowed_tools: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
}

pub(crate) const ACTIVE: &str = "active";
pub(crate) const DISABLED: &str = "disabled";
/// A self-registered agent waiting for an operator to enable it (`self_registration =
/// "approval"`); it cannot act, like a disabled one.
pub(crate) const PENDING: &str = "pending";

impl AgentRecord {
    pub(crate) fn from_row(row: AgentRow) -> Self {
        Self {
            role: Role::parse(&row.role).unwrap_or(Role::Agent),
            created_at: rfc3339(row.created_at_ms),
            agent_id: row.id,
            name: row.name,
            description: row.description,
            owner_email: row.owner_email,
            account_id: row.account_id,
            status: row.status,
            allowed_domains: row.allowed_domains,
            allowed_tools: row.allowed_tools,
        }
    }
}

pub(crate) fn rfc3339(ms: i64) -> String {
    to_datetime(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn to_datetime(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_render_the_documented_fields() {
        let credentials = Credentials {
            agent_id: "agent_1".into(),
            bearer_token: "t".into(),
            jti: "j".into(),
            expires_at: Utc::now(),
            expires_in_days: 90,
        };
        assert_eq!(
            credentials.to_json(),
            serde_json::json!({"agentId": "agent_1", "bearerToken": "t", "apiKey": "t", "expiresIn": "90 days"})
        );
    }

    #[test]
    fn requests_refuse_unknown_fields() {
        let ok: SignupRequest = serde_json::from_str(r#"{"email":"a@b.co","password":"x","agentName":"n"}"#).unwrap();
        assert_eq!(ok.agent_name.as_deref(), Some("n"));
        assert!(serde_json::from_str::<SigninRequest>(r#"{"email":"a","password":"b","extra":1}"#).is_err());
    }
}

//! Operator actions as tools: listing agents, creating one, disabling and enabling it, revoking
//! one token or all of an agent's tokens. They are `agentos.*` tools for operators and ops-admins
//! (others do not see them), so each passes the registry's pipeline (limited, traced, audited)
//! from every door; the REST routes over them (`/register` with a token, `/api/agents*`,
//! `/api/tokens/revoke`) are thin adapters. A caller acts only on agents it oversees.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::types::{ACTIVE, AgentRecord, DISABLED, PENDING, RegisterRequest};
use super::{Identity, IdentityError};
use crate::registry::{Audience, Caller, FailureKind, Hints, Role, Tool, ToolBuilder, ToolFailure};
use crate::store::StoreError;

/// Identity refusals as tool failures, by what the caller can do about them.
impl From<IdentityError> for ToolFailure {
    fn from(error: IdentityError) -> Self {
        let kind = match &error {
            IdentityError::Storage(StoreError::Busy(_)) => FailureKind::Busy,
            _ => match error.status() {
                400 => FailureKind::InvalidInput,
                401 | 403 => FailureKind::Forbidden,
                404 => FailureKind::NotFound,
                409 => FailureKind::Conflict,
                _ => FailureKind::Failed,
            },
        };
        ToolFailure::new(error.to_string()).with_kind(kind)
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum StatusArg {
    Active,
    Disabled,
    /// Self-registered, waiting for an operator to enable it.
    Pending,
}

fn default_limit() -> u32 {
    100
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    /// Only agents in this state.
    status: Option<StatusArg>,
    /// Most agents to return (1-500), in id order.
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 500))]
    limit: u32,
    /// `nextCursor` of the previous page.
    #[schemars(length(max = 64))]
    cursor: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AgentList {
    /// In id order.
    agents: Vec<AgentRecord>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AgentArgs {
    /// The agent's id.
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9_-]+$"))]
    agent_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AgentState {
    agent_id: String,
    /// `active` or `disabled`.
    status: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Created {
    agent_id: String,
    name: String,
    /// The agent's bearer token: hand it to the agent; it is shown only once.
    #[schemars(extend("x-sensitive" = true))]
    token: String,
    /// The token's id, to revoke it alone later with agentos.token_revoke.
    jti: String,
    /// RFC 3339.
    expires_at: String,
    allowed_domains: Vec<String>,
    allowed_tools: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JtiArgs {
    /// The token's id (its `jti` claim).
    #[schemars(length(min = 1, max = 128))]
    jti: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Revoked {
    jti: String,
    revoked: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Minted {
    agent_id: String,
    /// The new bearer token: hand it to the agent; it is shown only once.
    #[schemars(extend("x-sensitive" = true))]
    token: String,
    /// The token's id, to revoke it alone later with agentos.token_revoke.
    jti: String,
    /// RFC 3339.
    expires_at: String,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct AllRevoked {
    agent_id: String,
    /// Tokens issued before this time (RFC 3339) no longer work; newer ones do.
    revoked_before: String,
}

/// The agents `caller` may list: everyone for an ops-admin; for an operator, its account's
/// agents and itself.
async fn list(identity: &Identity, caller: &Caller, args: ListArgs) -> Result<AgentList, ToolFailure> {
    let limit = usize::try_from(args.limit.clamp(1, 500)).unwrap_or(500);
    let scope = match (caller.role, &caller.account_id) {
        (Role::OpsAdmin, _) => None,
        (_, Some(account)) => Some((&**account, &*caller.agent_id)),
        // An operator without an account oversees itself only.
        (_, None) => Some(("", &*caller.agent_id)),
    };
    let wanted = args.status.map(|status| match status {
        StatusArg::Active => ACTIVE,
        StatusArg::Disabled => DISABLED,
        StatusArg::Pending => PENDING,
    });
    let mut agents = Vec::new();
    let mut after = args.cursor;
    // Filtering by status after the page is read: read pages until one is full or none is left.
    loop {
        let page = identity
            .store
            .identity_agents(scope, after.as_deref(), limit)
            .await
            .map_err(IdentityError::from)?;
        let exhausted = page.len() < limit;
        after = page.last().map(|row| row.id.clone());
        for row in page {
            if agents.len() < limit && wanted.is_none_or(|status| row.status == status) {
                agents.push(AgentRecord::from_row(row));
            }
        }
        if exhausted || agents.len() == limit {
            let next_cursor = (!exhausted)
                .then(|| agents.last().map(|a| a.agent_id.clone()))
                .flatten();
            return Ok(AgentList { agents, next_cursor });
        }
    }
}

pub fn tools(identity: &Arc<Identity>) -> Vec<Arc<dyn Tool>> {
    let (lister, creator, disabler, enabler, revoker, all_revoker, minter) = (
        identity.clone(),
        identity.clone(),
        identity.clone(),
        identity.clone(),
        identity.clone(),
        identity.clone(),
        identity.clone(),
    );
    let write = Hints {
        read_only: false,
        destructive: false,
        idempotent: false,
        open_world: false,
    };
    vec![
        ToolBuilder::new("agentos.agents_list")
            .title("List agents")
            .description(
                "Lists the agents you oversee, in id order: an operator its account's agents and \
                 itself, an ops-admin every agent. Each shows its status (active or disabled), role, \
                 allowed tools and domains. Filter with status; page with `cursor` = the previous \
                 `nextCursor`.",
            )
            .hints(Hints::READ_ONLY)
            .audience(Audience::Operators)
            .handler(move |args: ListArgs, ctx| {
                let identity = lister.clone();
                async move { list(&identity, &ctx.caller, args).await }
            }),
        ToolBuilder::new("agentos.agent_create")
            .title("Create an agent")
            .description(
                "Registers a new agent in your account and returns its bearer token (shown once: \
                 hand it to the agent). allowedTools defaults to the built-in agentos.* tools and may \
                 grant only tools you may use yourself; allowedDomains limits where its network tools \
                 may reach (empty: any public host).",
            )
            .hints(write)
            .audience(Audience::Operators)
            .handler(move |args: RegisterRequest, ctx| {
                let identity = creator.clone();
                async move {
                    let registered = identity.register_agent(&ctx.caller, args).await?;
                    let agent = registered.agent;
                    Ok(Created {
                        agent_id: agent.agent_id,
                        name: agent.name,
                        token: registered.credentials.bearer_token,
                        jti: registered.credentials.jti,
                        expires_at: registered
                            .credentials
                            .expires_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        allowed_domains: agent.allowed_domains,
                        allowed_tools: agent.allowed_tools,
                    })
                }
            }),
        ToolBuilder::new("agentos.agent_disable")
            .title("Disable an agent")
            .description(
                "Disables an agent you oversee: its tokens and browser sessions stop working at once \
                 and it can make no more calls, until agentos.agent_enable. Nothing it stored is \
                 deleted.",
            )
            .hints(Hints {
                destructive: true,
                idempotent: true,
                ..write
            })
            .audience(Audience::Operators)
            .handler(move |args: AgentArgs, ctx| {
                let identity = disabler.clone();
                async move {
                    identity.set_agent_active(&ctx.caller, &args.agent_id, false).await?;
                    Ok(AgentState {
                        agent_id: args.agent_id,
                        status: DISABLED.to_owned(),
                    })
                }
            }),
        ToolBuilder::new("agentos.agent_enable")
            .title("Enable an agent")
            .description(
                "Enables an agent you oversee that was disabled: its tokens that were not revoked \
                 work again.",
            )
            .hints(Hints {
                idempotent: true,
                ..write
            })
            .audience(Audience::Operators)
            .handler(move |args: AgentArgs, ctx| {
                let identity = enabler.clone();
                async move {
                    identity.set_agent_active(&ctx.caller, &args.agent_id, true).await?;
                    Ok(AgentState {
                        agent_id: args.agent_id,
                        status: ACTIVE.to_owned(),
                    })
                }
            }),
        ToolBuilder::new("agentos.agent_token_create")
            .title("Mint a token for an agent")
            .description(
                "Mints a new bearer token for an active agent you oversee (a new deployment of it, a \
                 rotated credential); its other tokens keep working until revoked. The token is shown \
                 only in this answer.",
            )
            .hints(write)
            .audience(Audience::Operators)
            .handler(move |args: AgentArgs, ctx| {
                let identity = minter.clone();
                async move {
                    let credentials = identity.mint_token_for(&ctx.caller, &args.agent_id).await?;
                    Ok(Minted {
                        agent_id: credentials.agent_id,
                        token: credentials.bearer_token,
                        jti: credentials.jti,
                        expires_at: credentials
                            .expires_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    })
                }
            }),
        ToolBuilder::new("agentos.token_revoke")
            .title("Revoke a token")
            .description(
                "Revokes one bearer token by its id (`jti`, returned when the token was created) of an \
                 agent you oversee; the token stops working at once. The agent's other tokens keep \
                 working.",
            )
            .hints(Hints {
                destructive: true,
                idempotent: true,
                ..write
            })
            .audience(Audience::Operators)
            .handler(move |args: JtiArgs, ctx| {
                let identity = revoker.clone();
                async move {
                    identity.revoke_token(&ctx.caller, &args.jti).await?;
                    Ok(Revoked {
                        jti: args.jti,
                        revoked: true,
                    })
                }
            }),
        ToolBuilder::new("agentos.agent_tokens_revoke")
            .title("Revoke all of an agent's tokens")
            .description(
                "Revokes every bearer token issued until now to an agent you oversee (a leaked token, \
                 a compromised agent). Tokens minted afterwards work; to stop the agent altogether \
                 use agentos.agent_disable.",
            )
            .hints(Hints {
                destructive: true,
                idempotent: true,
                ..write
            })
            .audience(Audience::Operators)
            .handler(move |args: AgentArgs, ctx| {
                let identity = all_revoker.clone();
                async move {
                    identity.revoke_agent_tokens(&ctx.caller, &args.agent_id).await?;
                    Ok(AllRevoked {
                        agent_id: args.agent_id,
                        revoked_before: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    })
                }
            }),
    ]
}

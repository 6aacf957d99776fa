//! Runtime management of proxied MCP servers, as tools, so MCP clients can do it too.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::registry::{CallContext, Empty, Hints, Tool, ToolBuilder, ToolFailure};
use crate::upstream::{CrewAction, CrewError, CrewMember, Health, ServerSpec, ServerSummary, Upstreams};

#[derive(Debug, Serialize, JsonSchema)]
struct Added {
    name: String,
    /// The new tools' names, callable now.
    tools: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ServerList {
    servers: Vec<ServerSummary>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RemoveArgs {
    /// The server's name as given when it was added (a-z, 0-9, `_` and `-`).
    #[schemars(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9_-]+$"))]
    name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Removed {
    name: String,
    /// False if no server had that name.
    removed: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct CrewStatus {
    summary: CrewSummary,
    /// Per-server details (endpoints, failures); ops-admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    servers: Option<Vec<CrewMember>>,
    /// True when `servers` was withheld because the caller is not an ops-admin.
    requires_auth_for_details: bool,
}

/// Coverage in numbers: safe to show anyone.
#[derive(Debug, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct CrewSummary {
    servers: usize,
    up: usize,
    restarting: usize,
    down: usize,
    disabled: usize,
    /// Servers with at least one standby endpoint.
    with_standby: usize,
}

impl CrewSummary {
    fn of(members: &[CrewMember]) -> Self {
        let mut summary = Self {
            servers: members.len(),
            ..Self::default()
        };
        for member in members {
            match member.health {
                Health::Up => summary.up += 1,
                Health::Restarting => summary.restarting += 1,
                Health::Down => summary.down += 1,
                Health::Disabled => summary.disabled += 1,
            }
            if !member.standby.is_empty() {
                summary.with_standby += 1;
            }
        }
        summary
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FailoverArgs {
    /// The server's name.
    #[schemars(length(min = 1, max = 64))]
    feature_slug: String,
    /// Why (recorded as the last failure).
    #[serde(default)]
    #[schemars(length(max = 500))]
    reason: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct CrewActions {
    servers: Vec<CrewAction>,
}

/// Adding servers runs programs on this machine, so only its owner may manage them.
/// A crew operation's refusal as a tool failure of the fitting kind.
fn crew_failure(error: CrewError) -> ToolFailure {
    match error {
        CrewError::Unknown(_) => ToolFailure::not_found(error.to_string()),
        CrewError::NotRunning(_) => ToolFailure::new(error.to_string()),
    }
}

fn owner_upstreams(services: &Services, ctx: &CallContext) -> Result<Arc<Upstreams>, ToolFailure> {
    if !ctx.caller.is_admin() {
        return Err(ToolFailure::forbidden(
            "only an ops-admin of this agentos may manage MCP servers",
        ));
    }
    services
        .upstreams
        .upgrade()
        .ok_or_else(|| ToolFailure::new("agentos is shutting down"))
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let (add, list, remove) = (services.clone(), services.clone(), services.clone());
    let mut tools = vec![
        ToolBuilder::new("agentos.mcp_server_add")
            .admin_only()
            .title("Connect an MCP server")
            .description(
                "Connects an MCP server, started over stdio (`command`) or reached over streamable \
                 HTTP (`url`), and adds its tools as mcp.<name>.<tool>, immediately usable by every \
                 client (clients are notified that the tool list changed). It is restarted if it \
                 dies. Returns the new tool names. Owner only.",
            )
            .hints(Hints {
                read_only: false,
                destructive: false,
                idempotent: false,
                open_world: true,
            })
            .handler(move |spec: ServerSpec, ctx| {
                let services = add.clone();
                async move {
                    let upstreams = owner_upstreams(&services, &ctx)?;
                    let name = spec.name.clone();
                    let tools = upstreams
                        .add(spec)
                        .await
                        .map_err(|e| ToolFailure::new(e.to_string()))?;
                    Ok(Added { name, tools })
                }
            }),
        ToolBuilder::new("agentos.mcp_servers_list")
            .admin_only()
            .title("List connected MCP servers")
            .description("Lists the MCP servers agentos proxies: how each is reached, its status (up, restarting, ...), restarts, last error and tool names.")
            .hints(Hints::READ_ONLY)
            .handler(move |_: Empty, ctx| {
                let services = list.clone();
                async move {
                    let upstreams = owner_upstreams(&services, &ctx)?;
                    Ok(ServerList {
                        servers: upstreams.list(),
                    })
                }
            }),
        ToolBuilder::new("agentos.mcp_server_remove")
            .admin_only()
            .title("Disconnect an MCP server")
            .description(
                "Stops a proxied MCP server and removes its tools (clients are notified). \
                 Returns removed=false if no server had that name. Owner only.",
            )
            .hints(Hints::DESTRUCTIVE)
            .handler(move |args: RemoveArgs, ctx| {
                let services = remove.clone();
                async move {
                    let upstreams = owner_upstreams(&services, &ctx)?;
                    let removed = upstreams.remove(&args.name);
                    Ok(Removed {
                        name: args.name,
                        removed,
                    })
                }
            }),
    ];
    tools.extend(crew_tools(services));
    tools
}

/// The crew: active and standby endpoints of each server, failover, bootstrap, health cycle.
fn crew_tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let (status, failover, bootstrap, cron) = (services.clone(), services.clone(), services.clone(), services.clone());
    vec![
        ToolBuilder::new("agentos.crew_status")
            .title("Show the MCP server crew")
            .description(
                "How the proxied MCP servers are covered: counts of servers up, restarting, down \
                 and disabled, and how many have standby endpoints. Ops-admins also get, per \
                 server, the active endpoint, the standby endpoints (in the order they would take \
                 over), health, the last failure and restart counts; for everyone else \
                 `requiresAuthForDetails` is true.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |_: Empty, ctx| {
                let services = status.clone();
                async move {
                    let upstreams = services
                        .upstreams
                        .upgrade()
                        .ok_or_else(|| ToolFailure::new("agentos is shutting down"))?;
                    let members = upstreams.crew_status();
                    let admin = ctx.caller.is_admin();
                    Ok(CrewStatus {
                        summary: CrewSummary::of(&members),
                        servers: admin.then_some(members),
                        requires_auth_for_details: !admin,
                    })
                }
            }),
        ToolBuilder::new("agentos.crew_failover")
            .admin_only()
            .title("Fail an MCP server over")
            .description(
                "Switches the MCP server `featureSlug` to its next endpoint now (reconnecting; with \
                 no standby it reconnects the same one) and returns the endpoint now active. \
                 Owner only.",
            )
            .hints(Hints {
                read_only: false,
                destructive: false,
                idempotent: false,
                open_world: true,
            })
            .handler(move |args: FailoverArgs, ctx| {
                let services = failover.clone();
                async move {
                    let upstreams = owner_upstreams(&services, &ctx)?;
                    let reason = args
                        .reason
                        .filter(|r| !r.trim().is_empty())
                        .unwrap_or_else(|| "failover requested".to_owned());
                    upstreams
                        .crew_failover(&args.feature_slug, reason)
                        .await
                        .map_err(crew_failure)
                }
            }),
        ToolBuilder::new("agentos.crew_bootstrap")
            .admin_only()
            .title("Reconnect every MCP server that is down")
            .description(
                "Reconnects now every enabled MCP server that is not up, leaving healthy ones \
                 alone; safe to repeat. Returns what it did to each. Owner only.",
            )
            .hints(Hints {
                read_only: false,
                destructive: false,
                idempotent: true,
                open_world: true,
            })
            .handler(move |_: Empty, ctx| {
                let services = bootstrap.clone();
                async move {
                    let upstreams = owner_upstreams(&services, &ctx)?;
                    Ok(CrewActions {
                        servers: upstreams.crew_bootstrap().await,
                    })
                }
            }),
        ToolBuilder::new("agentos.crew_cron")
            .admin_only()
            .title("Run the MCP server health cycle")
            .description(
                "Runs one health cycle now (it also runs on each server's timer): pings every \
                 MCP server; one that does not answer fails over to its next endpoint, one that \
                 is down is reconnected. Returns the result per server. Owner only.",
            )
            .hints(Hints {
                read_only: false,
                destructive: false,
                idempotent: true,
                open_world: true,
            })
            .handler(move |_: Empty, ctx| {
                let services = cron.clone();
                async move {
                    let upstreams = owner_upstreams(&services, &ctx)?;
                    Ok(CrewActions {
                        servers: upstreams.crew_cron().await,
                    })
                }
            }),
    ]
}

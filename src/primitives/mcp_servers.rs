//! Runtime management of proxied MCP servers, as tools, so MCP clients can do it too.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Services;
use crate::registry::{CallContext, Empty, Hints, Tool, ToolBuilder, ToolFailure};
use crate::upstream::{ServerSpec, ServerSummary, Upstreams};

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
    /// The server's name as given when it was added.
    #[schemars(length(min = 1, max = 64))]
    name: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Removed {
    name: String,
    /// False if no server had that name.
    removed: bool,
}

/// Adding servers runs programs on this machine, so only its owner may manage them.
fn owner_upstreams(services: &Services, ctx: &CallContext) -> Result<Arc<Upstreams>, ToolFailure> {
    if !ctx.caller.is_owner() {
        return Err(ToolFailure::new(
            "only the owner of this agentos may manage MCP servers",
        ));
    }
    services
        .upstreams
        .upgrade()
        .ok_or_else(|| ToolFailure::new("agentos is shutting down"))
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let (add, list, remove) = (services.clone(), services.clone(), services.clone());
    vec![
        ToolBuilder::new("agentos.mcp_server_add")
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
    ]
}

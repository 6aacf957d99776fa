//! The MCP server handler: capabilities, per-session state (log level, subscriptions) and the
//! dispatch of each request to the catalog and tools.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
        GetPromptRequestParams, GetPromptResponse, Implementation, ListPromptsResult, ListResourceTemplatesResult,
        ListResourcesResult, ListToolsResult, LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ServerCapabilities, ServerConfig,
        SetLevelRequestParams, SubscribeRequestParams, Tool, UnsubscribeRequestParams,
    },
    service::RequestContext,
};
use serde_json::json;

use crate::{
    catalog,
    streams::{FixtureSessions, RECONNECTION_TOOL},
    tools,
};

/// How long `test_reconnection` waits for the client to come back before answering anyway.
const RECONNECT_WAIT: Duration = Duration::from_secs(10);

/// One handler per MCP session (the HTTP transport builds one per session).
pub struct Fixture {
    /// The least severe level the client wants to receive (`logging/setLevel`).
    log_level: Arc<Mutex<LoggingLevel>>,
    /// URIs the client subscribed to.
    subscriptions: Arc<Mutex<HashSet<String>>>,
    /// The HTTP session manager; `None` over stdio, where there is no stream to close.
    sessions: Option<Arc<FixtureSessions>>,
}

impl Fixture {
    pub fn new(sessions: Option<Arc<FixtureSessions>>) -> Self {
        Self {
            log_level: Arc::new(Mutex::new(LoggingLevel::Debug)),
            subscriptions: Arc::default(),
            sessions,
        }
    }

    /// Sends a log notification if the client asked for messages this severe.
    async fn log(&self, context: &RequestContext<RoleServer>, level: LoggingLevel, message: &str) {
        if (level as u8) < (*lock(&self.log_level) as u8) {
            return;
        }
        let notification = LoggingMessageNotificationParam::new(level, json!(message)).with_logger("mcp_fixture");
        if let Err(error) = context.peer.notify_logging_message(notification).await {
            tracing::warn!(%error, "could not send a log notification");
        }
    }

    async fn logging_tool(&self, context: &RequestContext<RoleServer>) -> CallToolResult {
        let steps = [
            "Tool execution started",
            "Tool processing data",
            "Tool execution completed",
        ];
        for (i, message) in steps.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(tools::STEP).await;
            }
            self.log(context, LoggingLevel::Info, message).await;
        }
        tools::text("Tool with logging executed successfully")
    }

    /// SEP-1699: closes this call's POST SSE stream, then answers on the stream the client
    /// resumes with `Last-Event-ID`.
    async fn reconnection_tool(&self, context: &RequestContext<RoleServer>) -> CallToolResult {
        let session = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.headers.get("mcp-session-id"))
            .and_then(|value| value.to_str().ok());
        let (Some(sessions), Some(session)) = (&self.sessions, session) else {
            return tools::text("No HTTP session: nothing to reconnect; reconnection test completed");
        };
        let resumed = sessions
            .close_and_await_resume(&session.into(), &context.id, RECONNECT_WAIT)
            .await;
        match resumed {
            Ok(true) => tools::text("Reconnection test completed: answered after the client reconnected"),
            Ok(false) => tools::text("Reconnection test completed: the client did not reconnect"),
            Err(error) => tools::failure(format!("Could not close the SSE stream: {error}")),
        }
    }

    async fn elicitation_tool(
        &self,
        context: &RequestContext<RoleServer>,
        name: &str,
        arguments: &rmcp::model::JsonObject,
    ) -> Result<CallToolResult, McpError> {
        let (message, schema, prefix) = match name {
            "test_elicitation" => (
                tools::string_arg(arguments, "message")?,
                tools::elicitation_schema(),
                "User response:",
            ),
            "test_elicitation_sep1034_defaults" => (
                "Please review and update the form fields with defaults",
                tools::defaults_schema(),
                "Elicitation completed:",
            ),
            "test_elicitation_sep1330_enums" => (
                "Please select options from the enum fields",
                tools::enums_schema(),
                "Elicitation completed:",
            ),
            _ => return Err(McpError::invalid_params(format!("no elicitation tool {name}"), None)),
        };
        Ok(match tools::elicit(context, message, schema).await {
            Ok((action, content)) => tools::text(format!("{prefix} action={action}, content={content}")),
            Err(error) => tools::failure(error),
        })
    }
}

/// The state behind these mutexes is a value or a set, valid whatever a panicking holder did.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ServerHandler for Fixture {
    fn get_info(&self) -> ServerConfig {
        // rmcp rejects requests for capabilities not declared here.
        let capabilities = ServerCapabilities::builder()
            .enable_logging()
            .enable_completions()
            .enable_prompts()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_tools()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("mcp_fixture", env!("CARGO_PKG_VERSION")))
            .with_instructions("A fixture implementing the MCP conformance suite's server scenarios")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools::list()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::list().into_iter().find(|tool| tool.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.as_ref();
        let arguments = request.arguments.unwrap_or_default();
        if let Some(result) = tools::fixed_result(name) {
            return Ok(result.into());
        }
        let result = match name {
            "test_tool_with_logging" => self.logging_tool(&context).await,
            "test_tool_with_progress" => tools::progress(&context).await,
            "test_sampling" => tools::sampling(&context, tools::string_arg(&arguments, "prompt")?).await,
            "test_elicitation" | "test_elicitation_sep1034_defaults" | "test_elicitation_sep1330_enums" => {
                self.elicitation_tool(&context, name, &arguments).await?
            }
            tools::JSON_SCHEMA_TOOL => {
                tools::text(format!("Received arguments: {}", serde_json::Value::Object(arguments)))
            }
            RECONNECTION_TOOL => self.reconnection_tool(&context).await,
            _ => return Err(McpError::invalid_params(format!("no tool {name}"), None)),
        };
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        Ok(ListResourcesResult::with_all_items(catalog::resources()))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            catalog::resource_templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let contents = catalog::read_resource(&request.uri)?;
        Ok(ReadResourceResult::new(vec![contents]).into())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        lock(&self.subscriptions).insert(request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        lock(&self.subscriptions).remove(&request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(catalog::prompts()))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let arguments = request.arguments.unwrap_or_default();
        Ok(catalog::get_prompt(&request.name, &arguments)?.into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let completion = catalog::complete(&request.r#ref, &request.argument.name, &request.argument.value);
        Ok(CompleteResult::new(completion))
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        *lock(&self.log_level) = request.level;
        Ok(())
    }
}

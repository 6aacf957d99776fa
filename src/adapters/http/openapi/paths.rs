//! The operations of the OpenAPI document, one builder call per route. Each operation lists every
//! status it can answer: those of its handler plus those of the layers in front of it (the
//! Host/Origin guard and the body cap for every route; authentication, CSRF and rate limits by
//! how `auth::classify` treats the route).

use serde_json::{Map, Value, json};

use super::super::accounts::{ForgotPassword, RevokeToken};
use super::super::plain::PlainCall;
use super::schema_of;
use crate::identity::{RegisterRequest, ResetConfirm, SigninRequest, SignupRequest};
use crate::ops::health::{Report, ServiceHealth};

mod backed;
mod shapes;

/// How a route is reached (mirrors `auth::classify`); decides its security and its layer errors.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Access {
    /// Never authenticated nor limited.
    Unchecked,
    /// Open; credentials, when sent, must verify and shape the answer.
    Public,
    /// Credential-producing routes: credentials are ignored, the client address is limited.
    Gate,
    /// Needs a bearer token or the session cookie.
    Protected,
}

/// One operation under construction.
pub(super) struct Op {
    pub method: &'static str,
    pub path: &'static str,
    body: Map<String, Value>,
    responses: Map<String, Value>,
}

impl Op {
    pub fn new(method: &'static str, path: &'static str, access: Access, tag: &str, id: &str, summary: &str) -> Self {
        let mut body = Map::new();
        body.insert("tags".into(), json!([tag]));
        body.insert("operationId".into(), json!(id));
        body.insert("summary".into(), json!(summary));
        let changes_state = method != "get";
        let security = match access {
            Access::Unchecked | Access::Gate => json!([]),
            Access::Public => json!([{}, {"bearer": []}, {"session": []}]),
            Access::Protected if changes_state => json!([{"bearer": []}, {"session": [], "csrf": []}]),
            Access::Protected => json!([{"bearer": []}, {"session": []}]),
        };
        body.insert("security".into(), security);
        body.insert("parameters".into(), json!([]));
        let mut op = Self {
            method,
            path,
            body,
            responses: Map::new(),
        };
        // The guard (403) and the body cap (413) stand in front of every route.
        op = op.errors(&[403, 413]);
        match access {
            Access::Unchecked => op,
            Access::Gate => op.errors(&[429]),
            Access::Public | Access::Protected => op.errors(&[401, 429, 503]),
        }
    }

    pub fn describe(mut self, text: &str) -> Self {
        self.body.insert("description".into(), json!(text));
        self
    }

    /// A path or query parameter, or a header.
    pub fn param(mut self, place: &str, name: &str, required: bool, schema: Value, description: &str) -> Self {
        if let Some(Value::Array(params)) = self.body.get_mut("parameters") {
            params.push(json!({
                "in": place, "name": name, "required": required, "schema": schema, "description": description,
            }));
        }
        self
    }

    /// `?names=` and `X-Agentos-Names`: how tool names are spelled in the answer.
    pub fn names(self) -> Self {
        let style = json!({"type": "string", "enum": ["native", "strict"]});
        self.param(
            "query",
            "names",
            false,
            style.clone(),
            "How tool names are spelled: `native` (agentos.mem_set) or `strict` (agentos_mem_set).",
        )
        .param("header", "X-Agentos-Names", false, style, "Like `?names=`.")
        .errors(&[400])
    }

    pub fn json_body(mut self, schema: Value) -> Self {
        self.body.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": schema}}}),
        );
        self.errors(&[400])
    }

    pub fn reply(mut self, status: u16, description: &str, schema: Value) -> Self {
        self.responses.insert(
            status.to_string(),
            json!({"description": description, "content": {"application/json": {"schema": schema}}}),
        );
        self
    }

    pub fn reply_as(mut self, status: u16, description: &str, media: &str, schema: Value) -> Self {
        self.responses.insert(
            status.to_string(),
            json!({"description": description, "content": {media: {"schema": schema}}}),
        );
        self
    }

    /// A plain-text answer for `status`, beside any JSON one already documented: the MCP
    /// transport refuses in text, the REST layers in JSON.
    pub fn text_reply(mut self, status: u16, description: &str) -> Self {
        let key = status.to_string();
        let existing = self.responses.remove(&key);
        let mut content = match existing.as_ref().map(|r| r.get("$ref").and_then(Value::as_str)) {
            Some(Some(_)) => json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}),
            _ => existing
                .as_ref()
                .and_then(|r| r.get("content").cloned())
                .unwrap_or_else(|| json!({})),
        };
        content["text/plain"] = json!({"schema": {"type": "string"}});
        let description = match existing
            .as_ref()
            .and_then(|r| r.get("description"))
            .and_then(Value::as_str)
        {
            Some(first) => format!("{first} Or: {description}"),
            None => match existing {
                Some(_) => format!("An error (JSON), or: {description}"),
                None => description.to_owned(),
            },
        };
        self.responses
            .insert(key, json!({"description": description, "content": content}));
        self
    }

    pub fn empty_reply(mut self, status: u16, description: &str) -> Self {
        self.responses
            .insert(status.to_string(), json!({"description": description}));
        self
    }

    /// Error statuses answered with the shared `Error` body.
    pub fn errors(mut self, statuses: &[u16]) -> Self {
        for status in statuses {
            let key = status.to_string();
            self.responses
                .entry(key.clone())
                .or_insert_with(|| json!({"$ref": format!("#/components/responses/{key}")}));
        }
        self
    }

    /// A REST route over a tool: its failures map to statuses as in `ToolCall::run`.
    pub fn tool_backed(self) -> Self {
        self.reply(
            202,
            "Held for a human's approval; `approvalId` names it.",
            json!({"$ref": "#/components/schemas/Error"}),
        )
        .errors(&[400, 403, 404, 422, 503, 504])
    }

    fn finish(mut self) -> (String, String, Value) {
        self.body.insert("responses".into(), Value::Object(self.responses));
        (self.path.to_owned(), self.method.to_owned(), Value::Object(self.body))
    }
}

/// Every operation, as `paths`.
pub(super) fn all(schemas: &mut Map<String, Value>) -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for op in operations(schemas) {
        let (path, method, body) = op.finish();
        if let Value::Object(methods) = paths.entry(path).or_insert_with(|| json!({})) {
            methods.insert(method, body);
        }
    }
    Value::Object(paths)
}

pub(super) fn operations(schemas: &mut Map<String, Value>) -> Vec<Op> {
    use Access::*;
    let mut ops = vec![
        Op::new("get", "/health", Unchecked, "health", "liveness", "Liveness")
            .describe("Cheap: answers as long as the process serves HTTP.")
            .reply(200, "Alive.", shapes::liveness()),
        Op::new(
            "get",
            "/health/ready",
            Unchecked,
            "health",
            "readiness",
            "Readiness of every service",
        )
        .describe(
            "Checks the store (a timed trivial read) and every upstream MCP server (`mcp.<server>`). \
                 Disabled servers are listed but do not make agentos unready.",
        )
        .reply(200, "Every service is healthy (or disabled).", schema_of::<Report>())
        .reply(503, "A service is degraded or unhealthy.", schema_of::<Report>()),
        Op::new(
            "get",
            "/health/{service}",
            Unchecked,
            "health",
            "serviceHealth",
            "Health of one service",
        )
        .param(
            "path",
            "service",
            true,
            json!({"type": "string", "pattern": "^[a-z0-9._-]{1,80}$"}),
            "`store` or `mcp.<server>`.",
        )
        .reply(200, "Healthy (or disabled).", schema_of::<ServiceHealth>())
        .reply(503, "Degraded or unhealthy.", schema_of::<ServiceHealth>())
        .errors(&[404]),
        Op::new(
            "get",
            "/tools",
            Public,
            "tools",
            "listTools",
            "List the tools the caller may call",
        )
        .describe("Without credentials: the public catalog (the built-in primitives).")
        .names()
        .reply(200, "The tools.", shapes::tool_list()),
    ];
    ops.extend(shapes::mcp_operations(schema_of::<PlainCall>()));
    ops.extend(accounts(schemas));
    ops.extend(backed::governance(schemas));
    ops.extend(backed::ops_routes(schemas));
    ops.extend(shapes::observability());
    ops.extend(backed::observability(schemas));
    ops.push(
        Op::new("get", "/openapi.json", Public, "docs", "openapi", "This document").reply(
            200,
            "The OpenAPI 3.1 document.",
            json!({"type": "object"}),
        ),
    );
    ops.push(
        Op::new(
            "get",
            "/docs",
            Public,
            "docs",
            "docs",
            "A page that renders this document, offline",
        )
        .reply_as(200, "The page.", "text/html", json!({"type": "string"})),
    );
    ops
}

fn accounts(_schemas: &mut Map<String, Value>) -> Vec<Op> {
    use Access::*;
    let success = json!({"type": "object", "required": ["success"], "properties": {"success": {"const": true}}});
    vec![
        Op::new("post", "/api/signup", Gate, "accounts", "signup", "Create an account")
            .describe("Creates an operator account and its agent, starts a browser session (Set-Cookie).")
            .json_body(schema_of::<SignupRequest>())
            .reply(201, "Signed up.", shapes::signed_in())
            .errors(&[403, 409, 503]),
        Op::new("post", "/api/signin", Gate, "accounts", "signin", "Sign in")
            .json_body(schema_of::<SigninRequest>())
            .reply(200, "Signed in.", shapes::signed_in())
            .errors(&[401, 403, 503]),
        Op::new(
            "get",
            "/api/session",
            Protected,
            "accounts",
            "session",
            "The current session",
        )
        .reply(200, "Who is signed in.", shapes::session()),
        Op::new("delete", "/api/session", Protected, "accounts", "signOut", "Sign out")
            .describe("Ends the browser session, or revokes the bearer token that called.")
            .reply(200, "Signed out.", success.clone()),
        Op::new(
            "post",
            "/api/session/token",
            Protected,
            "accounts",
            "mintToken",
            "Mint a bearer token",
        )
        .reply(200, "A fresh token.", shapes::credentials_reply()),
        Op::new(
            "post",
            "/api/forgot-password",
            Gate,
            "accounts",
            "forgotPassword",
            "Request a password reset",
        )
        .describe("The same answer whether or not the account exists.")
        .json_body(schema_of::<ForgotPassword>())
        .reply(200, "Requested.", success.clone())
        .errors(&[503]),
        Op::new(
            "post",
            "/api/forgot-password/confirm",
            Gate,
            "accounts",
            "confirmReset",
            "Reset the password",
        )
        .json_body(schema_of::<ResetConfirm>())
        .reply(200, "Reset; the account's sessions and tokens end.", success.clone())
        .errors(&[503]),
        Op::new(
            "post",
            "/api/tokens/revoke",
            Protected,
            "accounts",
            "revokeToken",
            "Revoke one token",
        )
        .json_body(schema_of::<RevokeToken>())
        .reply(200, "Revoked.", success)
        .errors(&[404]),
        Op::new(
            "delete",
            "/api/agents/{agentId}/tokens",
            Protected,
            "accounts",
            "revokeAgentTokens",
            "Revoke an agent's tokens",
        )
        .param(
            "path",
            "agentId",
            true,
            json!({"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"}),
            "The agent.",
        )
        .reply(
            200,
            "Every token of the agent issued until now is revoked.",
            json!({
                "type": "object", "required": ["success", "agentId"],
                "properties": {"success": {"const": true}, "agentId": {"type": "string"}},
            }),
        )
        .errors(&[400, 404]),
        Op::new("post", "/register", Public, "accounts", "register", "Register an agent")
            .describe("Without a token: self-service (built-in primitives at most); with an operator's: its agent.")
            .json_body(schema_of::<RegisterRequest>())
            .reply(201, "Registered; `token` is its bearer token.", shapes::registered())
            .errors(&[409]),
        Op::new(
            "get",
            "/agent/me",
            Protected,
            "accounts",
            "me",
            "The calling agent's registration",
        )
        .reply(200, "The agent.", shapes::agent_me())
        .errors(&[404]),
    ]
}

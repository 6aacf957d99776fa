//! Accounts, sessions and agents over REST. Sign-up, sign-in, the session routes, password reset
//! and self-service `/register` are the gate that produces callers: they speak to the identity
//! service directly, which leaves an audit record of each attempt. The operator actions
//! (`/register` with a token, `/api/agents*`, `/api/tokens/revoke`) are tools, called here as the
//! request's caller like every REST route over a tool.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::auth::SESSION_COOKIE;
use super::governance::{Params, input_from};
use super::json::JsonBody;
use super::openapi::{Op, schema_of, tool_schema};
use super::request::RequestId;
use super::tool_call::ToolCall;
use super::{HttpState, error_response};
use crate::adapters::mcp::RequestIdentity;
use crate::identity::{
    AgentRecord, AuthMethod, Authenticated, Credentials, GateStep, IdentityError, NewSession, RegisterRequest,
    ResetConfirm, SignedIn, SigninRequest, SignupRequest,
};
use crate::registry::Role;

fn identity_error(error: IdentityError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
        tracing::error!(%error, "identity operation failed");
    }
    let mut response = error_response(status, error.code(), &error.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        super::annotate_failure(response.headers_mut(), crate::registry::FailureKind::Busy);
    }
    response
}

/// A bearer token as the account routes hand it out.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CredentialsBody {
    agent_id: String,
    bearer_token: String,
    /// The same token (a legacy alias).
    api_key: String,
    /// How long the token lasts, e.g. `90 days`.
    expires_in: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_name: Option<String>,
}

impl CredentialsBody {
    fn of(credentials: Credentials, agent_name: Option<String>) -> Self {
        let unit = if credentials.expires_in_days == 1 {
            "day"
        } else {
            "days"
        };
        Self {
            expires_in: format!("{} {unit}", credentials.expires_in_days),
            agent_id: credentials.agent_id,
            api_key: credentials.bearer_token.clone(),
            bearer_token: credentials.bearer_token,
            agent_name,
        }
    }
}

/// The answer of sign-up and sign-in.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SignedInBody {
    #[schemars(extend("const" = true))]
    success: bool,
    credentials: CredentialsBody,
    /// Send it as `X-CSRF-Token` with the session cookie on requests that change state.
    csrf_token: String,
}

/// `{"success": true, "credentials": ...}`
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct CredentialsReply {
    #[schemars(extend("const" = true))]
    success: bool,
    credentials: CredentialsBody,
}

/// `{"success": true}`
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Done {
    #[schemars(extend("const" = true))]
    success: bool,
}

const DONE: Done = Done { success: true };

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Via {
    Bearer,
    Session,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct SessionInfo {
    agent_id: String,
    agent_name: String,
    role: Role,
    via: Via,
    /// RFC 3339.
    expires_at: String,
    /// With a browser session only.
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf_token: Option<String>,
}

/// `GET /api/session`
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct SessionBody {
    #[schemars(extend("const" = true))]
    authenticated: bool,
    session: SessionInfo,
}

/// What `POST /register` answers, by either path.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct RegisteredBody {
    agent_id: String,
    name: String,
    /// The agent's bearer token, shown only here.
    token: String,
    /// The token's id, to revoke it alone.
    jti: String,
    /// e.g. `90d`.
    expires_in: String,
    /// RFC 3339.
    expires_at: String,
    allowed_domains: Vec<String>,
    allowed_tools: Vec<String>,
    mcp_endpoint: String,
    tools_endpoint: String,
    /// `active`; `pending` when self-service registration needs an operator's approval (the
    /// token works once an operator enables the agent).
    status: String,
    /// What to do next, when the agent is pending.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

/// `GET /agent/me`
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AgentMe {
    #[serde(flatten)]
    agent: AgentRecord,
    total_calls: u64,
    /// RFC 3339; absent before the first call.
    last_active_at: Option<String>,
    mcp_endpoint: String,
    tools_endpoint: String,
}

/// The `Set-Cookie` value that starts (or, with `None`, ends) the browser session.
fn session_cookie(state: &HttpState, session: Option<&NewSession>) -> HeaderValue {
    let secure = if state.config.identity.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = match session {
        Some(session) => {
            let max_age = (session.expires_at - chrono::Utc::now()).num_seconds().max(0);
            format!(
                "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
                session.cookie_value
            )
        }
        None => format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
    };
    // Cookie values are base64url, so the header is always valid ASCII.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn signed_in(state: &HttpState, status: StatusCode, signed: SignedIn) -> Response {
    let body = SignedInBody {
        success: true,
        credentials: CredentialsBody::of(signed.credentials, Some(signed.agent_name)),
        csrf_token: signed.session.csrf_token.clone(),
    };
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(state, Some(&signed.session)));
    response
}

fn gate<'a>(action: &'static str, request_id: &'a str, subject: &'a str) -> GateStep<'a> {
    GateStep {
        action,
        request_id,
        caller: None,
        subject,
    }
}

/// `POST /api/signup` {email, password, agentName?}
pub(super) async fn signup(
    State(state): State<HttpState>,
    RequestId(id): RequestId,
    JsonBody(request): JsonBody<SignupRequest>,
) -> Response {
    let email = request.email.clone();
    let identity = state.auth.identity();
    match identity
        .audited(gate("signup", &id, &email), identity.signup(request))
        .await
    {
        Ok(signed) => signed_in(&state, StatusCode::CREATED, signed),
        Err(error) => identity_error(error),
    }
}

/// `POST /api/signin` {email, password}
pub(super) async fn signin(
    State(state): State<HttpState>,
    RequestId(id): RequestId,
    JsonBody(request): JsonBody<SigninRequest>,
) -> Response {
    let email = request.email.clone();
    let identity = state.auth.identity();
    match identity
        .audited(gate("signin", &id, &email), identity.signin(request))
        .await
    {
        Ok(signed) => signed_in(&state, StatusCode::OK, signed),
        Err(error) => identity_error(error),
    }
}

/// The credentials this request came with; routes about "my session" need real ones, which
/// `--no-auth` requests do not have.
pub(super) struct Presented(Arc<Authenticated>);

impl<S: Send + Sync> FromRequestParts<S> for Presented {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        parts
            .extensions
            .get::<Arc<Authenticated>>()
            .cloned()
            .map(Presented)
            .ok_or_else(|| {
                error_response(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "this route needs `Authorization: Bearer <token>` or a browser session",
                )
            })
    }
}

/// `GET /api/session`
pub(super) async fn session(Presented(found): Presented) -> Response {
    let (via, expires_at, csrf_token) = match &found.via {
        AuthMethod::Bearer { expires_at, .. } => (Via::Bearer, expires_at, None),
        AuthMethod::Session {
            expires_at, csrf_token, ..
        } => (Via::Session, expires_at, Some(csrf_token.clone())),
    };
    axum::Json(SessionBody {
        authenticated: true,
        session: SessionInfo {
            agent_id: found.caller.agent_id.to_string(),
            agent_name: found.agent_name.clone(),
            role: found.caller.role,
            via,
            expires_at: expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            csrf_token,
        },
    })
    .into_response()
}

/// The gate step of a caller acting on its own credentials.
fn own<'a>(action: &'static str, request_id: &'a str, found: &'a Authenticated) -> GateStep<'a> {
    GateStep {
        action,
        request_id,
        caller: Some(&found.caller),
        subject: &found.caller.agent_id,
    }
}

/// `DELETE /api/session`: ends the browser session, or revokes the bearer token that called.
pub(super) async fn sign_out(
    State(state): State<HttpState>,
    RequestId(id): RequestId,
    Presented(found): Presented,
) -> Response {
    let identity = state.auth.identity();
    if let Err(error) = identity
        .audited(own("signout", &id, &found), identity.sign_out(&found))
        .await
    {
        return identity_error(error);
    }
    let mut response = axum::Json(DONE).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, None));
    response
}

/// `POST /api/session/token`: a fresh bearer token; the session and older tokens stay valid.
pub(super) async fn mint_token(
    State(state): State<HttpState>,
    RequestId(id): RequestId,
    Presented(found): Presented,
) -> Response {
    let identity = state.auth.identity();
    match identity
        .audited(own("session_token", &id, &found), identity.mint_token(&found))
        .await
    {
        Ok(credentials) => axum::Json(CredentialsReply {
            success: true,
            credentials: CredentialsBody::of(credentials, None),
        })
        .into_response(),
        Err(error) => identity_error(error),
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ForgotPassword {
    #[schemars(email, length(max = 254))]
    email: String,
}

/// `POST /api/forgot-password` {email}: the same answer whether or not the account exists.
pub(super) async fn forgot_password(
    State(state): State<HttpState>,
    RequestId(id): RequestId,
    JsonBody(request): JsonBody<ForgotPassword>,
) -> Response {
    let identity = state.auth.identity();
    let step = gate("forgot_password", &id, &request.email);
    match identity.audited(step, identity.forgot_password(&request.email)).await {
        Ok(()) => axum::Json(DONE).into_response(),
        Err(error) => identity_error(error),
    }
}

/// `POST /api/forgot-password/confirm` {email, token, newPassword}
pub(super) async fn confirm_reset(
    State(state): State<HttpState>,
    RequestId(id): RequestId,
    JsonBody(request): JsonBody<ResetConfirm>,
) -> Response {
    let email = request.email.clone();
    let identity = state.auth.identity();
    match identity
        .audited(gate("reset_password", &id, &email), identity.confirm_reset(request))
        .await
    {
        Ok(()) => axum::Json(DONE).into_response(),
        Err(error) => identity_error(error),
    }
}

/// Where this server is reached, as the client named it (the Host header passed the guard).
pub(super) fn public_base(state: &HttpState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let forwarded_https = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let scheme = if forwarded_https || state.config.identity.secure_cookies {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// `POST /register`: without a token, self-service (built-in primitives at most, a gate step);
/// with one, `agentos.agent_create` as that caller (an operator's agent).
pub(super) async fn register(
    State(state): State<HttpState>,
    found: Option<Extension<Arc<Authenticated>>>,
    RequestId(id): RequestId,
    call: ToolCall,
    connected: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Value>,
) -> Response {
    let client = connected.map(|Extension(ConnectInfo(addr))| addr.ip());
    let base = public_base(&state, &headers);
    let expires_in = format!("{}d", state.config.identity.token_ttl_days);
    if found.is_some() {
        return call
            .run_with_status("agentos.agent_create", body, StatusCode::CREATED, |_, mut created| {
                if let Value::Object(map) = &mut created {
                    map.insert("expiresIn".into(), Value::String(expires_in));
                    map.insert("mcpEndpoint".into(), Value::String(format!("{base}/mcp")));
                    map.insert("toolsEndpoint".into(), Value::String(format!("{base}/tools")));
                }
                created
            })
            .await;
    }
    let request: RegisterRequest = match serde_json::from_value(body) {
        Ok(request) => request,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("the JSON body is invalid: {error}"),
            );
        }
    };
    let agent_id = request.agent_id.clone();
    let identity = state.auth.identity();
    let registered = match identity
        .audited(
            gate("register", &id, &agent_id),
            identity.register_self(request, client),
        )
        .await
    {
        Ok(registered) => registered,
        Err(error) => return identity_error(error),
    };
    let (agent, credentials) = (registered.agent, registered.credentials);
    let pending = agent.status != "active";
    let body = RegisteredBody {
        status: agent.status.clone(),
        message: pending.then(|| {
            "registered, waiting for an operator's approval: the token works once an operator enables this \
             agent (agentos.agent_enable)"
                .to_owned()
        }),
        agent_id: agent.agent_id,
        name: agent.name,
        token: credentials.bearer_token,
        jti: credentials.jti,
        expires_in,
        expires_at: credentials
            .expires_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        allowed_domains: agent.allowed_domains,
        allowed_tools: agent.allowed_tools,
        mcp_endpoint: format!("{base}/mcp"),
        tools_endpoint: format!("{base}/tools"),
    };
    let status = if pending {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    (status, axum::Json(body)).into_response()
}

/// `GET /agent/me`: the calling agent's registration and activity.
pub(super) async fn me(
    State(state): State<HttpState>,
    Extension(identity): Extension<RequestIdentity>,
    headers: HeaderMap,
) -> Response {
    let agent_id = identity.caller.agent_id.clone();
    let agent = match state.auth.identity().agent(&agent_id).await {
        Ok(Some(agent)) => agent,
        Ok(None) => {
            return error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("agent `{agent_id}` is not registered"),
            );
        }
        Err(error) => return identity_error(error),
    };
    let (total_calls, last_active_ms) = match state.auth.identity().activity(&agent_id).await {
        Ok(activity) => activity,
        Err(error) => {
            tracing::error!(%error, "reading agent activity failed");
            (0, None)
        }
    };
    let base = public_base(&state, &headers);
    axum::Json(AgentMe {
        agent,
        total_calls,
        last_active_at: last_active_ms.and_then(rfc3339_of_ms),
        mcp_endpoint: format!("{base}/mcp"),
        tools_endpoint: format!("{base}/tools"),
    })
    .into_response()
}

fn rfc3339_of_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Adds `"success": true` to a tool's answer, as the account routes have always answered.
fn with_success(_: &HttpState, mut body: Value) -> Value {
    if let Value::Object(map) = &mut body {
        map.insert("success".into(), Value::Bool(true));
    }
    body
}

/// `GET /api/agents?status=&limit=&cursor=`
pub(super) async fn agents(call: ToolCall, params: Params) -> Response {
    match input_from(params, &["status", "cursor"], 500) {
        Ok(input) => call.run("agentos.agents_list", input).await,
        Err(response) => *response,
    }
}

/// `POST /api/agents/{agentId}/disable`
pub(super) async fn disable(call: ToolCall, Path(agent_id): Path<String>) -> Response {
    call.run("agentos.agent_disable", json!({ "agentId": agent_id })).await
}

/// `POST /api/agents/{agentId}/enable`
pub(super) async fn enable(call: ToolCall, Path(agent_id): Path<String>) -> Response {
    call.run("agentos.agent_enable", json!({ "agentId": agent_id })).await
}

/// `POST /api/tokens/revoke` {jti}
pub(super) async fn revoke_token(call: ToolCall, JsonBody(body): JsonBody<Value>) -> Response {
    match body {
        body @ Value::Object(_) => call.run_then("agentos.token_revoke", body, with_success).await,
        _ => error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "expected {\"jti\": \"...\"}",
        ),
    }
}

/// `DELETE /api/agents/{agentId}/tokens`: every token of that agent issued until now stops working.
pub(super) async fn revoke_agent_tokens(call: ToolCall, Path(agent_id): Path<String>) -> Response {
    call.run_then(
        "agentos.agent_tokens_revoke",
        json!({ "agentId": agent_id }),
        with_success,
    )
    .await
}

pub(super) fn signup_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("signup", "Create an account")
        .describe("Creates an operator account and its agent, starts a browser session (Set-Cookie).")
        .json_body(schema_of::<SignupRequest>())
        .reply(201, "Signed up.", schema_of::<SignedInBody>())
        .errors(&[403, 409, 503])
}

pub(super) fn signin_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("signin", "Sign in")
        .json_body(schema_of::<SigninRequest>())
        .reply(200, "Signed in.", schema_of::<SignedInBody>())
        .errors(&[401, 403, 503])
}

pub(super) fn session_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("session", "The current session")
        .reply(200, "Who is signed in.", schema_of::<SessionBody>())
}

pub(super) fn sign_out_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("signOut", "Sign out")
        .describe("Ends the browser session, or revokes the bearer token that called.")
        .reply(200, "Signed out.", schema_of::<Done>())
}

pub(super) fn mint_token_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("mintToken", "Mint a bearer token")
        .reply(200, "A fresh token.", schema_of::<CredentialsReply>())
}

pub(super) fn forgot_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("forgotPassword", "Request a password reset")
        .describe("The same answer whether or not the account exists.")
        .json_body(schema_of::<ForgotPassword>())
        .reply(200, "Requested.", schema_of::<Done>())
        .errors(&[503])
}

pub(super) fn confirm_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("confirmReset", "Reset the password")
        .json_body(schema_of::<ResetConfirm>())
        .reply(
            200,
            "Reset; the account's sessions and tokens end.",
            schema_of::<Done>(),
        )
        .errors(&[503])
}

pub(super) fn register_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("register", "Register an agent")
        .describe(
            "Without a token: self-service (built-in primitives at most). With a token: \
             `agentos.agent_create` as that caller (operators and ops-admins; others get 404).",
        )
        .json_body(schema_of::<RegisterRequest>())
        .reply(
            201,
            "Registered; `token` is its bearer token.",
            schema_of::<RegisteredBody>(),
        )
        .tool_backed()
}

pub(super) fn me_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("me", "The calling agent's registration")
        .reply(200, "The agent.", schema_of::<AgentMe>())
        .errors(&[404])
}

fn agent_path(op: Op) -> Op {
    op.param(
        "path",
        "agentId",
        true,
        json!({"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"}),
        "The agent.",
    )
}

pub(super) fn agents_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("agents", "List the agents you oversee")
        .describe("Backed by `agentos.agents_list` (operators and ops-admins; others get 404).")
        .param(
            "query",
            "status",
            false,
            json!({"type": "string", "enum": ["active", "disabled"]}),
            "Only agents in this state.",
        )
        .param(
            "query",
            "limit",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": 500}),
            "1-500.",
        )
        .param(
            "query",
            "cursor",
            false,
            json!({"type": "string"}),
            "`nextCursor` of the previous page.",
        )
        .reply(
            200,
            "Agents in id order.",
            tool_schema!(schemas, "agents_list", "outputSchema"),
        )
        .tool_backed()
}

pub(super) fn disable_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    agent_path(op.named("disableAgent", "Disable an agent"))
        .describe("Backed by `agentos.agent_disable`: its tokens and sessions stop working at once.")
        .reply(200, "Disabled.", tool_schema!(schemas, "agent_disable", "outputSchema"))
        .tool_backed()
}

pub(super) fn enable_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    agent_path(op.named("enableAgent", "Enable an agent"))
        .describe("Backed by `agentos.agent_enable`.")
        .reply(200, "Enabled.", tool_schema!(schemas, "agent_enable", "outputSchema"))
        .tool_backed()
}

pub(super) fn revoke_token_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("revokeToken", "Revoke one token")
        .describe("Backed by `agentos.token_revoke`; the answer also carries `success: true`.")
        .json_body(tool_schema!(schemas, "token_revoke", "inputSchema"))
        .reply(200, "Revoked.", tool_schema!(schemas, "token_revoke", "outputSchema"))
        .tool_backed()
}

pub(super) fn revoke_agent_tokens_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    agent_path(op.named("revokeAgentTokens", "Revoke an agent's tokens"))
        .describe("Backed by `agentos.agent_tokens_revoke`; the answer also carries `success: true`.")
        .reply(
            200,
            "Every token of the agent issued until now is revoked.",
            tool_schema!(schemas, "agent_tokens_revoke", "outputSchema"),
        )
        .tool_backed()
}

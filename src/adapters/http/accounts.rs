//! Accounts, sessions and agents over REST: `/api/signup`, `/api/signin`, `/api/session`,
//! `/api/session/token`, `/api/forgot-password`, `/register`, `/agent/me` and the operator's
//! token revocations. These are the gate that produces callers, so they speak to the identity
//! service directly; everything an agent does afterwards goes through the registry.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::SESSION_COOKIE;
use super::json::JsonBody;
use super::{HttpState, error_response};
use crate::adapters::mcp::RequestIdentity;
use crate::identity::{
    AuthMethod, Authenticated, IdentityError, NewSession, RegisterRequest, ResetConfirm, SignedIn, SigninRequest,
    SignupRequest,
};

fn identity_error(error: IdentityError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(%error, "identity operation failed");
    }
    error_response(status, error.code(), &error.to_string())
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
    let mut credentials = signed.credentials.to_json();
    if let Value::Object(map) = &mut credentials {
        map.insert("agentName".into(), Value::String(signed.agent_name.clone()));
    }
    let body = json!({
        "success": true,
        "credentials": credentials,
        "csrfToken": signed.session.csrf_token,
    });
    let mut response = (status, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(state, Some(&signed.session)));
    response
}

/// `POST /api/signup` {email, password, agentName?}
pub(super) async fn signup(State(state): State<HttpState>, JsonBody(request): JsonBody<SignupRequest>) -> Response {
    match state.auth.identity().signup(request).await {
        Ok(signed) => signed_in(&state, StatusCode::CREATED, signed),
        Err(error) => identity_error(error),
    }
}

/// `POST /api/signin` {email, password}
pub(super) async fn signin(State(state): State<HttpState>, JsonBody(request): JsonBody<SigninRequest>) -> Response {
    match state.auth.identity().signin(request).await {
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
    let (via, expires_at, csrf) = match &found.via {
        AuthMethod::Bearer { expires_at, .. } => ("bearer", expires_at, None),
        AuthMethod::Session {
            expires_at, csrf_token, ..
        } => ("session", expires_at, Some(csrf_token.clone())),
    };
    let mut session = json!({
        "agentId": &*found.caller.agent_id,
        "agentName": found.agent_name,
        "role": found.caller.role.as_str(),
        "via": via,
        "expiresAt": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    if let (Some(csrf), Value::Object(map)) = (csrf, &mut session) {
        map.insert("csrfToken".into(), Value::String(csrf));
    }
    axum::Json(json!({ "authenticated": true, "session": session })).into_response()
}

/// `DELETE /api/session`: ends the browser session, or revokes the bearer token that called.
pub(super) async fn sign_out(State(state): State<HttpState>, Presented(found): Presented) -> Response {
    if let Err(error) = state.auth.identity().sign_out(&found).await {
        return identity_error(error);
    }
    let mut response = axum::Json(json!({ "success": true })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, None));
    response
}

/// `POST /api/session/token`: a fresh bearer token; the session and older tokens stay valid.
pub(super) async fn mint_token(State(state): State<HttpState>, Presented(found): Presented) -> Response {
    match state.auth.identity().mint_token(&found).await {
        Ok(credentials) => axum::Json(json!({ "success": true, "credentials": credentials.to_json() })).into_response(),
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
    JsonBody(request): JsonBody<ForgotPassword>,
) -> Response {
    match state.auth.identity().forgot_password(&request.email).await {
        Ok(()) => axum::Json(json!({ "success": true })).into_response(),
        Err(error) => identity_error(error),
    }
}

/// `POST /api/forgot-password/confirm` {email, token, newPassword}
pub(super) async fn confirm_reset(
    State(state): State<HttpState>,
    JsonBody(request): JsonBody<ResetConfirm>,
) -> Response {
    match state.auth.identity().confirm_reset(request).await {
        Ok(()) => axum::Json(json!({ "success": true })).into_response(),
        Err(error) => identity_error(error),
    }
}

/// Where this server is reached, as the client named it (the Host header passed the guard).
fn public_base(state: &HttpState, headers: &HeaderMap) -> String {
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

/// `POST /register`: without a token, self-service (built-in primitives at most); with an
/// operator's token, an agent of that operator's account.
pub(super) async fn register(
    State(state): State<HttpState>,
    found: Option<Extension<Arc<Authenticated>>>,
    headers: HeaderMap,
    JsonBody(request): JsonBody<RegisterRequest>,
) -> Response {
    let by = found.as_ref().map(|Extension(found)| found.caller.as_ref());
    let registered = match state.auth.identity().register_agent(by, request).await {
        Ok(registered) => registered,
        Err(error) => return identity_error(error),
    };
    let base = public_base(&state, &headers);
    let agent = &registered.agent;
    let body = json!({
        "agentId": agent.agent_id,
        "name": agent.name,
        "token": registered.credentials.bearer_token,
        "expiresIn": format!("{}d", state.config.identity.token_ttl_days),
        "expiresAt": registered.credentials.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "allowedDomains": agent.allowed_domains,
        "allowedTools": agent.allowed_tools,
        "mcpEndpoint": format!("{base}/mcp"),
        "toolsEndpoint": format!("{base}/tools"),
    });
    (StatusCode::CREATED, axum::Json(body)).into_response()
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
    let mut body = serde_json::to_value(&agent).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut body {
        map.insert("totalCalls".into(), json!(total_calls));
        map.insert("lastActiveAt".into(), json!(last_active_ms.and_then(rfc3339_of_ms)));
        map.insert("mcpEndpoint".into(), json!(format!("{base}/mcp")));
        map.insert("toolsEndpoint".into(), json!(format!("{base}/tools")));
    }
    axum::Json(body).into_response()
}

fn rfc3339_of_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RevokeToken {
    jti: String,
}

/// `POST /api/tokens/revoke` {jti}: an operator (or the token's own agent) withdraws one token.
pub(super) async fn revoke_token(
    State(state): State<HttpState>,
    Extension(identity): Extension<RequestIdentity>,
    JsonBody(request): JsonBody<RevokeToken>,
) -> Response {
    match state.auth.identity().revoke_token(&identity.caller, &request.jti).await {
        Ok(()) => axum::Json(json!({ "success": true })).into_response(),
        Err(error) => identity_error(error),
    }
}

/// `DELETE /api/agents/{agentId}/tokens`: every token of that agent issued until now stops working.
pub(super) async fn revoke_agent_tokens(
    State(state): State<HttpState>,
    Extension(identity): Extension<RequestIdentity>,
    Path(agent_id): Path<String>,
) -> Response {
    if agent_id.is_empty()
        || agent_id.len() > 64
        || !agent_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return error_response(
            StatusCode::BAD_REQUEST,
            "invalid_agent_id",
            "agent ids are 1-64 characters of a-z, 0-9, `-` and `_`",
        );
    }
    match state
        .auth
        .identity()
        .revoke_agent_tokens(&identity.caller, &agent_id)
        .await
    {
        Ok(()) => axum::Json(json!({ "success": true, "agentId": agent_id })).into_response(),
        Err(error) => identity_error(error),
    }
}

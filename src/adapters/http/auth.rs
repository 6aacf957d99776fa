//! Who is calling: every request is authenticated once, here, by its route's guard (built from
//! the route table), and a route that reaches no tool is charged to its rate limit through the
//! registry's limiter (calls are charged by the pipeline). The caller travels in the request's
//! extensions; routes never read credentials themselves, and the registry decides what that
//! caller may see and call.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error_response;
use super::routes::{Access, Charge};
use crate::adapters::mcp::RequestIdentity;
use crate::identity::{AuthError, AuthMethod, Authenticated, Identity};
use crate::registry::{CallError, Caller, LimitClass, NameStyle, Registry, ToolPolicy};

/// The browser session cookie set by sign-up and sign-in.
pub(super) const SESSION_COOKIE: &str = "agentos_session";
/// Cookie-authenticated requests that change state must echo the session's CSRF token here.
pub(super) const CSRF_HEADER: &str = "x-csrf-token";

/// What the authentication layer needs; shared by every route's guard.
pub(super) struct Authenticator {
    identity: Arc<Identity>,
    /// `false` under `--no-auth`: every request acts as the local owner.
    required: bool,
    owner: Arc<Caller>,
    /// Who an unauthenticated caller of a public route is: it sees the public catalog.
    anonymous: Arc<Caller>,
    /// Charges what reaches no tool to the same limits as calls.
    registry: Arc<Registry>,
    name_style: NameStyle,
}

impl Authenticator {
    pub fn new(
        identity: Arc<Identity>,
        required: bool,
        owner: Arc<Caller>,
        registry: Arc<Registry>,
        name_style: NameStyle,
    ) -> Self {
        let public_catalog = ToolPolicy::parse(&["agentos.*"]).unwrap_or_else(|_| ToolPolicy::none());
        Self {
            identity,
            required,
            owner,
            anonymous: Arc::new(Caller::anonymous(public_catalog)),
            registry,
            name_style,
        }
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }
}

/// One route's authentication: the shared authenticator, the route's row of the table, and the
/// budget of request bodies in transit (a body's budget is its caller's, known once
/// authenticated).
#[derive(Clone)]
pub(super) struct Guard {
    pub auth: Arc<Authenticator>,
    pub access: Access,
    pub charge: Charge,
    pub bodies: Arc<super::bodies::Bodies>,
}

/// The middleware in front of each route: authenticate, check CSRF, charge what reaches no
/// tool, read the body, then run the route with the caller in the request's extensions.
pub(super) async fn authenticate(State(guard): State<Guard>, mut request: Request, next: Next) -> Response {
    let auth = &guard.auth;
    if guard.access == Access::Unchecked {
        return super::bodies::read_in_full(&guard.bodies, request, next).await;
    }
    let authenticated = if !auth.required || guard.access == Access::Gate {
        None
    } else {
        match credentials(&auth.identity, request.headers()).await {
            Ok(found) => found,
            Err(response) => return *response,
        }
    };
    if let Some(found) = &authenticated
        && let Err(response) = check_csrf(request.method(), request.headers(), found)
    {
        return *response;
    }
    let caller = match (&authenticated, auth.required) {
        (Some(found), _) => found.caller.clone(),
        (None, false) => auth.owner.clone(),
        (None, true) if guard.access == Access::Protected => return unauthenticated(),
        (None, true) => auth.anonymous.clone(),
    };
    let class = match guard.charge {
        Charge::Api => Some(LimitClass::Api),
        Charge::Auth if caller.is_anonymous() => Some(LimitClass::Auth),
        _ => None,
    };
    let verdict = match class {
        Some(class) => match auth.registry.charge(&caller, client_address(&request), class) {
            Ok(verdict) => verdict,
            Err(refusal) => {
                tracing::info!(agent = %caller.agent_id, class = class.as_str(), "rate limited");
                return super::call_error_response(&CallError::RateLimited(refusal));
            }
        },
        None => None,
    };
    let extensions = request.extensions_mut();
    extensions.insert(RequestIdentity {
        caller,
        name_style: auth.name_style,
    });
    if let Some(found) = authenticated {
        extensions.insert(found);
    }
    let mut response = super::bodies::read_in_full(&guard.bodies, request, next).await;
    if let Some(verdict) = verdict {
        super::annotate_verdict(response.headers_mut(), &verdict);
    }
    response
}

/// The client's address, when the server knows it (it always does over TCP).
pub(super) fn client_address(request: &Request) -> Option<IpAddr> {
    client_of(request.extensions())
}

pub(super) fn client_of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

/// The bearer token, else the session cookie, else nothing. Invalid credentials are a 401 even
/// on public routes: a client sending a bad token should learn so, not get the anonymous view.
async fn credentials(identity: &Identity, headers: &HeaderMap) -> Result<Option<Arc<Authenticated>>, Box<Response>> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Box::new(invalid_credentials("the Authorization header must be `Bearer <token>`")))?;
        return identity
            .authenticate_bearer(token)
            .await
            .map(Some)
            .map_err(|error| Box::new(refused(&error)));
    }
    match session_cookie(headers) {
        Some(cookie) => identity
            .authenticate_session(cookie)
            .await
            .map(|found| Some(Arc::new(found)))
            .map_err(|error| Box::new(refused(&error))),
        None => Ok(None),
    }
}

/// The value of the session cookie, if the request carries one.
pub(super) fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// A browser sends cookies with cross-site form posts; only a page of ours knows the CSRF token.
fn check_csrf(method: &Method, headers: &HeaderMap, found: &Authenticated) -> Result<(), Box<Response>> {
    let AuthMethod::Session { csrf_token, .. } = &found.via else {
        return Ok(());
    };
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if sent.is_some_and(|sent| constant_time_eq(sent.as_bytes(), csrf_token.as_bytes())) {
        Ok(())
    } else {
        Err(Box::new(error_response(
            StatusCode::FORBIDDEN,
            "csrf_token_missing",
            "requests authenticated by the session cookie that change state must send the session's \
             CSRF token (from sign-in or GET /api/session) in the X-CSRF-Token header",
        )))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn with_challenge(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"agentos\""),
    );
    response
}

fn unauthenticated() -> Response {
    with_challenge(error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this route needs `Authorization: Bearer <token>` or a browser session; get a token with \
         POST /api/signin, POST /api/signup or POST /register (the owner's is in <data_dir>/owner-token)",
    ))
}

fn invalid_credentials(message: &str) -> Response {
    with_challenge(error_response(StatusCode::UNAUTHORIZED, "invalid_token", message))
}

/// A credential that did not verify: 401 with the reason, or 503 when the store could not answer.
fn refused(error: &AuthError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    if status == StatusCode::UNAUTHORIZED {
        with_challenge(error_response(status, error.code(), &error.to_string()))
    } else {
        error_response(status, error.code(), &error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; agentos_session=abc ; b=2"),
        );
        assert_eq!(session_cookie(&headers), Some("abc"));
        headers.insert(header::COOKIE, HeaderValue::from_static("agentos_session="));
        assert_eq!(session_cookie(&headers), None);
    }
}

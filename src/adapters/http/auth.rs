//! Who is calling: every request is authenticated once, here, before any route runs, then charged
//! to its rate limit. The caller travels in the request's extensions; routes never read
//! credentials themselves, and the registry decides what that caller may see and call.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error_response;
use super::limit::{RateLimiter, RouteClass};
use crate::adapters::mcp::RequestIdentity;
use crate::identity::{AuthError, AuthMethod, Authenticated, Identity};
use crate::ops::metrics::Metrics;
use crate::registry::{Caller, NameStyle, ToolPolicy};

/// The browser session cookie set by sign-up and sign-in.
pub(super) const SESSION_COOKIE: &str = "agentos_session";
/// Cookie-authenticated requests that change state must echo the session's CSRF token here.
pub(super) const CSRF_HEADER: &str = "x-csrf-token";

/// How a route may be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Liveness and (when `[metrics] public`) metrics: never authenticated, never limited.
    Unchecked,
    /// Open to anyone; credentials, when sent, must be valid and shape the answer.
    Public,
    /// The gate that produces credentials (sign-up, sign-in, reset): presented credentials are
    /// ignored so a stale cookie never blocks signing in again.
    Gate,
    /// Needs a bearer token or a browser session.
    Protected,
}

fn classify(method: &Method, path: &str) -> (Access, RouteClass) {
    match (method, path) {
        (_, "/health" | "/metrics") => (Access::Unchecked, RouteClass::Api),
        (&Method::GET, "/tools" | "/api/skills" | "/api/ops/metrics" | "/api/ops/crew" | "/openapi.json" | "/docs") => {
            (Access::Public, RouteClass::Api)
        }
        (&Method::POST, "/register") => (Access::Public, RouteClass::Auth),
        (&Method::POST, "/api/signup" | "/api/signin" | "/api/forgot-password" | "/api/forgot-password/confirm") => {
            (Access::Gate, RouteClass::Auth)
        }
        (_, "/mcp") => (Access::Protected, RouteClass::Mcp),
        _ if path.starts_with("/health/") => (Access::Unchecked, RouteClass::Api),
        _ => (Access::Protected, RouteClass::Api),
    }
}

/// What the authentication layer needs; cheap to clone.
#[derive(Clone)]
pub(super) struct Authenticator {
    identity: Arc<Identity>,
    /// `false` under `--no-auth`: every request acts as the local owner.
    required: bool,
    owner: Arc<Caller>,
    /// Who an unauthenticated caller of a public route is: it sees the public catalog.
    anonymous: Arc<Caller>,
    limiter: Option<Arc<RateLimiter>>,
    name_style: NameStyle,
    /// Counts rate-limit refusals; also says whether `/metrics` is open to anyone.
    metrics: Arc<Metrics>,
}

impl Authenticator {
    pub fn new(
        identity: Arc<Identity>,
        required: bool,
        owner: Arc<Caller>,
        limiter: Option<RateLimiter>,
        name_style: NameStyle,
        metrics: Arc<Metrics>,
    ) -> Self {
        let public_catalog = ToolPolicy::parse(&["agentos.*"]).unwrap_or_else(|_| ToolPolicy::none());
        Self {
            identity,
            required,
            owner,
            anonymous: Arc::new(Caller::agent("anonymous", public_catalog, Vec::new())),
            limiter: limiter.map(Arc::new),
            name_style,
            metrics,
        }
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }
}

/// The middleware: authenticate, check CSRF, rate-limit, then run the route with the caller.
pub(super) async fn authenticate(State(auth): State<Authenticator>, mut request: Request, next: Next) -> Response {
    let (mut access, class) = classify(request.method(), request.uri().path());
    // A private `/metrics` needs a caller (the route itself then wants an ops-admin).
    if access == Access::Unchecked && !auth.metrics.public() && request.uri().path() == "/metrics" {
        access = Access::Protected;
    }
    if access == Access::Unchecked {
        return next.run(request).await;
    }
    let authenticated = if !auth.required || access == Access::Gate {
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
        (None, true) if access == Access::Protected => return unauthenticated(),
        (None, true) => auth.anonymous.clone(),
    };
    let verdict = match &auth.limiter {
        Some(limiter) if !caller.is_admin() => {
            let key = match &authenticated {
                Some(found) => found.caller.agent_id.to_string(),
                None => client_address(&request),
            };
            let verdict = limiter.check(class, &key);
            if !verdict.allowed {
                tracing::info!(agent = %caller.agent_id, class = ?class, "rate limited");
                auth.metrics.record_rate_limited(class.as_str());
                return RateLimiter::refusal(class, &verdict);
            }
            Some(verdict)
        }
        _ => None,
    };
    let extensions = request.extensions_mut();
    extensions.insert(RequestIdentity {
        caller,
        name_style: auth.name_style,
    });
    if let Some(found) = authenticated {
        extensions.insert(Arc::new(found));
    }
    let mut response = next.run(request).await;
    if let Some(verdict) = verdict {
        RateLimiter::annotate(response.headers_mut(), &verdict);
    }
    response
}

/// The bearer token, else the session cookie, else nothing. Invalid credentials are a 401 even
/// on public routes: a client sending a bad token should learn so, not get the anonymous view.
async fn credentials(identity: &Identity, headers: &HeaderMap) -> Result<Option<Authenticated>, Box<Response>> {
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
            .map(Some)
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

fn client_address(request: &Request) -> String {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
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
    fn routes_are_protected_unless_listed() {
        assert_eq!(classify(&Method::GET, "/health").0, Access::Unchecked);
        assert_eq!(classify(&Method::GET, "/tools").0, Access::Public);
        assert_eq!(classify(&Method::POST, "/tools").0, Access::Protected);
        assert_eq!(classify(&Method::POST, "/api/signin"), (Access::Gate, RouteClass::Auth));
        assert_eq!(classify(&Method::POST, "/register"), (Access::Public, RouteClass::Auth));
        assert_eq!(classify(&Method::POST, "/mcp"), (Access::Protected, RouteClass::Mcp));
        assert_eq!(classify(&Method::GET, "/api/audit").0, Access::Protected);
        assert_eq!(classify(&Method::GET, "/agent/me").0, Access::Protected);
    }

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

//! Layers every route passes besides authentication: CORS for configured browser origins and
//! the request-body cap.

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;

use super::{auth, error_response};

/// CORS for browser apps on other origins: none unless configured.
pub(super) fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let headers = [
        axum::http::header::AUTHORIZATION,
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderName::from_static(auth::CSRF_HEADER),
        axum::http::HeaderName::from_static("mcp-session-id"),
        axum::http::HeaderName::from_static("mcp-protocol-version"),
        axum::http::HeaderName::from_static("last-event-id"),
    ];
    let exposed = [
        axum::http::HeaderName::from_static("mcp-session-id"),
        axum::http::HeaderName::from_static("retry-after"),
        axum::http::HeaderName::from_static("x-ratelimit-limit"),
        axum::http::HeaderName::from_static("x-ratelimit-remaining"),
        axum::http::HeaderName::from_static("x-ratelimit-reset"),
    ];
    let layer = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers(headers)
        .expose_headers(exposed)
        .max_age(std::time::Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        return Some(layer.allow_origin(AllowOrigin::any()));
    }
    let listed: Vec<axum::http::HeaderValue> = origins
        .iter()
        .filter_map(|origin| axum::http::HeaderValue::from_str(origin.trim_end_matches('/')).ok())
        .collect();
    Some(layer.allow_origin(AllowOrigin::list(listed)).allow_credentials(true))
}

/// A declared body over the cap is refused before a byte of it is read; bodies without a length
/// are capped as they are read (`DefaultBodyLimit`, and `/mcp` reads with the same cap).
pub(super) async fn refuse_large_bodies(
    State(max): State<usize>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("request bodies are limited to {max} bytes"),
        );
    }
    next.run(request).await
}

//! Layers every route passes besides authentication: CORS for configured browser origins and
//! the request-body cap (with the draining that lets a refused sender read its 413).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;

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

/// What is read and thrown away of a refused body so that its sender, still writing, reads the
/// 413 instead of a reset connection; past this much (or this long) the connection is closed.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Bodies declared over the cap get a JSON 413 before they are used, and the rest of a refused
/// body is drained, within bounds: a server that closes a connection with unread data makes the
/// kernel reset it, and the client, still sending, then sees a broken pipe instead of the answer.
/// Bodies without a declared length (chunked) are counted as they arrive, after authentication,
/// by `bodies::read_in_full`, under the body deadline and the caller's budget.
pub(super) async fn refuse_large_bodies(
    State(max): State<usize>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        drain(request.into_body()).await;
        return too_large(max);
    }
    next.run(request).await
}

pub(super) fn too_large(max: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &format!("request bodies are limited to {max} bytes"),
    )
}

/// Reads and discards what is left of `body`, at most [`DRAIN_BYTES`] for [`DRAIN_TIME`].
pub(super) async fn drain(mut body: Body) {
    let discard = async {
        let mut drained = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            drained += frame.data_ref().map_or(0, |data| data.len());
            if drained > DRAIN_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
}

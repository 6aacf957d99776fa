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

/// Bodies over the cap get a JSON 413. A declared length over it is refused before the body is
/// used; a body without a declared length (chunked) is read here up to the cap and handed on
/// whole. Either way the rest of a refused body is drained, within bounds: a server that closes
/// a connection with unread data makes the kernel reset it, and the client, still sending, then
/// sees a broken pipe instead of the answer.
pub(super) async fn refuse_large_bodies(
    State(max): State<usize>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = request.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = declared.is_none() && headers.contains_key(header::TRANSFER_ENCODING);
    if declared.is_some_and(|length| length > max as u64) {
        drain(request.into_body()).await;
        return too_large(max);
    }
    if !chunked {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    match read_capped(body, max).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(Some(rest)) => {
            drain(rest).await;
            too_large(max)
        }
        Err(None) => error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request body could not be read",
        ),
    }
}

fn too_large(max: usize) -> Response {
    error_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &format!("request bodies are limited to {max} bytes"),
    )
}

/// The whole body if it fits in `max` bytes; else `Err(Some(rest))` to drain, or `Err(None)`
/// when reading failed (the client went away).
async fn read_capped(mut body: Body, max: usize) -> Result<Vec<u8>, Option<Body>> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| None)?;
        if let Some(data) = frame.data_ref() {
            if bytes.len() + data.len() > max {
                return Err(Some(body));
            }
            bytes.extend_from_slice(data);
        }
    }
    Ok(bytes)
}

/// Reads and discards what is left of `body`, at most [`DRAIN_BYTES`] for [`DRAIN_TIME`].
async fn drain(mut body: Body) {
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

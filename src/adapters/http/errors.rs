//! The one place registry refusals and tool failures become HTTP statuses and JSON error bodies,
//! for every route but the MCP transport (which answers in JSON-RPC terms).

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::registry::{CallError, FailureKind, Refusal, Verdict};

/// How long a client told "busy" should wait before it retries, in seconds.
const BUSY_RETRY_SECS: u64 = 1;

/// The HTTP status of a registry refusal, the same for every route.
pub(crate) fn call_error_status(error: &CallError) -> StatusCode {
    match error {
        CallError::UnknownTool(_) | CallError::NotFound(_) => StatusCode::NOT_FOUND,
        CallError::InvalidArguments { .. } => StatusCode::BAD_REQUEST,
        CallError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
        CallError::Cancelled(_) => StatusCode::SERVICE_UNAVAILABLE,
        CallError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        CallError::Failed { kind, .. } => failure_status(*kind).0,
    }
}

/// The headers that go with a refusal's status: `Retry-After` and `X-RateLimit-*` for a rate
/// limit, `Retry-After` for a busy store.
pub(crate) fn annotate_call_error(headers: &mut HeaderMap, error: &CallError) {
    match error {
        CallError::RateLimited(refusal) => annotate_refusal(headers, refusal),
        CallError::Failed { kind, .. } => annotate_failure(headers, *kind),
        _ => {}
    }
}

/// `Retry-After` for a failure a client should retry shortly (a busy store).
pub(crate) fn annotate_failure(headers: &mut HeaderMap, kind: FailureKind) {
    if kind == FailureKind::Busy {
        headers.insert("retry-after", HeaderValue::from(BUSY_RETRY_SECS));
    }
}

/// `Retry-After` and `X-RateLimit-*` of a refused charge.
pub(crate) fn annotate_refusal(headers: &mut HeaderMap, refusal: &Refusal) {
    headers.insert("retry-after", HeaderValue::from(refusal.retry_after_secs()));
    headers.insert("x-ratelimit-limit", HeaderValue::from(refusal.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(0u32));
    headers.insert("x-ratelimit-reset", HeaderValue::from(refusal.reset_secs));
}

/// `X-RateLimit-*` of an allowed charge.
pub(crate) fn annotate_verdict(headers: &mut HeaderMap, verdict: &Verdict) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(verdict.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(verdict.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(verdict.reset_secs));
}

/// The JSON error response of a registry refusal, with its status and headers.
pub(crate) fn call_error_response(error: &CallError) -> Response {
    let mut response = error_response(call_error_status(error), error.code(), &error.to_string());
    annotate_call_error(response.headers_mut(), error);
    response
}

/// The HTTP status and error code of a failed tool result, by its kind, the same for every route.
pub(crate) fn failure_status(kind: FailureKind) -> (StatusCode, &'static str) {
    match kind {
        FailureKind::Denied => (StatusCode::FORBIDDEN, "approval_denied"),
        FailureKind::Pending => (StatusCode::ACCEPTED, "approval_pending"),
        FailureKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        FailureKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_arguments"),
        FailureKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        FailureKind::Failed => (StatusCode::UNPROCESSABLE_ENTITY, "tool_failed"),
        FailureKind::Conflict => (StatusCode::CONFLICT, "conflict"),
        FailureKind::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        FailureKind::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
    }
}

/// The text of a failed tool result, for error bodies.
pub(crate) fn error_text(result: &rmcp::model::CallToolResult) -> String {
    crate::registry::result_text(result)
}

/// The JSON error body of every non-MCP route.
pub(crate) fn error_response(status: StatusCode, error: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": error, "message": message })),
    )
        .into_response()
}

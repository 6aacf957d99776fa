//! The one place registry refusals and tool failures become HTTP statuses and JSON error bodies,
//! for every route but the MCP transport (which answers in JSON-RPC terms).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The HTTP status of a registry refusal, the same for every route.
pub(crate) fn call_error_status(error: &crate::registry::CallError) -> StatusCode {
    use crate::registry::CallError;
    match error {
        CallError::UnknownTool(_) => StatusCode::NOT_FOUND,
        CallError::InvalidArguments { .. } => StatusCode::BAD_REQUEST,
        CallError::DeadlineExceeded { .. } => StatusCode::GATEWAY_TIMEOUT,
        CallError::Cancelled(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The HTTP status and error code of a failed tool result, by its kind, the same for every route.
pub(crate) fn failure_status(kind: crate::registry::FailureKind) -> (StatusCode, &'static str) {
    use crate::registry::FailureKind;
    match kind {
        FailureKind::Denied => (StatusCode::FORBIDDEN, "approval_denied"),
        FailureKind::Pending => (StatusCode::ACCEPTED, "approval_pending"),
        FailureKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        FailureKind::InvalidInput => (StatusCode::BAD_REQUEST, "invalid_arguments"),
        FailureKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
        FailureKind::Failed => (StatusCode::UNPROCESSABLE_ENTITY, "tool_failed"),
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

//! `ToolCall`: the extractor every REST route over a tool uses. It makes the request's caller a
//! call context (request id, front door, client address, the `api` rate-limit budget) and turns
//! the call's outcome into HTTP: the tool's structured content as the body, its failures and
//! the registry's refusals as statuses, the rate-limit verdict as `X-RateLimit-*` headers.

use std::sync::{Arc, OnceLock};

use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{
    HttpState, NamesQuery, annotate_failure, annotate_verdict, call_error_response, error_response, error_text,
    failure_status, identity_for, request,
};
use crate::registry::{CallContext, CallError, FailureKind, LimitClass, Verdict, approval_id_of, failure_kind};

/// Who is calling a REST route, ready to call a tool as them.
pub(super) struct ToolCall {
    state: HttpState,
    ctx: CallContext,
    verdict: Arc<OnceLock<Verdict>>,
}

impl FromRequestParts<HttpState> for ToolCall {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, Response> {
        let Query(query) = Query::<NamesQuery>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let identity = identity_for(state, &query, &parts.headers, &parts.extensions).map_err(|response| *response)?;
        // The route as declared (`/api/traces/{id}`), so traces group by route, not by id.
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map_or_else(|| parts.uri.path(), |matched| matched.as_str());
        let mut ctx = CallContext::new(
            identity.caller,
            request::of(&parts.headers, &parts.extensions),
            state.registry.default_timeout(),
        )
        .with_front_door(format!("rest {} {route}", parts.method))
        .with_limit_class(LimitClass::Api)
        .with_client(super::auth::client_of(&parts.extensions));
        let verdict = ctx.reporting_rate();
        Ok(Self {
            state: state.clone(),
            ctx,
            verdict,
        })
    }
}

impl ToolCall {
    /// The server and the call context, for a route that makes its own calls (the studio).
    pub(super) fn parts(&self) -> (&HttpState, &CallContext) {
        (&self.state, &self.ctx)
    }

    /// `response` with the rate-limit verdict headers of the calls made in this context.
    pub(super) fn finish(&self, mut response: Response) -> Response {
        if let Some(verdict) = self.verdict.get() {
            annotate_verdict(response.headers_mut(), verdict);
        }
        response
    }

    /// Calls `tool` with a JSON object body as its input; anything else is a 400 showing `expected`.
    pub(super) async fn with_body(self, tool: &str, body: Value, expected: &str) -> Response {
        match body {
            input @ Value::Object(_) => self.run(tool, input).await,
            _ => error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("expected {expected}"),
            ),
        }
    }

    /// Calls `tool` and answers with its structured content.
    pub(super) async fn run(self, tool: &str, input: Value) -> Response {
        self.run_then(tool, input, |_, body| body).await
    }

    /// Calls `tool` and answers with its structured content as `shape` makes it (a route may
    /// add what only HTTP knows, such as its own URLs, and choose a status).
    pub(super) async fn run_then(
        self,
        tool: &str,
        input: Value,
        shape: impl FnOnce(&HttpState, Value) -> Value,
    ) -> Response {
        self.run_with_status(tool, input, StatusCode::OK, shape).await
    }

    pub(super) async fn run_with_status(
        self,
        tool: &str,
        input: Value,
        success: StatusCode,
        shape: impl FnOnce(&HttpState, Value) -> Value,
    ) -> Response {
        self.run_rendered(tool, input, |state, body| {
            (success, axum::Json(shape(state, body))).into_response()
        })
        .await
    }

    /// Calls `tool` and answers with what `render` makes of its structured content (a route
    /// whose answer is not JSON, such as audio); failures answer as in [`Self::run`].
    pub(super) async fn run_rendered(
        self,
        tool: &str,
        input: Value,
        render: impl FnOnce(&HttpState, Value) -> Response,
    ) -> Response {
        let mut response = match self.state.registry.call(&self.ctx, tool, input).await {
            Ok(result) if failure_kind(&result) == Some(FailureKind::Pending) => {
                // Accepted, not done: the body says which approval to ask about later.
                let body = json!({
                    "error": "approval_pending",
                    "message": error_text(&result),
                    "approvalId": approval_id_of(&result),
                });
                (StatusCode::ACCEPTED, axum::Json(body)).into_response()
            }
            Ok(result) if result.is_error == Some(true) => {
                let kind = failure_kind(&result).unwrap_or_default();
                let (status, code) = failure_status(kind);
                let mut response = error_response(status, code, &error_text(&result));
                annotate_failure(response.headers_mut(), kind);
                response
            }
            Ok(result) => render(&self.state, result.structured_content.unwrap_or(Value::Null)),
            // The route exists for everyone; its tool does not for this caller.
            Err(CallError::UnknownTool(_)) => error_response(
                StatusCode::NOT_FOUND,
                "not_found",
                &format!("not found: this route runs `{tool}`, which your credentials do not allow"),
            ),
            Err(error) => call_error_response(&error),
        };
        if let Some(verdict) = self.verdict.get() {
            annotate_verdict(response.headers_mut(), verdict);
        }
        response
    }
}

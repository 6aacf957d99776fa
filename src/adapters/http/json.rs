//! JSON request bodies for REST routes, refused with a JSON error that says what is wrong (a
//! missing or unknown field, a wrong type) instead of axum's plain-text rejections.

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::error_response;

pub(super) struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        let bytes = axum::body::Bytes::from_request(request, state).await.map_err(|_| {
            error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is too large or could not be read",
            )
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "this route needs a JSON object body",
            ));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|error| {
            error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("the JSON body is invalid: {error}"),
            )
        })
    }
}

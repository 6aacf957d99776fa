//! `POST /api/studio/command`: the studio's command language over HTTP. Every answer the studio
//! gives is a 200 whose `kind` says what it is (`help`, `preview`, `result`, `error`); a body
//! that is not a command is a 400.

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::accounts::public_base;
use super::json::JsonBody;
use super::openapi::{Op, schema_of};
use super::tool_call::ToolCall;
use crate::adapters::studio::{Answer, StudioRequest};

pub(super) async fn command(
    call: ToolCall,
    headers: HeaderMap,
    JsonBody(request): JsonBody<StudioRequest>,
) -> Response {
    let (state, ctx) = call.parts();
    let base = public_base(state, &headers);
    let answer = state.studio.run(ctx, &request, &base).await;
    call.finish(axum::Json(answer).into_response())
}

pub(super) fn command_doc(op: Op, _schemas: &mut Map<String, Value>) -> Op {
    op.named("studioCommand", "Run a studio command")
        .describe(
            "One command of the studio language as the caller (`help` lists them). Reading \
             commands answer `kind: result` at once; a command that changes something answers \
             `kind: preview` with a `confirmToken`, good once for 60 s for this caller and this \
             exact command text: send both back to run it. `advancedMode: true` is required for \
             raw SQL and publishing code. Every studio answer is a 200; `kind: error` says what \
             went wrong and, for an unknown command, the nearest one.",
        )
        .json_body(schema_of::<StudioRequest>())
        .reply(200, "The studio's answer.", schema_of::<Answer>())
}

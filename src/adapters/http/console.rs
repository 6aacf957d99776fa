//! `GET /console` and its two assets: the web console, a page a person signs into with the
//! browser session to run studio commands, try tools, install skills, decide approvals and read
//! ops. The page, its script and its style are embedded in the binary; everything the page shows
//! comes from the routes every client uses (`/api/session`, `/api/signin`, `/api/studio/command`
//! and the plain form of `/mcp`), so the console adds no power and no second implementation.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::errors::error_response;
use super::openapi::Op;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");

/// Nothing inline and nothing from elsewhere: script and style come only from this server, data
/// only from its own routes, and no other site may frame the console.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    // The assets change with the binary; revalidating costs one small request per load.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// `GET /console`
pub(super) async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

/// `GET /console/{asset}`: `app.js` or `app.css`.
pub(super) async fn file(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => asset(SCRIPT, "text/javascript; charset=utf-8"),
        "app.css" => asset(STYLE, "text/css; charset=utf-8"),
        _ => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "the console has two assets: /console/app.js and /console/app.css",
        ),
    }
}

pub(super) fn page_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("console", "The web console")
        .describe(
            "A page to sign into with an account: the studio command line, the tool catalog with a \
             form for each tool, the skills marketplace, the approvals queue and ops. Embedded in \
             the binary; it loads nothing from elsewhere.",
        )
        .reply_as(200, "The page.", "text/html", json!({"type": "string"}))
}

pub(super) fn file_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("consoleAsset", "A script or style of the web console")
        .param(
            "path",
            "asset",
            true,
            json!({"type": "string", "enum": ["app.js", "app.css"]}),
            "`app.js` or `app.css`.",
        )
        .reply_as(200, "The asset.", "text/plain", json!({"type": "string"}))
        .errors(&[404])
}

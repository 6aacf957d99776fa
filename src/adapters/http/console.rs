//! `GET /console` and its two assets: the web console, a page a person signs into with the
//! browser session to run studio commands, try tools, install skills, decide approvals and read
//! ops. The page, its script and its style are embedded in the binary; everything the page shows
//! comes from the routes every client uses (`/api/session`, `/api/signin`, `/api/studio/command`
//! and the plain form of `/mcp`), so the console adds no power and no second implementation.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::openapi::Op;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");

/// Nothing inline and nothing from elsewhere: script and style come only from this server, data
/// only from its own routes, and no other site may frame the console.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file with its entity tag (a digest of its bytes, so a new binary is a new tag).
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: String,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Self {
        let digest = blake3::hash(body.as_bytes());
        Self {
            body,
            content_type,
            etag: format!("\"{}\"", &digest.to_hex()[..16]),
        }
    }

    /// The file, or `304 Not Modified` when the browser already holds this version.
    fn serve(&self, request: &HeaderMap) -> Response {
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == self.etag));
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            self.body.into_response()
        };
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
        // Revalidated on each load: one small request answers 304 until the binary changes.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
        if let Ok(etag) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, etag);
        }
        response
    }
}

static PAGE_ASSET: LazyLock<Asset> = LazyLock::new(|| Asset::new(PAGE, "text/html; charset=utf-8"));
static SCRIPT_ASSET: LazyLock<Asset> = LazyLock::new(|| Asset::new(SCRIPT, "text/javascript; charset=utf-8"));
static STYLE_ASSET: LazyLock<Asset> = LazyLock::new(|| Asset::new(STYLE, "text/css; charset=utf-8"));

/// `GET /console`
pub(super) async fn page(headers: HeaderMap) -> Response {
    PAGE_ASSET.serve(&headers)
}

/// `GET /console/app.js`
pub(super) async fn script(headers: HeaderMap) -> Response {
    SCRIPT_ASSET.serve(&headers)
}

/// `GET /console/app.css`
pub(super) async fn style(headers: HeaderMap) -> Response {
    STYLE_ASSET.serve(&headers)
}

pub(super) fn page_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("console", "The web console")
        .describe(
            "A page to sign into with an account: the studio command line, the tool catalog with a \
             form for each tool, the skills marketplace, the approvals queue and ops. Embedded in \
             the binary; it loads nothing from elsewhere.",
        )
        .reply_as(200, "The page.", "text/html", json!({"type": "string"}))
        .empty_reply(304, "The browser's copy (`If-None-Match`) is current.")
}

pub(super) fn script_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("consoleScript", "The web console's script")
        .reply_as(200, "The script.", "text/javascript", json!({"type": "string"}))
        .empty_reply(304, "The browser's copy (`If-None-Match`) is current.")
}

pub(super) fn style_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("consoleStyle", "The web console's style sheet")
        .reply_as(200, "The style sheet.", "text/css", json!({"type": "string"}))
        .empty_reply(304, "The browser's copy (`If-None-Match`) is current.")
}

//! Network: HTTP requests to the caller's allowed domains, with SSRF protection.
//!
//! Every request, and every redirect hop (followed here, never by the client), passes the same
//! checks: the scheme is http or https, the host is in the caller's `allowedDomains`, and the
//! addresses connected to are public unless the operator allows more (`guard`). For host names
//! the address check runs inside the client's resolver on the addresses the connection will use
//! (`client`), so DNS rebinding cannot slip a private address past it. Responses are read as a
//! stream and cut at `max_response_bytes`; every request ends by its timeout or the call's deadline.

mod client;
mod guard;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::Services;
use crate::config::NetworkConfig;
use crate::registry::{CallContext, Hints, Tool, ToolBuilder, ToolFailure};
use guard::AddressPolicy;
pub use guard::OwnListeners;

/// Headers agentos sets itself; a request giving them is refused.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "http2-settings",
];
const MAX_HEADERS: usize = 64;
const MAX_HEADER_VALUE_BYTES: usize = 16 * 1024;
/// Finish a little before the call's deadline, so the model hears why.
const DEADLINE_MARGIN: Duration = Duration::from_millis(25);

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GetArgs {
    /// The http or https URL to fetch, e.g. `https://api.example.com/items?page=2`.
    url: String,
    /// Request headers, name to value, e.g. `{"Accept": "application/json"}`. Host,
    /// Content-Length, Transfer-Encoding and Connection are set by agentos and refused here.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Give up after this many milliseconds. Default and maximum: the operator's limit
    /// (30000 unless configured).
    #[schemars(range(min = 1))]
    timeout_ms: Option<u64>,
    /// Follow redirects (default true, up to the operator's limit of 5 unless configured).
    /// When false, a 3xx response is returned as it is, with its `location` header.
    follow_redirects: Option<bool>,
}

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl Method {
    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
            Method::Delete => reqwest::Method::DELETE,
            Method::Options => reqwest::Method::OPTIONS,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RequestArgs {
    /// The http or https URL, e.g. `https://api.example.com/items`.
    url: String,
    /// The HTTP method, in capitals: GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
    method: Method,
    /// Request headers, name to value, e.g. `{"Content-Type": "application/json",
    /// "Authorization": "Bearer ..."}`. Host, Content-Length, Transfer-Encoding and Connection
    /// are set by agentos and refused here.
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// The request body as text (sent as UTF-8), e.g. a JSON document. Set Content-Type too.
    body: Option<String>,
    /// The request body as base64, for binary data. Give `body` or `bodyBase64`, not both.
    body_base64: Option<String>,
    /// Give up after this many milliseconds. Default and maximum: the operator's limit
    /// (30000 unless configured).
    #[schemars(range(min = 1))]
    timeout_ms: Option<u64>,
    /// Follow redirects (default true, up to the operator's limit of 5 unless configured).
    /// When false, a 3xx response is returned as it is, with its `location` header.
    follow_redirects: Option<bool>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct HttpResult {
    /// The HTTP status of the final response, e.g. 200, 404 or 503.
    status: u16,
    /// Response headers with lower-case names; repeated headers are joined with ", "
    /// (`set-cookie` with newlines).
    headers: BTreeMap<String, String>,
    /// The body as text, when it is UTF-8 text, JSON, XML or similar (parse JSON yourself).
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    /// The body in base64, when it is binary or not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    body_base64: Option<String>,
    /// How many bytes of body were received (at most the operator's limit, 5 MiB unless
    /// configured).
    bytes: usize,
    /// True if the body was longer than the limit and was cut off there.
    truncated: bool,
    /// The URL of the final response, after redirects.
    url: String,
    /// How many redirects were followed.
    redirects: usize,
}

/// What one tool call asks for, whichever tool it came through.
struct Outgoing {
    url: String,
    method: Method,
    headers: BTreeMap<String, String>,
    body: Option<Vec<u8>>,
    timeout_ms: Option<u64>,
    follow_redirects: bool,
}

/// The shared client and policy. The client (and the system's root certificates it loads) is
/// built on the first request, so agentos starts fast and small when no agent uses the network.
struct Network {
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
    policy: Arc<AddressPolicy>,
    config: NetworkConfig,
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let config = services.config.network.clone();
    let policy = Arc::new(AddressPolicy::with_listeners(&config, services.own_listeners.clone()));
    let network = Arc::new(Network {
        client: std::sync::OnceLock::new(),
        policy,
        config,
    });
    let (get, request) = (network.clone(), network);
    vec![
        ToolBuilder::new("agentos.net_http_get")
            .title("Fetch a URL")
            .description(
                "Fetches an http or https URL with GET and returns the status, headers and body \
                 (text for UTF-8 text and JSON, base64 otherwise). Follows redirects. Only hosts \
                 in your allowedDomains (if you have a list) and public addresses are reachable; \
                 bodies longer than the operator's limit (5 MiB by default) come back cut off \
                 with truncated=true. Use agentos.net_http_request for other methods or a body.",
            )
            .hints(Hints {
                read_only: true,
                destructive: false,
                idempotent: true,
                open_world: true,
            })
            .handler(move |args: GetArgs, ctx| {
                let network = get.clone();
                async move {
                    let outgoing = Outgoing {
                        url: args.url,
                        method: Method::Get,
                        headers: args.headers,
                        body: None,
                        timeout_ms: args.timeout_ms,
                        follow_redirects: args.follow_redirects.unwrap_or(true),
                    };
                    network.fetch(outgoing, &ctx).await
                }
            }),
        ToolBuilder::new("agentos.net_http_request")
            .title("Send an HTTP request")
            .description(
                "Sends an HTTP request (GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS) with \
                 optional headers and a text or base64 body, e.g. to call a REST API, and returns \
                 the status, headers and body (text for UTF-8 text and JSON, base64 otherwise). \
                 Follows redirects (303 becomes GET; Authorization is dropped when the host \
                 changes). Only hosts in your allowedDomains (if you have a list) and public \
                 addresses are reachable; request and response sizes and time are limited.",
            )
            .hints(Hints {
                read_only: false,
                destructive: true,
                idempotent: false,
                open_world: true,
            })
            .handler(move |args: RequestArgs, ctx| {
                let network = request.clone();
                async move {
                    let body = match (args.body, args.body_base64) {
                        (Some(_), Some(_)) => {
                            return Err(ToolFailure::new("give `body` or `bodyBase64`, not both"));
                        }
                        (Some(text), None) => Some(text.into_bytes()),
                        (None, Some(encoded)) => Some(BASE64.decode(encoded.trim()).map_err(|e| {
                            ToolFailure::new(format!(
                                "`bodyBase64` is not valid base64 ({e}); encode the body with the standard alphabet"
                            ))
                        })?),
                        (None, None) => None,
                    };
                    let outgoing = Outgoing {
                        url: args.url,
                        method: args.method,
                        headers: args.headers,
                        body,
                        timeout_ms: args.timeout_ms,
                        follow_redirects: args.follow_redirects.unwrap_or(true),
                    };
                    network.fetch(outgoing, &ctx).await
                }
            }),
    ]
}

impl Network {
    async fn fetch(&self, outgoing: Outgoing, ctx: &CallContext) -> Result<HttpResult, ToolFailure> {
        let client = self
            .client
            .get_or_init(|| {
                let client = client::build(self.policy.clone());
                if let Err(error) = &client {
                    tracing::error!(%error, "cannot build the HTTP client; the network tools will fail");
                }
                client
            })
            .as_ref()
            .map_err(|e| ToolFailure::new(format!("agentos cannot make HTTP requests: {e}")))?;
        let url = parse_url(&outgoing.url)?;
        let headers = request_headers(&outgoing.headers)?;
        if let Some(body) = &outgoing.body
            && body.len() > self.config.max_request_bytes
        {
            return Err(ToolFailure::new(format!(
                "the request body is {} bytes; the limit is {} bytes. Send less",
                body.len(),
                self.config.max_request_bytes
            )));
        }
        let max_ms = self.config.timeout_ms;
        let wanted_ms = match outgoing.timeout_ms {
            Some(ms) if ms > max_ms => {
                return Err(ToolFailure::new(format!(
                    "`timeoutMs` may be at most {max_ms} (the operator's limit); ask for less"
                )));
            }
            Some(ms) => ms,
            None => max_ms,
        };
        let wanted = Duration::from_millis(wanted_ms);
        let left = ctx.remaining().saturating_sub(DEADLINE_MARGIN);
        let (limit, why) = if left < wanted {
            (left, "the time left for this call".to_owned())
        } else if outgoing.timeout_ms.is_some() && wanted_ms < max_ms {
            (
                wanted,
                format!("your `timeoutMs`; a larger one (at most {max_ms}) may help"),
            )
        } else {
            (
                wanted,
                "the operator's limit; try a faster endpoint or ask for less data".to_owned(),
            )
        };
        let host = guard::Target::of(&url).map(|t| t.to_string()).unwrap_or_default();
        let exchange = self.exchange(client, url, headers, outgoing, ctx);
        match tokio::time::timeout_at(Instant::now() + limit, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ToolFailure::new(format!(
                "the request to `{host}` did not finish within {} ms, {why}",
                limit.as_millis()
            ))),
        }
    }

    /// Sends the request, following redirects one checked hop at a time, and reads the answer.
    async fn exchange(
        &self,
        client: &reqwest::Client,
        mut url: Url,
        mut headers: HeaderMap,
        outgoing: Outgoing,
        ctx: &CallContext,
    ) -> Result<HttpResult, ToolFailure> {
        let (mut method, mut body) = (outgoing.method, outgoing.body);
        let mut redirects = 0;
        loop {
            let target = guard::check_url(
                &url,
                &ctx.caller.allowed_domains,
                ctx.caller.skill.as_deref(),
                &self.policy,
            )
            .map_err(ToolFailure::new)?;
            let host = target.to_string();
            let mut request = client
                .request(method.to_reqwest(), url.clone())
                .headers(headers.clone());
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let port = url.port_or_known_default().unwrap_or_default();
            let response = client::HOP_PORT
                .scope(port, request.send())
                .await
                .map_err(|e| ToolFailure::new(client::describe(&e, &host)))?;
            let status = response.status();
            let location = response.headers().get(header::LOCATION).cloned();
            let Some(location) = location.filter(|_| outgoing.follow_redirects && is_followed(status)) else {
                tracing::debug!(host, status = status.as_u16(), redirects, "http request answered");
                return read_response(response, self.config.max_response_bytes, redirects).await;
            };
            if redirects >= self.config.max_redirects {
                return Err(ToolFailure::new(format!(
                    "stopped after {redirects} redirects (the operator's limit); the last one, from `{url}`, \
                     pointed to {location:?}. Call the final URL directly, or set followRedirects to false"
                )));
            }
            let next = location
                .to_str()
                .ok()
                .and_then(|location| url.join(location).ok())
                .ok_or_else(|| ToolFailure::new(format!("`{url}` redirected to an invalid location {location:?}")))?;
            if status == StatusCode::SEE_OTHER && method != Method::Head
                || matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND) && method == Method::Post
            {
                method = Method::Get;
                body = None;
                for name in [header::CONTENT_TYPE, header::CONTENT_ENCODING, header::CONTENT_LANGUAGE] {
                    headers.remove(name);
                }
            }
            if !same_origin(&url, &next) {
                for name in [header::AUTHORIZATION, header::COOKIE, header::PROXY_AUTHORIZATION] {
                    headers.remove(name);
                }
            }
            redirects += 1;
            url = next;
        }
    }
}

fn is_followed(status: StatusCode) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
}

fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default()
}

fn parse_url(text: &str) -> Result<Url, ToolFailure> {
    let url = Url::parse(text.trim()).map_err(|e| {
        ToolFailure::new(format!(
            "`url` is not a valid URL ({e}); give a full URL such as https://example.com/path"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ToolFailure::new(format!(
            "`url` must be an http or https URL; `{}` is not supported",
            url.scheme()
        )));
    }
    Ok(url)
}

fn request_headers(given: &BTreeMap<String, String>) -> Result<HeaderMap, ToolFailure> {
    if given.len() > MAX_HEADERS {
        return Err(ToolFailure::new(format!(
            "{} headers given; at most {MAX_HEADERS} are allowed",
            given.len()
        )));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in given {
        let parsed = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| ToolFailure::new(format!("`headers`: `{name}` is not a valid HTTP header name")))?;
        if FORBIDDEN_HEADERS.contains(&parsed.as_str()) || parsed.as_str().starts_with("proxy-") {
            return Err(ToolFailure::new(format!(
                "`headers`: `{name}` is set by agentos and cannot be given; remove it"
            )));
        }
        if value.len() > MAX_HEADER_VALUE_BYTES {
            return Err(ToolFailure::new(format!(
                "`headers`: the value of `{name}` is {} bytes; at most {MAX_HEADER_VALUE_BYTES} are allowed",
                value.len()
            )));
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            ToolFailure::new(format!(
                "`headers`: the value of `{name}` has characters HTTP headers cannot carry (such as line breaks)"
            ))
        })?;
        headers.append(parsed, value);
    }
    Ok(headers)
}

/// Reads the final response, stopping at `cap` bytes of body.
async fn read_response(
    mut response: reqwest::Response,
    cap: usize,
    redirects: usize,
) -> Result<HttpResult, ToolFailure> {
    let status = response.status().as_u16();
    let url = response.url().to_string();
    let host = response.url().host_str().unwrap_or_default().to_owned();
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        let separator = if name == header::SET_COOKIE { "\n" } else { ", " };
        headers
            .entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(separator);
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let mut body = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ToolFailure::new(client::describe(&e, &host)))?
    {
        let room = cap - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let bytes = body.len();
    let (text, body_base64) = match as_text(headers.get("content-type").map(String::as_str), body, truncated) {
        Ok(text) => (Some(text), None),
        Err(binary) => (None, Some(BASE64.encode(binary))),
    };
    Ok(HttpResult {
        status,
        headers,
        body: text,
        body_base64,
        bytes,
        truncated,
        url,
        redirects,
    })
}

/// The body as text when its type is textual (or unknown) and it is UTF-8; a cut-off body may
/// end inside a character, which is dropped. Gives the bytes back otherwise.
fn as_text(content_type: Option<&str>, body: Vec<u8>, truncated: bool) -> Result<String, Vec<u8>> {
    if !content_type.is_none_or(is_textual) {
        return Err(body);
    }
    match String::from_utf8(body) {
        Ok(text) => Ok(text),
        Err(error) => {
            let utf8 = error.utf8_error();
            let mut body = error.into_bytes();
            if truncated && utf8.error_len().is_none() {
                body.truncate(utf8.valid_up_to());
                return String::from_utf8(body).map_err(|e| e.into_bytes());
            }
            Err(body)
        }
    }
}

fn is_textual(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind == "text"
        || subtype == "json"
        || subtype.ends_with("+json")
        || subtype == "xml"
        || subtype.ends_with("+xml")
        || matches!(
            subtype,
            "javascript" | "ecmascript" | "x-www-form-urlencoded" | "x-ndjson" | "yaml" | "x-yaml" | "toml" | "graphql"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Result<HeaderMap, ToolFailure> {
        request_headers(&pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect())
    }

    #[test]
    fn request_headers_are_checked() {
        let map = headers(&[("Accept", "application/json"), ("X-Token", "abc")]).unwrap();
        assert_eq!(map["accept"], "application/json");
        for forbidden in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "Connection",
            "Proxy-Authorization",
            "Upgrade",
        ] {
            let error = headers(&[(forbidden, "x")]).unwrap_err().message;
            assert!(error.contains(forbidden) && error.contains("remove it"), "{error}");
        }
        let error = headers(&[("bad header", "x")]).unwrap_err().message;
        assert!(error.contains("not a valid HTTP header name"), "{error}");
        let error = headers(&[("X-Split", "a\r\nHost: evil")]).unwrap_err().message;
        assert!(error.contains("line breaks"), "{error}");
        let many: Vec<(String, String)> = (0..=MAX_HEADERS).map(|i| (format!("x-{i}"), "v".into())).collect();
        assert!(request_headers(&many.into_iter().collect()).is_err());
    }

    #[test]
    fn urls_must_be_http_or_https() {
        assert!(parse_url("https://example.com/a?b=c").is_ok());
        let error = parse_url("not a url").unwrap_err().message;
        assert!(error.contains("`url` is not a valid URL"), "{error}");
        let error = parse_url("ftp://example.com/").unwrap_err().message;
        assert!(error.contains("http or https") && error.contains("`ftp`"), "{error}");
        assert!(parse_url("javascript:alert(1)").is_err());
    }

    #[test]
    fn text_and_binary_bodies_are_told_apart() {
        assert_eq!(
            as_text(Some("text/plain; charset=utf-8"), b"hi".to_vec(), false),
            Ok("hi".into())
        );
        assert_eq!(
            as_text(Some("application/json"), b"{}".to_vec(), false),
            Ok("{}".into())
        );
        assert_eq!(
            as_text(Some("application/problem+json"), b"{}".to_vec(), false),
            Ok("{}".into())
        );
        assert_eq!(
            as_text(Some("image/svg+xml"), b"<svg/>".to_vec(), false),
            Ok("<svg/>".into())
        );
        assert_eq!(as_text(None, b"plain".to_vec(), false), Ok("plain".into()));
        assert!(as_text(Some("image/png"), b"PNG".to_vec(), false).is_err());
        assert!(as_text(Some("application/octet-stream"), b"abc".to_vec(), false).is_err());
        assert!(as_text(Some("text/plain"), vec![0xff, 0xfe], false).is_err());
        // A cut in the middle of a character drops the partial character, only when truncated.
        let cut = "héllo".as_bytes()[..2].to_vec();
        assert_eq!(as_text(Some("text/plain"), cut.clone(), true), Ok("h".into()));
        assert!(as_text(Some("text/plain"), cut, false).is_err());
    }

    #[test]
    fn redirects_change_origin_only_between_different_hosts_ports_or_schemes() {
        let url = |s: &str| Url::parse(s).unwrap();
        assert!(same_origin(&url("https://a.com/x"), &url("https://a.com:443/y")));
        assert!(!same_origin(&url("https://a.com/x"), &url("https://b.com/x")));
        assert!(!same_origin(&url("https://a.com/x"), &url("http://a.com/x")));
        assert!(!same_origin(&url("http://a.com/x"), &url("http://a.com:8080/x")));
    }

    #[test]
    fn the_default_config_is_documented() {
        let config = NetworkConfig::default();
        assert!(!config.allow_private_addresses);
        assert_eq!(config.max_redirects, 5);
        assert_eq!(config.max_response_bytes, 5 * 1024 * 1024);
        assert_eq!(config.max_request_bytes, 1024 * 1024);
        assert_eq!(config.timeout_ms, 30_000);
    }
}

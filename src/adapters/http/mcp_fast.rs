//! The fast path of MCP's JSON-RPC on `/mcp`: `tools/call` and `tools/list` (and `ping` in a
//! session) answered by the MCP handler directly, without rmcp's per-request tasks and channels.
//!
//! It answers only what it can prove rmcp's transport would accept: every check the transport
//! makes (Host and Origin, Accept and Content-Type, the session and its owner, the protocol
//! version headers, the 2026-07-28 `Mcp-*` headers and request `_meta`) is made positively here,
//! and whatever fails one, or is anything else (streams, progress tokens, batches, other
//! methods, notifications), is declined and goes to rmcp, which answers it as it always did.
//! The answers are built from rmcp's own types and shaped as rmcp shapes them, so both paths give
//! the same bytes (the `mcp_fast_path` tests send a corpus through both and compare).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use dashmap::DashMap;
use rmcp::model::{
    CallToolRequestParams, CancelledNotificationParam, ErrorCode, ErrorData, PaginatedRequestParams, ProtocolVersion,
    RequestId, RequestMetaObject, ServerJsonRpcMessage, ServerResult,
};
use rmcp::transport::common::server_side_http::ServerSseMessage;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::sessions::Sessions;
use crate::adapters::mcp::envelope::{Envelope, tool_call_params};
use crate::adapters::mcp::{Handoff, McpHandler, RequestIdentity, finish_result};
use crate::registry::Registry;

const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";
const PARAM_HEADER_PREFIX: &str = "mcp-param-";
/// How SEP-2243 headers mark an encoded value; a name so written is left to rmcp to decode.
const ENCODED_HEADER_PREFIX: &str = "=?base64?";

/// What the fast path needs to answer beside the registry.
pub(crate) struct FastPath {
    enabled: bool,
    /// rmcp's Host rule, parsed once: `None` when any host is allowed.
    hosts: Option<Vec<(String, Option<u16>)>>,
    /// Whether rmcp checks a present `Origin` (then the fast path leaves such requests to it).
    origins_checked: bool,
    manager: Arc<LocalSessionManager>,
    /// Handlers of sessions being initialized, until they are bound to their session.
    pub handoff: Arc<Handoff>,
    /// The handler of stateless calls, which keep no state in it. (A listing records what it
    /// showed, under a lock: each stateless listing gets a handler of its own, as from rmcp.)
    stateless: McpHandler,
    /// Calls in flight in sessions, so `notifications/cancelled` reaches them as it would reach
    /// rmcp's.
    in_flight: DashMap<(Arc<str>, RequestId), CancellationToken>,
    metrics: Arc<crate::ops::metrics::Metrics>,
}

pub(crate) struct FastPathSetup<'a> {
    pub enabled: bool,
    pub allowed_hosts: Option<&'a [String]>,
    pub origins_checked: bool,
    pub manager: Arc<LocalSessionManager>,
    pub handoff: Arc<Handoff>,
    pub registry: Arc<Registry>,
    pub owner: RequestIdentity,
    pub metrics: Arc<crate::ops::metrics::Metrics>,
}

impl FastPath {
    pub fn new(setup: FastPathSetup<'_>) -> Self {
        Self {
            enabled: setup.enabled,
            hosts: setup
                .allowed_hosts
                .map(|hosts| hosts.iter().filter_map(|host| parse_allowed(host)).collect()),
            origins_checked: setup.origins_checked,
            manager: setup.manager,
            handoff: setup.handoff,
            stateless: McpHandler::new(setup.registry, setup.owner),
            in_flight: DashMap::new(),
            metrics: setup.metrics,
        }
    }

    /// The answer to a POST of `body` to `/mcp`, or `None` when rmcp must answer it.
    pub async fn answer(
        &self,
        sessions: &Sessions,
        identity: &RequestIdentity,
        parts: &Parts,
        body: &Bytes,
    ) -> Option<Response> {
        if !self.enabled || !self.transport_accepts(&parts.headers) {
            return None;
        }
        let envelope = Envelope::read(body)?;
        let Some(id) = envelope.id.clone() else {
            self.note_cancellation(sessions, identity, &parts.headers, &envelope);
            return None;
        };
        let (asked, meta) = Asked::parse(envelope.method()?, envelope.params)?;
        if meta.get_progress_token().is_some() {
            return None;
        }
        let request_id = parts
            .extensions
            .get::<super::HttpRequestId>()
            .map(|id| id.0.to_string())
            .unwrap_or_default();
        let answer = match parts.headers.get(SESSION_HEADER) {
            None => {
                let call = StatelessCall {
                    identity,
                    headers: &parts.headers,
                    id,
                    asked,
                    meta,
                    request_id,
                };
                self.stateless_answer(call).await
            }
            Some(session) => {
                let session = session.to_str().ok()?;
                let call = SessionCall {
                    sessions,
                    identity,
                    headers: &parts.headers,
                    session,
                    id,
                    asked,
                    meta,
                    request_id,
                };
                self.session_answer(call).await
            }
        };
        if answer.is_some() {
            self.metrics.record_mcp_fast_answer();
        }
        answer
    }

    /// Host, Origin, Accept and Content-Type as rmcp's transport checks them.
    fn transport_accepts(&self, headers: &HeaderMap) -> bool {
        if let Some(hosts) = &self.hosts {
            let Some(host) = headers.get(header::HOST).and_then(|host| host.to_str().ok()) else {
                return false;
            };
            let Ok(authority) = host.parse::<axum::http::uri::Authority>() else {
                return false;
            };
            let name = authority.host().trim_matches('[').trim_matches(']');
            let port = authority.port_u16();
            // The allowed names are lowercase already (`parse_allowed`).
            let allowed = hosts.iter().any(|(allowed, allowed_port)| {
                allowed.eq_ignore_ascii_case(name) && allowed_port.is_none_or(|p| Some(p) == port)
            });
            if !allowed {
                return false;
            }
        }
        if self.origins_checked && headers.contains_key(header::ORIGIN) {
            return false;
        }
        accepts_json_and_events(headers) && is_json(headers)
    }

    /// A stateless 2026-07-28 `tools/call` or `tools/list`.
    async fn stateless_answer(&self, call: StatelessCall<'_>) -> Option<Response> {
        let (meta, headers) = (&call.meta, call.headers);
        let version = ProtocolVersion::V_2026_07_28;
        let declared = meta.protocol_version()?;
        if declared != version
            || !meta.missing_required_keys(&version).is_empty()
            || single_header(headers, VERSION_HEADER)? != version.as_str()
            || headers
                .keys()
                .any(|name| name.as_str().starts_with(PARAM_HEADER_PREFIX))
        {
            return None;
        }
        let capabilities = meta.client_capabilities().unwrap_or_default();
        let handler = &self.stateless;
        let answer = match call.asked {
            Asked::Call(params) => {
                if single_header(headers, METHOD_HEADER)? != "tools/call"
                    || !names_match(single_header(headers, NAME_HEADER)?, &params.name)
                    || handler.tool_takes_header_params(&params.name)
                {
                    return None;
                }
                let cancel = CancellationToken::new();
                let guard = cancel.clone().drop_guard();
                let ctx = handler.fast_path_context(call.identity, call.request_id, cancel);
                let answer = handler.answer_call(params, ctx, None, Some(capabilities)).await;
                guard.disarm();
                answer.map(ServerResult::from)
            }
            Asked::List(params) => {
                if single_header(headers, METHOD_HEADER)? != "tools/list" || headers.contains_key(NAME_HEADER) {
                    return None;
                }
                handler
                    .fresh()
                    .answer_tool_list(call.identity, params)
                    .await
                    .map(ServerResult::ListToolsResult)
            }
            // Not a method of this revision: rmcp says so.
            Asked::Ping => return None,
        };
        let message = as_message(finish_result(answer, true), call.id);
        Some(json_response(&message))
    }

    /// `tools/call`, `tools/list` or `ping` in a pre-2026 session this caller owns.
    async fn session_answer(&self, call: SessionCall<'_>) -> Option<Response> {
        let version = match call.headers.get(VERSION_HEADER) {
            None => None,
            Some(value) => Some(value.to_str().ok()?),
        };
        if let Some(version) = version
            && (version >= ProtocolVersion::V_2026_07_28.as_str()
                || !ProtocolVersion::KNOWN_VERSIONS
                    .iter()
                    .any(|known| known.as_str() == version))
        {
            return None;
        }
        if call.meta.protocol_version().is_some() {
            return None;
        }
        // The owner is checked before the session is, as `forward_to_mcp` does.
        let (owner, handler) = call.sessions.session(call.session)?;
        if owner != call.identity.caller.agent_id {
            return None;
        }
        let handler = handler.filter(McpHandler::ready_for_fast_path)?;
        let session_handle = self.manager.sessions.read().await.get(call.session).cloned()?;
        let mut stream = session_handle.establish_request_wise_channel().await.ok()?;
        let http_request_id = stream.http_request_id?;
        // rmcp primes each response stream (when configured to) before handing it out.
        let priming = stream.inner.try_recv().ok();
        drop(stream);
        let mut cancelled = false;
        let answer = match call.asked {
            Asked::Call(params) => {
                let cancel = CancellationToken::new();
                let key = (Arc::<str>::from(call.session), call.id.clone());
                self.in_flight.insert(key.clone(), cancel.clone());
                let in_flight = InFlight {
                    table: &self.in_flight,
                    key,
                };
                let ctx = handler.fast_path_context(call.identity, call.request_id, cancel.clone());
                let answer = handler.answer_call(params, ctx, None, None).await;
                drop(in_flight);
                cancelled = cancel.is_cancelled();
                answer.map(ServerResult::from)
            }
            Asked::List(params) => handler
                .answer_tool_list(call.identity, params)
                .await
                .map(ServerResult::ListToolsResult),
            Asked::Ping => Ok(ServerResult::empty(())),
        };
        // The stream's number is taken either way; rmcp would have closed it with the answer.
        if let Err(error) = session_handle.close_request_wise_channel(http_request_id).await {
            tracing::debug!(%error, "closing a fast-path response stream in rmcp failed");
        }
        // rmcp ends a cancelled request's stream without its answer, as the protocol asks.
        let message = (!cancelled).then(|| as_message(finish_result(answer, false), call.id));
        Some(event_stream_response(priming, message.as_ref(), http_request_id))
    }

    /// A client's `notifications/cancelled` for a call the fast path is running in its session
    /// cancels that call (the notification goes on to rmcp too, which knows nothing of it).
    fn note_cancellation(
        &self,
        sessions: &Sessions,
        identity: &RequestIdentity,
        headers: &HeaderMap,
        envelope: &Envelope<'_>,
    ) {
        if envelope.method() != Some("notifications/cancelled") {
            return;
        }
        let Some(cancelled) = envelope
            .params
            .and_then(|params| serde_json::from_str::<CancelledNotificationParam>(params.get()).ok())
        else {
            return;
        };
        let Some(request) = cancelled.request_id else {
            return;
        };
        let Some(session) = headers.get(SESSION_HEADER).and_then(|value| value.to_str().ok()) else {
            return;
        };
        if sessions
            .session(session)
            .is_none_or(|(owner, _)| owner != identity.caller.agent_id)
        {
            return;
        }
        if let Some(cancel) = self.in_flight.get(&(Arc::<str>::from(session), request)) {
            cancel.cancel();
        }
    }
}

/// `params` of a request whose only use here is its `_meta` (`ping`).
#[derive(Deserialize)]
struct MetaOnly {
    #[serde(rename = "_meta", default)]
    meta: Option<RequestMetaObject>,
}

/// The requests the fast path answers.
enum Asked {
    Call(CallToolRequestParams),
    List(Option<PaginatedRequestParams>),
    Ping,
}

impl Asked {
    /// The request `method` with `params` asks, with its `_meta`; `None` for anything else.
    fn parse(method: &str, params: Option<&RawValue>) -> Option<(Self, RequestMetaObject)> {
        let (asked, meta) = match (method, params) {
            ("tools/call", Some(params)) => {
                let (params, meta) = tool_call_params(params)?;
                (Asked::Call(params), meta)
            }
            ("tools/list", None) => (Asked::List(None), None),
            ("tools/list", Some(params)) => {
                let mut params: PaginatedRequestParams = serde_json::from_str(params.get()).ok()?;
                let meta = params.meta.take();
                (Asked::List(Some(params)), meta)
            }
            ("ping", None) => (Asked::Ping, None),
            ("ping", Some(params)) => (Asked::Ping, serde_json::from_str::<MetaOnly>(params.get()).ok()?.meta),
            _ => return None,
        };
        Some((asked, meta.unwrap_or_default()))
    }
}

struct StatelessCall<'a> {
    identity: &'a RequestIdentity,
    headers: &'a HeaderMap,
    id: RequestId,
    asked: Asked,
    meta: RequestMetaObject,
    request_id: String,
}

struct SessionCall<'a> {
    sessions: &'a Sessions,
    identity: &'a RequestIdentity,
    headers: &'a HeaderMap,
    session: &'a str,
    id: RequestId,
    asked: Asked,
    meta: RequestMetaObject,
    request_id: String,
}

/// A session call's entry in the in-flight table, removed however the call ends.
struct InFlight<'a> {
    table: &'a DashMap<(Arc<str>, RequestId), CancellationToken>,
    key: (Arc<str>, RequestId),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.table.remove(&self.key);
    }
}

/// The SSE answer rmcp gives a request in a session: its priming event (as rmcp made it), then
/// the message, numbered as rmcp numbers the events of HTTP request `stream`.
fn event_stream_response(
    priming: Option<ServerSseMessage>,
    message: Option<&ServerJsonRpcMessage>,
    stream: u64,
) -> Response {
    let mut text = String::new();
    if let Some(priming) = priming {
        text.push_str("data: \n");
        if let Some(id) = &priming.event_id {
            text.push_str(&format!("id: {id}\n"));
        }
        if let Some(retry) = priming.retry {
            text.push_str(&format!("retry: {}\n", retry.as_millis()));
        }
        text.push('\n');
    }
    if let Some(message) = message {
        let data = serde_json::to_string(message).unwrap_or_default();
        text.push_str(&format!("data: {data}\nid: 1/{stream}\n\n"));
    }
    let body = Body::from_stream(futures::stream::once(
        async move { Ok::<_, std::convert::Infallible>(text) },
    ));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn as_message(answer: Result<ServerResult, ErrorData>, id: RequestId) -> ServerJsonRpcMessage {
    match answer {
        Ok(result) => ServerJsonRpcMessage::response(result, id),
        Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
    }
}

/// A stateless answer as rmcp sends it: JSON, with the HTTP status rmcp gives its error codes.
fn json_response(message: &ServerJsonRpcMessage) -> Response {
    let status = match message {
        ServerJsonRpcMessage::Error(error) => match error.error.code {
            ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
            | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
            | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
            ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        },
        _ => StatusCode::OK,
    };
    let body = serde_json::to_vec(message).unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The one value of a header that must appear once; `None` when absent, repeated or not text.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// `Mcp-Name` as written names the tool of the body (an encoded value is left to rmcp).
fn names_match(header: &str, name: &str) -> bool {
    header == name && !header.starts_with(ENCODED_HEADER_PREFIX)
}

/// Whether Accept admits both JSON and an event stream, read as rmcp reads it; anything this
/// simple reading cannot be sure of (quoted strings, weights) is not admitted here.
fn accepts_json_and_events(headers: &HeaderMap) -> bool {
    let (mut json, mut events) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        if value.contains(['"', ';']) {
            return false;
        }
        for essence in value.split(',').map(str::trim) {
            json |= essence.eq_ignore_ascii_case("application/json");
            events |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    json && events
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let essence = value.split_once(';').map_or(value, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        })
}

fn normalize_host(host: &str) -> String {
    host.trim_matches('[').trim_matches(']').to_ascii_lowercase()
}

/// An allowed-hosts entry as rmcp reads it: an authority, else a bare name (`::1`).
fn parse_allowed(entry: &str) -> Option<(String, Option<u16>)> {
    let entry = entry.trim();
    if entry.is_empty() {
        return None;
    }
    match entry.parse::<axum::http::uri::Authority>() {
        Ok(authority) => Some((normalize_host(authority.host()), authority.port_u16())),
        Err(_) => Some((normalize_host(entry), None)),
    }
}

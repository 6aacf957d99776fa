//! A client's JSON-RPC message read as far as the front doors need to decide whether to answer it
//! themselves (the HTTP fast path, the stdio shortcut): its envelope, and the params of a
//! `tools/call` read with rmcp's own type. rmcp reads the same members the same way and ignores
//! others; what this does not read is left to rmcp.

use std::borrow::Cow;

use rmcp::model::{CallToolRequestParams, JsonRpcVersion2_0, RequestId, RequestMetaObject};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
pub struct Envelope<'a> {
    #[allow(dead_code)] // read only to refuse what is not JSON-RPC 2.0
    jsonrpc: JsonRpcVersion2_0,
    /// `None` for a notification.
    #[serde(default)]
    pub id: Option<RequestId>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow, default)]
    pub params: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// The envelope of the message in `bytes`; `None` for anything else (a batch, not JSON).
    pub fn read(bytes: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    /// The method, when written without escapes (a rare spelling left to rmcp's reading).
    pub fn method(&self) -> Option<&str> {
        match &self.method {
            Cow::Borrowed(method) => Some(method),
            Cow::Owned(_) => None,
        }
    }
}

/// A `tools/call`'s params as rmcp reads them, with their `_meta` apart, where rmcp keeps it
/// (in the request's extensions).
pub fn tool_call_params(params: &RawValue) -> Option<(CallToolRequestParams, Option<RequestMetaObject>)> {
    let mut params: CallToolRequestParams = serde_json::from_str(params.get()).ok()?;
    let meta = params.meta.take();
    Some((params, meta))
}

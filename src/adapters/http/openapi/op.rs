//! One OpenAPI operation under construction. Each operation lists every status it can answer:
//! those of its handler plus those of the layers in front of it (the Host/Origin guard and the
//! body cap for every route; authentication, CSRF and rate limits by its row of the route table).

use axum::http::Method;
use serde_json::{Map, Value, json};

use super::super::routes::{Access, Charge};

/// One operation under construction.
pub(in crate::adapters::http) struct Op {
    method: String,
    path: &'static str,
    body: Map<String, Value>,
    responses: Map<String, Value>,
}

impl Op {
    /// The operation of a route of the table, before its description: its security and the
    /// errors of the layers in front of it follow from its access and charge.
    pub fn new(method: &Method, path: &'static str, access: Access, charge: Charge, tag: &str) -> Self {
        let method = method.as_str().to_ascii_lowercase();
        let mut body = Map::new();
        body.insert("tags".into(), json!([tag]));
        let changes_state = method != "get";
        let security = match access {
            Access::Unchecked | Access::Gate => json!([]),
            Access::Public => json!([{}, {"bearer": []}, {"session": []}]),
            Access::Protected if changes_state => json!([{"bearer": []}, {"session": [], "csrf": []}]),
            Access::Protected => json!([{"bearer": []}, {"session": []}]),
        };
        body.insert("security".into(), security);
        body.insert("parameters".into(), json!([]));
        let mut op = Self {
            method,
            path,
            body,
            responses: Map::new(),
        };
        // The guard (403) and the body cap (413) stand in front of every route.
        op = op.errors(&[403, 413]);
        op = match access {
            Access::Unchecked => op,
            Access::Gate => op,
            Access::Public | Access::Protected => op.errors(&[401, 503]),
        };
        match charge {
            Charge::Nothing => op,
            Charge::Api | Charge::Auth | Charge::Calls => op.errors(&[429]),
        }
    }

    /// The operation's id and one-line summary.
    pub fn named(mut self, id: &str, summary: &str) -> Self {
        self.body.insert("operationId".into(), json!(id));
        self.body.insert("summary".into(), json!(summary));
        self
    }

    pub fn describe(mut self, text: &str) -> Self {
        self.body.insert("description".into(), json!(text));
        self
    }

    /// A path or query parameter, or a header.
    pub fn param(mut self, place: &str, name: &str, required: bool, schema: Value, description: &str) -> Self {
        if let Some(Value::Array(params)) = self.body.get_mut("parameters") {
            params.push(json!({
                "in": place, "name": name, "required": required, "schema": schema, "description": description,
            }));
        }
        self
    }

    /// `?names=` and `X-Agentos-Names`: how tool names are spelled in the answer.
    pub fn names(self) -> Self {
        let style = json!({"type": "string", "enum": ["native", "strict"]});
        self.param(
            "query",
            "names",
            false,
            style.clone(),
            "How tool names are spelled: `native` (agentos.mem_set) or `strict` (agentos_mem_set).",
        )
        .param("header", "X-Agentos-Names", false, style, "Like `?names=`.")
        .errors(&[400])
    }

    pub fn json_body(mut self, schema: Value) -> Self {
        self.body.insert(
            "requestBody".into(),
            json!({"required": true, "content": {"application/json": {"schema": schema}}}),
        );
        self.errors(&[400])
    }

    /// A request body described as is (media types other than JSON).
    pub fn raw_body(mut self, body: Value) -> Self {
        self.body.insert("requestBody".into(), body);
        self
    }

    pub fn reply(mut self, status: u16, description: &str, schema: Value) -> Self {
        self.responses.insert(
            status.to_string(),
            json!({"description": description, "content": {"application/json": {"schema": schema}}}),
        );
        self
    }

    pub fn reply_as(mut self, status: u16, description: &str, media: &str, schema: Value) -> Self {
        self.responses.insert(
            status.to_string(),
            json!({"description": description, "content": {media: {"schema": schema}}}),
        );
        self
    }

    /// A plain-text answer for `status`, beside any JSON one already documented: the MCP
    /// transport refuses in text, the REST layers in JSON.
    pub fn text_reply(mut self, status: u16, description: &str) -> Self {
        let key = status.to_string();
        let existing = self.responses.remove(&key);
        let mut content = match existing.as_ref().map(|r| r.get("$ref").and_then(Value::as_str)) {
            Some(Some(_)) => json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}),
            _ => existing
                .as_ref()
                .and_then(|r| r.get("content").cloned())
                .unwrap_or_else(|| json!({})),
        };
        content["text/plain"] = json!({"schema": {"type": "string"}});
        let description = match existing
            .as_ref()
            .and_then(|r| r.get("description"))
            .and_then(Value::as_str)
        {
            Some(first) => format!("{first} Or: {description}"),
            None => match existing {
                Some(_) => format!("An error (JSON), or: {description}"),
                None => description.to_owned(),
            },
        };
        self.responses
            .insert(key, json!({"description": description, "content": content}));
        self
    }

    pub fn empty_reply(mut self, status: u16, description: &str) -> Self {
        self.responses
            .insert(status.to_string(), json!({"description": description}));
        self
    }

    /// Error statuses answered with the shared `Error` body.
    pub fn errors(mut self, statuses: &[u16]) -> Self {
        for status in statuses {
            let key = status.to_string();
            self.responses
                .entry(key.clone())
                .or_insert_with(|| json!({"$ref": format!("#/components/responses/{key}")}));
        }
        self
    }

    /// A REST route over a tool: its failures map to statuses as in `ToolCall::run`.
    pub fn tool_backed(self) -> Self {
        self.reply(
            202,
            "Held for a human's approval; `approvalId` names it.",
            json!({"$ref": "#/components/schemas/Error"}),
        )
        .errors(&[400, 403, 404, 409, 422, 429, 503, 504])
    }

    pub(super) fn finish(mut self) -> (String, String, Value) {
        self.body.insert("responses".into(), Value::Object(self.responses));
        (self.path.to_owned(), self.method, Value::Object(self.body))
    }
}

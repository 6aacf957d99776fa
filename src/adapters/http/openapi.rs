//! `GET /openapi.json` (an OpenAPI 3.1 description of every HTTP route) and `GET /docs` (a page
//! that renders it, embedded in the binary so it works with no network). The document is built
//! from the route table: each route's row gives its method, path, access and tag, and its
//! describer (beside its handler) the rest. Request and response bodies with a Rust type take
//! their schema from it (schemars); the REST routes backed by tools answer with the tool's
//! committed schemas (`schemas/tools/*.json`, see [`tool_schema!`]).

mod op;

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

pub(super) use op::Op;

/// Built once: the document does not depend on configuration or requests (`/metrics` is
/// described as public, its default).
static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// The input or output schema of a built-in tool, from its committed schema file:
/// `tool_schema!(schemas, "audit_query", "outputSchema")`. Its `$defs` go to `schemas`.
macro_rules! tool_schema {
    ($schemas:expr, $name:literal, $which:literal) => {
        $crate::adapters::http::openapi::schema_of_tool(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/schemas/tools/agentos.",
                $name,
                ".json"
            )),
            $which,
            $schemas,
        )
    };
    ($schemas:expr, $name:literal, $which:literal, snake_case) => {
        $crate::adapters::http::openapi::snake_schema_of_tool(
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/schemas/tools/agentos.",
                $name,
                ".json"
            )),
            $which,
            $schemas,
        )
    };
}
pub(super) use tool_schema;

/// `GET /openapi.json`
pub(super) async fn document() -> Response {
    axum::Json(&*DOCUMENT).into_response()
}

pub(super) fn document_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("openapi", "This document")
        .reply(200, "The OpenAPI 3.1 document.", json!({"type": "object"}))
}

pub(super) fn docs_doc(op: Op, _: &mut Map<String, Value>) -> Op {
    op.named("docs", "A page that renders this document, offline").reply_as(
        200,
        "The page.",
        "text/html",
        json!({"type": "string"}),
    )
}

const DOCS_HTML: &str = include_str!("openapi/docs.html");
const DOCS_CSS: &str = include_str!("openapi/docs.css");
const DOCS_JS: &str = include_str!("openapi/docs.js");

/// The page with its style and script inline: one response, nothing else to fetch but the document.
static DOCS_PAGE: LazyLock<String> =
    LazyLock::new(|| DOCS_HTML.replace("/*STYLE*/", DOCS_CSS).replace("/*SCRIPT*/", DOCS_JS));

/// `GET /docs`. The content security policy lets the page reach nothing but this server, so it
/// behaves the same offline as online.
pub(super) async fn docs() -> Response {
    let mut response = axum::response::Html(DOCS_PAGE.as_str()).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

fn build() -> Value {
    let mut schemas = components_schemas();
    let mut paths = Map::new();
    for route in super::routes::table(true) {
        let op = Op::new(&route.method, route.path, route.access, route.charge, route.tag);
        let (path, method, body) = (route.describe)(op, &mut schemas).finish();
        if let Value::Object(methods) = paths.entry(path).or_insert_with(|| json!({})) {
            methods.insert(method, body);
        }
    }
    let mut paths = Value::Object(paths);
    hoist_defs(&mut paths, &mut schemas);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "agentos",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "An MCP-first tool router and operating layer for AI agents. Every route but the \
                public ones needs `Authorization: Bearer <token>` or the browser session cookie (with \
                `X-CSRF-Token` on requests that change state). Errors are `{\"error\": code, \"message\"}`. \
                Every response carries `X-Request-Id` (the caller's, when sent, else a fresh one); the same \
                id is in the log lines and audit records of the request.",
        },
        "tags": [
            {"name": "health", "description": "Liveness and readiness, without credentials."},
            {"name": "tools", "description": "The tool registry and the calls into it (MCP and its plain form)."},
            {"name": "accounts", "description": "Sign-up, sign-in, sessions, agents and their tokens (operator \
                actions are the `agentos.agent*` and `agentos.token_revoke` tools)."},
            {"name": "governance", "description": "The audit trail and approvals."},
            {"name": "ops", "description": "Crew coverage and proxied MCP servers (ops-admins)."},
            {"name": "skills", "description": "The skills marketplace: browse, install, use, publish."},
            {"name": "studio", "description": "The studio's command language, with preview and confirm."},
            {"name": "observability", "description": "Metrics and traces."},
            {"name": "voice", "description": "Speech to text and text to speech, run locally."},
            {"name": "docs", "description": "This description and its page."},
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": error_responses(),
            "securitySchemes": {
                "bearer": {
                    "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                    "description": "A token from sign-up, sign-in, POST /register or POST /api/session/token \
                        (the owner's is in <data_dir>/owner-token).",
                },
                "session": {
                    "type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE,
                    "description": "The browser session set by sign-up and sign-in.",
                },
                "csrf": {
                    "type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                    "description": "The session's CSRF token; required with the session cookie on requests \
                        that change state.",
                },
            },
        },
    })
}

/// The error body of every non-MCP route, and the plain form's failure body.
fn components_schemas() -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "A stable code such as `invalid_request`."},
                "message": {"type": "string", "description": "What went wrong, for people."},
                "approvalId": {"type": ["string", "null"], "description": "With 202 `approval_pending`."},
            },
        }),
    );
    schemas
}

/// Shared error responses, referenced as `#/components/responses/<status>`.
fn error_responses() -> Value {
    let described = [
        ("400", "The request is malformed: a bad body, query or path parameter."),
        ("401", "No credentials, or credentials that did not verify."),
        (
            "403",
            "Not allowed: a bad Host or Origin, a missing CSRF token, or the caller may not do this.",
        ),
        ("404", "No such thing, or one the caller may not see."),
        ("409", "It exists already."),
        ("413", "The body is over `http.max_body_bytes`."),
        ("422", "The tool ran and failed."),
        (
            "429",
            "Rate limited; `Retry-After` says when to come back, `X-RateLimit-*` the budget.",
        ),
        (
            "503",
            "agentos is busy (`Retry-After`), a service it needs did not answer, or the call was cancelled.",
        ),
        ("504", "The call's deadline passed."),
    ];
    let mut responses = Map::new();
    for (status, description) in described {
        responses.insert(
            status.into(),
            json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }),
        );
    }
    Value::Object(responses)
}

/// The JSON Schema of a Rust type, as OpenAPI 3.1 takes it.
pub(super) fn schema_of<T: schemars::JsonSchema>() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
    }
    schema
}

/// The input or output schema of a tool from its committed schema file, its `$defs` moved to
/// `components/schemas` as `<tool>.<Def>` so references resolve inside the document.
pub(super) fn schema_of_tool(file: &str, which: &str, schemas: &mut Map<String, Value>) -> Value {
    let parsed: Value = serde_json::from_str(file).unwrap_or_else(|_| json!({}));
    let name = parsed["name"]
        .as_str()
        .unwrap_or("tool")
        .trim_start_matches("agentos.")
        .to_owned();
    let mut schema = parsed.get(which).cloned().unwrap_or_else(|| json!({}));
    let defs = match &mut schema {
        Value::Object(map) => {
            map.remove("$schema");
            map.remove("$defs")
        }
        _ => None,
    };
    let prefix = format!("{name}.");
    rewrite_refs(&mut schema, &prefix);
    if let Some(Value::Object(defs)) = defs {
        for (def, mut body) in defs {
            rewrite_refs(&mut body, &prefix);
            schemas.insert(format!("{prefix}{def}"), body);
        }
    }
    schema
}

/// [`schema_of_tool`] for routes that answer a tool's output with every key in snake_case: the
/// same schema with its property names and `required` lists renamed, under components of its
/// own (`<tool>_rest.*`).
pub(super) fn snake_schema_of_tool(file: &str, which: &str, schemas: &mut Map<String, Value>) -> Value {
    fn rename(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Object(properties)) = map.get_mut("properties") {
                    let renamed = std::mem::take(properties)
                        .into_iter()
                        .map(|(key, body)| (super::skills::snake(&key), body))
                        .collect();
                    *properties = renamed;
                }
                if let Some(Value::Array(required)) = map.get_mut("required") {
                    for name in required.iter_mut() {
                        if let Value::String(text) = name {
                            *text = super::skills::snake(text);
                        }
                    }
                }
                map.values_mut().for_each(rename);
            }
            Value::Array(items) => items.iter_mut().for_each(rename),
            _ => {}
        }
    }
    let mut parsed: Value = serde_json::from_str(file).unwrap_or_else(|_| json!({}));
    let name = format!("{}_rest", parsed["name"].as_str().unwrap_or("tool"));
    parsed["name"] = Value::String(name);
    rename(&mut parsed);
    schema_of_tool(&parsed.to_string(), which, schemas)
}

/// Moves the `$defs` that schemars puts inside a type's schema to `components/schemas`, where
/// OpenAPI resolves `#/...` references (a `#/$defs/X` inside an operation would point at the
/// document's root).
fn hoist_defs(value: &mut Value, schemas: &mut Map<String, Value>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(defs)) = map.remove("$defs") {
                for (name, mut body) in defs {
                    hoist_defs(&mut body, schemas);
                    rewrite_refs(&mut body, "");
                    schemas.insert(name, body);
                }
                rewrite_refs(value, "");
                if let Value::Object(map) = value {
                    map.values_mut().for_each(|inner| hoist_defs(inner, schemas));
                }
            } else {
                map.values_mut().for_each(|inner| hoist_defs(inner, schemas));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| hoist_defs(item, schemas)),
        _ => {}
    }
}

fn rewrite_refs(value: &mut Value, prefix: &str) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => {
                        if let Some(def) = target.strip_prefix("#/$defs/") {
                            *target = format!("#/components/schemas/{prefix}{def}");
                        }
                    }
                    (_, inner) => rewrite_refs(inner, prefix),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rewrite_refs(item, prefix)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;

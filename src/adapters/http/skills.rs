//! `/api/skills*`: REST adapters over the marketplace tools (`agentos.skills_search`,
//! `agentos.skill_install`, `agentos.skill_uninstall`, `agentos.skills_installed`,
//! `agentos.skill_use`, `agentos.skill_publish`). The routes speak the reference's snake_case
//! (`skill_id`, `installed_skills`, `execution_time_ms`); the tools speak camelCase like every
//! other tool, so each route renames keys on the way in and out, and nothing else.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::error_response;
use super::governance::Params;
use super::json::JsonBody;
use super::openapi::{Op, tool_schema};
use super::tool_call::ToolCall;

/// `readPage` → `read_page`.
pub(super) fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Every object key of a tool's answer in snake_case.
fn snake_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (snake(&k), snake_keys(v))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(snake_keys).collect()),
        other => other,
    }
}

fn bad_request(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// Takes the named snake_case fields of a JSON object body into tool input under their
/// camelCase names; any other field is a 400 naming it.
fn renamed(body: Value, fields: &[(&str, &str)], expected: &str) -> Result<Value, Box<Response>> {
    let Value::Object(body) = body else {
        return Err(Box::new(bad_request(&format!("expected {expected}"))));
    };
    let mut input = Map::new();
    for (key, value) in body {
        match fields.iter().find(|(wire, _)| *wire == key) {
            Some((_, tool)) => {
                input.insert((*tool).to_owned(), value);
            }
            None => {
                return Err(Box::new(bad_request(&format!(
                    "unknown field `{key}`: expected {expected}"
                ))));
            }
        }
    }
    Ok(Value::Object(input))
}

/// `GET /api/skills?category=&search=&sort=&page=&limit=&author=`
pub(super) async fn list(call: ToolCall, params: Params) -> Response {
    let axum::extract::Query(params) = match params {
        Ok(params) => params,
        Err(rejection) => return bad_request(&rejection.body_text()),
    };
    let mut input = Map::new();
    for (key, value) in &params {
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "category" | "search" | "sort" | "author" => {
                input.insert(key.clone(), Value::String(value.clone()));
            }
            "page" | "limit" => match value.parse::<u64>() {
                Ok(number) if number >= 1 => {
                    input.insert(key.clone(), Value::from(number));
                }
                _ => return bad_request(&format!("`{key}` must be a whole number from 1, not `{value}`")),
            },
            // How tool names are spelled: read by `ToolCall`.
            "names" => {}
            other => {
                return bad_request(&format!(
                    "unknown query parameter `{other}`: use category, search, sort, page, limit or author"
                ));
            }
        }
    }
    call.run_then("agentos.skills_search", Value::Object(input), |_, body| {
        snake_keys(body)
    })
    .await
}

/// `POST /api/skills/install` with `{"skill_id": "...", "version"?: "..."}`
pub(super) async fn install(call: ToolCall, JsonBody(body): JsonBody<Value>) -> Response {
    let expected = "{\"skill_id\": \"...\", \"version\"?: \"1.2.0\"}";
    match renamed(body, &[("skill_id", "skillId"), ("version", "version")], expected) {
        Ok(input) => {
            call.run_then("agentos.skill_install", input, |_, body| snake_keys(body))
                .await
        }
        Err(response) => *response,
    }
}

/// `POST /api/skills/uninstall` with `{"skill_id": "..."}`
pub(super) async fn uninstall(call: ToolCall, JsonBody(body): JsonBody<Value>) -> Response {
    match renamed(body, &[("skill_id", "skillId")], "{\"skill_id\": \"...\"}") {
        Ok(input) => {
            call.run_then("agentos.skill_uninstall", input, |_, body| snake_keys(body))
                .await
        }
        Err(response) => *response,
    }
}

/// `GET /api/skills/installed`
pub(super) async fn installed(call: ToolCall) -> Response {
    call.run_then("agentos.skills_installed", json!({}), |_, body| snake_keys(body))
        .await
}

/// `POST /api/skills/use` with `{"skill_slug": "...", "capability": "...", "params": {...}}`
pub(super) async fn use_capability(call: ToolCall, JsonBody(body): JsonBody<Value>) -> Response {
    let fields = [
        ("skill_slug", "skillSlug"),
        ("capability", "capability"),
        ("params", "params"),
    ];
    let expected = "{\"skill_slug\": \"...\", \"capability\": \"...\", \"params\": {...}}";
    match renamed(body, &fields, expected) {
        // The capability's own result keeps its keys: only the envelope is renamed.
        Ok(input) => {
            call.run_then("agentos.skill_use", input, |_, body| {
                json!({
                    "success": body["success"],
                    "result": body["result"],
                    "execution_time_ms": body["executionTimeMs"],
                })
            })
            .await
        }
        Err(response) => *response,
    }
}

/// `POST /api/skills/publish` with `{"manifest": "<skill.toml text>", "component": "<base64>"}`:
/// the one route whose body may be as large as `skills.max_component_bytes` allows.
pub(super) async fn publish(call: ToolCall, JsonBody(body): JsonBody<Value>) -> Response {
    let expected = "{\"manifest\": \"<skill.toml text>\", \"component\": \"<base64 of the .wasm>\"}";
    let fields = [
        ("manifest", "manifest"),
        ("component", "component"),
        ("signature", "signature"),
    ];
    match renamed(body, &fields, expected) {
        Ok(input) => {
            call.run_with_status("agentos.skill_publish", input, StatusCode::CREATED, |_, body| {
                snake_keys(body)
            })
            .await
        }
        Err(response) => *response,
    }
}

fn text() -> Value {
    json!({"type": "string"})
}

pub(super) fn list_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("skills", "Browse the skills marketplace")
        .describe("Backed by `agentos.skills_search`; open to anonymous callers and to every agent whose policy allows it. Keys in snake_case.")
        .param("query", "search", false, text(), "Words that must all appear.")
        .param("query", "category", false, text(), "Only this category.")
        .param("query", "author", false, text(), "Only this author.")
        .param(
            "query",
            "sort",
            false,
            json!({"type": "string", "enum": ["popular", "newest", "name"]}),
            "Order (default popular).",
        )
        .param(
            "query",
            "page",
            false,
            json!({"type": "integer", "minimum": 1}),
            "From 1.",
        )
        .param(
            "query",
            "limit",
            false,
            json!({"type": "integer", "minimum": 1, "maximum": 100}),
            "1-100 (default 50).",
        )
        .reply(
            200,
            "A page of skills and `pagination {page, limit, total}`.",
            tool_schema!(schemas, "skills_search", "outputSchema", snake_case),
        )
        .tool_backed()
}

pub(super) fn install_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("installSkill", "Install a skill (or move its pinned version)")
        .describe("Backed by `agentos.skill_install`; the body's `skill_id` is its `skillId`.")
        .json_body(json!({
            "type": "object", "required": ["skill_id"], "additionalProperties": false,
            "properties": {"skill_id": {"type": "string"}, "version": {"type": "string"}}
        }))
        .reply(
            200,
            "The install (keys in snake_case).",
            tool_schema!(schemas, "skill_install", "outputSchema", snake_case),
        )
        .tool_backed()
}

pub(super) fn uninstall_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("uninstallSkill", "Uninstall a skill")
        .describe("Backed by `agentos.skill_uninstall`.")
        .json_body(json!({
            "type": "object", "required": ["skill_id"], "additionalProperties": false,
            "properties": {"skill_id": {"type": "string"}}
        }))
        .reply(
            200,
            "The skill removed.",
            tool_schema!(schemas, "skill_uninstall", "outputSchema", snake_case),
        )
        .tool_backed()
}

pub(super) fn installed_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("installedSkills", "Your installed skills")
        .describe("Backed by `agentos.skills_installed`; answers `{installed_skills: [...]}`.")
        .reply(
            200,
            "Your installs (keys in snake_case).",
            tool_schema!(schemas, "skills_installed", "outputSchema", snake_case),
        )
        .tool_backed()
}

pub(super) fn use_doc(op: Op, _schemas: &mut Map<String, Value>) -> Op {
    op.named("useSkill", "Run a capability of an installed skill")
        .describe("Backed by `agentos.skill_use`, the same as calling `skill.<slug>.<capability>`.")
        .json_body(json!({
            "type": "object", "required": ["skill_slug", "capability"], "additionalProperties": false,
            "properties": {
                "skill_slug": {"type": "string"}, "capability": {"type": "string"},
                "params": {"type": "object"}
            }
        }))
        .reply(
            200,
            "What the capability returned.",
            json!({
                "type": "object", "required": ["success", "result", "execution_time_ms"],
                "properties": {
                    "success": {"type": "boolean"}, "result": {},
                    "execution_time_ms": {"type": "number"}
                }
            }),
        )
        .tool_backed()
}

pub(super) fn publish_doc(op: Op, schemas: &mut Map<String, Value>) -> Op {
    op.named("publishSkill", "Publish a skill")
        .describe(
            "Backed by `agentos.skill_publish`; operators only (others get 404). The body may be as \
             large as `skills.max_component_bytes` allows (base64 adds a third).",
        )
        .json_body(json!({
            "type": "object", "required": ["manifest", "component"], "additionalProperties": false,
            "properties": {
                "manifest": {"type": "string"}, "component": {"type": "string", "contentEncoding": "base64"},
                "signature": {"type": "string", "contentEncoding": "base64"}
            }
        }))
        .reply(
            201,
            "Published (keys in snake_case).",
            tool_schema!(schemas, "skill_publish", "outputSchema", snake_case),
        )
        .tool_backed()
}

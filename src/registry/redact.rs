//! Redaction: which parts of a call's input and output are sensitive, and the one way every
//! recorder (run histories, approvals, audit, traces) writes them down: replaced by
//! [`REDACTED`]. Only records are redacted; the call itself, and a workflow passing a value to
//! its next step, use the real values.
//!
//! Two rules mark a value sensitive:
//! - the tool's schemas: a property whose schema says `"x-sensitive": true` (typed tools write
//!   `#[schemars(extend("x-sensitive" = true))]` on the field; a proxied server may say it too).
//!   They are compiled into paths once, when the tool is registered.
//! - a key's name, for every tool, proxied ones included: header-like and credential-like keys
//!   (`Authorization`, `Cookie`, `X-Api-Key`, `password`, `token`, ...) at any depth, and the
//!   `value` of a `{"name": "<such a key>", "value": ...}` pair.
//!
//! The values a redaction removed are kept as [`Secrets`], to scrub from free text that may
//! echo them (an error message, a result built from a redacted input, a later workflow step).

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use serde_json::Value;

use super::tool::ToolSpec;

/// What a recorded sensitive value reads as.
pub const REDACTED: &str = "[redacted]";

/// The schema keyword that marks a property sensitive.
pub const SENSITIVE_KEYWORD: &str = "x-sensitive";

/// Values shorter than this are redacted where they stand but not scrubbed from free text:
/// replacing every `"ab"` in a message would garble it and hide nothing worth hiding.
const MIN_SCRUB_CHARS: usize = 4;

/// Schemas nest no deeper than this for marks to be found; deeper (or recursive) ones are cut.
const MAX_SCHEMA_DEPTH: usize = 24;

/// Key names (lower case, without `-`, `_` and spaces) whose values are always sensitive.
const SENSITIVE_KEYS: [&str; 13] = [
    "authorization",
    "proxyauthorization",
    "cookie",
    "setcookie",
    "token",
    "bearer",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "authtoken",
    "sessiontoken",
    "securitytoken",
    "privatekey",
];

/// Endings of key names whose values are always sensitive (`X-Api-Key`, `client_secret`, ...).
const SENSITIVE_SUFFIXES: [&str; 4] = ["apikey", "secret", "password", "passwd"];

/// One step of a path into a JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    /// Every item of an array, or every value of an object (a map).
    Any,
}

/// Where a tool's sensitive values are, compiled from its schemas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redaction {
    input: Vec<Vec<Step>>,
    output: Vec<Vec<Step>>,
}

/// A value as it may be recorded, and what was taken out of it.
#[derive(Debug)]
pub struct Redacted<'v> {
    /// Borrowed when nothing in it is sensitive.
    pub value: Cow<'v, Value>,
    pub secrets: Secrets,
}

impl Redaction {
    /// The redaction of a tool: its schemas' marks, besides the key-name rule.
    pub fn of(spec: &ToolSpec) -> Self {
        Self {
            input: marked_paths(&spec.input_schema),
            output: spec.output_schema.as_deref().map(marked_paths).unwrap_or_default(),
        }
    }

    /// The redaction of what has no schema (a resource read, a prompt, an unknown tool): the
    /// key-name rule alone.
    pub fn by_name() -> Arc<Self> {
        static BY_NAME: LazyLock<Arc<Redaction>> = LazyLock::new(Arc::default);
        BY_NAME.clone()
    }

    /// Whether the tool's schemas mark anything sensitive.
    pub fn has_marks(&self) -> bool {
        !self.input.is_empty() || !self.output.is_empty()
    }

    /// A call's input as it may be recorded.
    pub fn input<'v>(&self, input: &'v Value) -> Redacted<'v> {
        redact(&self.input, input)
    }

    /// A call's output (its structured content, or its text as a JSON string) as it may be
    /// recorded, with every value of `known` (from its input, from earlier steps) scrubbed
    /// from its text too.
    pub fn output(&self, output: &Value, known: &Secrets) -> (Value, Secrets) {
        let Redacted { value, mut secrets } = redact(&self.output, output);
        let mut value = value.into_owned();
        secrets.extend(known);
        secrets.scrub_value(&mut value);
        (value, secrets)
    }

    /// A whole MCP result as it may be recorded: its structured content redacted, and what
    /// was taken out of it (and `known`) scrubbed from its text blocks.
    pub fn result(&self, result: &CallToolResult, known: &Secrets) -> CallToolResult {
        let mut recorded = result.clone();
        let mut secrets = known.clone();
        if let Some(structured) = &result.structured_content {
            let (value, found) = self.output(structured, known);
            recorded.structured_content = Some(value);
            secrets = found;
        }
        if !secrets.is_empty() {
            for block in &mut recorded.content {
                if let ContentBlock::Text(text) = block
                    && let Cow::Owned(scrubbed) = secrets.scrub_text(&text.text)
                {
                    text.text = scrubbed;
                }
            }
        }
        recorded
    }
}

/// Sensitive values met while redacting, longest first, to scrub from free text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets(Vec<String>);

impl Secrets {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: &Secrets) {
        for secret in &other.0 {
            self.add(secret.clone());
        }
    }

    /// Notes every string (and number) inside `value`.
    fn note(&mut self, value: &Value) {
        match value {
            Value::String(text) => self.note_text(text),
            Value::Number(number) => self.add(number.to_string()),
            Value::Array(items) => items.iter().for_each(|item| self.note(item)),
            Value::Object(map) => map.values().for_each(|item| self.note(item)),
            Value::Null | Value::Bool(_) => {}
        }
    }

    /// A credential such as `Bearer abc` is also echoed without its scheme, so both are kept;
    /// and text holding it as JSON escapes it, so that spelling is kept too.
    fn note_text(&mut self, text: &str) {
        if let Some((_, credential)) = text.trim().split_once(' ') {
            self.add(credential.trim().to_owned());
        }
        if let Ok(quoted) = serde_json::to_string(text) {
            let escaped = &quoted[1..quoted.len() - 1];
            if escaped != text {
                self.add(escaped.to_owned());
            }
        }
        self.add(text.to_owned());
    }

    fn add(&mut self, secret: String) {
        if secret.chars().count() < MIN_SCRUB_CHARS || secret == REDACTED || self.0.contains(&secret) {
            return;
        }
        // Longest first, so a value is replaced whole before any part of it is.
        let at = self.0.partition_point(|known| known.len() >= secret.len());
        self.0.insert(at, secret);
    }

    /// `text` with every known secret replaced by [`REDACTED`].
    pub fn scrub_text<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.0 {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
        out
    }

    /// Scrubs every string inside `value` (keys stay as they are).
    pub fn scrub_value(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(text) => {
                if let Cow::Owned(scrubbed) = self.scrub_text(text) {
                    *text = scrubbed;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.scrub_value(item)),
            Value::Object(map) => map.values_mut().for_each(|item| self.scrub_value(item)),
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Whether a key's name marks its value sensitive, whatever the tool.
pub fn is_sensitive_key(key: &str) -> bool {
    // Every call's input keys pass here: normalized on the stack, keeping the last bytes, which
    // is all a suffix needs and more than the longest whole name.
    const KEEP: usize = 32;
    let mut tail = [0u8; KEEP];
    let mut len = 0usize;
    for byte in key.bytes().filter(|b| !matches!(b, b'-' | b'_' | b' ' | b'.')) {
        if len == KEEP {
            tail.copy_within(1.., 0);
            len -= 1;
        }
        tail[len] = byte.to_ascii_lowercase();
        len += 1;
    }
    let normalized = &tail[..len];
    let whole = key.len() <= KEEP && SENSITIVE_KEYS.iter().any(|k| k.as_bytes() == normalized);
    whole || SENSITIVE_SUFFIXES.iter().any(|s| normalized.ends_with(s.as_bytes()))
}

/// Redacts `value` at `paths` and wherever the key-name rule says; borrows when nothing matched.
fn redact<'v>(paths: &[Vec<Step>], value: &'v Value) -> Redacted<'v> {
    let mut secrets = Secrets::default();
    let mut found = false;
    for path in paths {
        visit_path(value, path, &mut |sensitive| {
            found = true;
            secrets.note(sensitive);
        });
    }
    visit_named(value, &mut |sensitive| {
        found = true;
        secrets.note(sensitive);
    });
    if !found {
        return Redacted {
            value: Cow::Borrowed(value),
            secrets,
        };
    }
    let mut owned = value.clone();
    for path in paths {
        replace_path(&mut owned, path);
    }
    replace_named(&mut owned);
    Redacted {
        value: Cow::Owned(owned),
        secrets,
    }
}

/// Nothing to hide in a null (an absent optional field) or an already redacted value.
fn worth_hiding(value: &Value) -> bool {
    !value.is_null() && value.as_str() != Some(REDACTED)
}

fn visit_path(value: &Value, path: &[Step], found: &mut impl FnMut(&Value)) {
    match path.split_first() {
        None if worth_hiding(value) => found(value),
        None => {}
        Some((Step::Key(key), rest)) => {
            if let Some(child) = value.as_object().and_then(|map| map.get(key)) {
                visit_path(child, rest, found);
            }
        }
        Some((Step::Any, rest)) => match value {
            Value::Array(items) => items.iter().for_each(|item| visit_path(item, rest, found)),
            Value::Object(map) => map.values().for_each(|item| visit_path(item, rest, found)),
            _ => {}
        },
    }
}

fn replace_path(value: &mut Value, path: &[Step]) {
    match path.split_first() {
        None if worth_hiding(value) => *value = Value::String(REDACTED.to_owned()),
        None => {}
        Some((Step::Key(key), rest)) => {
            if let Some(child) = value.as_object_mut().and_then(|map| map.get_mut(key)) {
                replace_path(child, rest);
            }
        }
        Some((Step::Any, rest)) => match value {
            Value::Array(items) => items.iter_mut().for_each(|item| replace_path(item, rest)),
            Value::Object(map) => map.values_mut().for_each(|item| replace_path(item, rest)),
            _ => {}
        },
    }
}

/// The `value` of a `{"name": "Authorization", "value": ...}` pair (how some tools pass
/// headers), if `map` is one.
fn pair_value_key(map: &serde_json::Map<String, Value>) -> Option<&'static str> {
    let named = ["name", "key", "header"]
        .iter()
        .filter_map(|k| map.get(*k).and_then(Value::as_str))
        .any(is_sensitive_key);
    named.then_some("value").filter(|k| map.contains_key(*k))
}

fn visit_named(value: &Value, found: &mut impl FnMut(&Value)) {
    match value {
        Value::Object(map) => {
            let pair = pair_value_key(map);
            for (key, child) in map {
                if (is_sensitive_key(key) || pair == Some(key.as_str())) && worth_hiding(child) && !child.is_boolean() {
                    found(child);
                } else {
                    visit_named(child, found);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| visit_named(item, found)),
        _ => {}
    }
}

fn replace_named(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let pair = pair_value_key(map);
            for (key, child) in map.iter_mut() {
                if (is_sensitive_key(key) || pair == Some(key.as_str())) && worth_hiding(child) && !child.is_boolean() {
                    *child = Value::String(REDACTED.to_owned());
                } else {
                    replace_named(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(replace_named),
        _ => {}
    }
}

/// The paths of every property `schema` marks sensitive.
fn marked_paths(schema: &JsonObject) -> Vec<Vec<Step>> {
    let root = Value::Object(schema.clone());
    let mut found = Vec::new();
    collect(&root, &root, &mut Vec::new(), &mut found, 0);
    found.sort_by_key(|path: &Vec<Step>| format!("{path:?}"));
    found.dedup();
    found
}

fn collect(schema: &Value, root: &Value, path: &mut Vec<Step>, found: &mut Vec<Vec<Step>>, depth: usize) {
    let Some(map) = schema.as_object() else { return };
    if depth > MAX_SCHEMA_DEPTH {
        return;
    }
    if map.get(SENSITIVE_KEYWORD) == Some(&Value::Bool(true)) {
        found.push(path.clone());
        return;
    }
    if let Some(target) = map
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
    {
        collect(target, root, path, found, depth + 1);
    }
    if let Some(properties) = map.get("properties").and_then(Value::as_object) {
        for (key, child) in properties {
            path.push(Step::Key(key.clone()));
            collect(child, root, path, found, depth + 1);
            path.pop();
        }
    }
    let any_children = ["items", "additionalProperties"]
        .iter()
        .filter_map(|k| map.get(*k))
        .chain(
            ["prefixItems", "patternProperties"]
                .iter()
                .filter_map(|k| map.get(*k))
                .flat_map(children),
        );
    for child in any_children {
        path.push(Step::Any);
        collect(child, root, path, found, depth + 1);
        path.pop();
    }
    for keyword in ["anyOf", "oneOf", "allOf"] {
        if let Some(alternatives) = map.get(keyword) {
            for child in children(alternatives) {
                collect(child, root, path, found, depth + 1);
            }
        }
    }
}

/// The subschemas in an array or object of them.
fn children(value: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(map) => Box::new(map.values()),
        _ => Box::new(std::iter::empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(value: Value) -> Arc<JsonObject> {
        match value {
            Value::Object(map) => Arc::new(map),
            _ => unreachable!(),
        }
    }

    fn spec(input: Value, output: Value) -> ToolSpec {
        ToolSpec {
            name: Arc::from("t.x"),
            title: None,
            description: String::new(),
            input_schema: schema(input),
            output_schema: Some(schema(output)),
            annotations: None,
            origin: super::super::Origin::Primitive,
            audience: super::super::Audience::ByPolicy,
        }
    }

    #[test]
    fn marked_properties_are_found_through_refs_options_and_collections() {
        let redaction = Redaction::of(&spec(
            json!({"type": "object", "properties": {"value": {"type": "string", "x-sensitive": true}}}),
            json!({
                "type": "object",
                "properties": {
                    "value": {"type": ["string", "null"], "x-sensitive": true},
                    "inner": {"anyOf": [{"$ref": "#/$defs/Inner"}, {"type": "null"}]},
                    "list": {"type": "array", "items": {"$ref": "#/$defs/Inner"}},
                    "plain": {"type": "string"}
                },
                "$defs": {"Inner": {"type": "object", "properties": {"key": {"type": "string", "x-sensitive": true}}}}
            }),
        ));
        let output = json!({
            "value": "hunter22",
            "inner": {"key": "k-one-1"},
            "list": [{"key": "k-two-2"}, {"other": 1}],
            "plain": "visible"
        });
        let (recorded, secrets) = redaction.output(&output, &Secrets::default());
        assert_eq!(
            recorded,
            json!({
                "value": REDACTED,
                "inner": {"key": REDACTED},
                "list": [{"key": REDACTED}, {"other": 1}],
                "plain": "visible"
            })
        );
        assert_eq!(
            secrets.scrub_text("said hunter22 and k-one-1"),
            "said [redacted] and [redacted]"
        );
        let input = json!({"value": "s3cr3t-value"});
        let redacted = redaction.input(&input);
        assert_eq!(*redacted.value, json!({"value": REDACTED}));
        let plain = json!({"value": "s3cr3t"});
        let nothing = Redaction::default().input(&plain);
        assert!(matches!(nothing.value, Cow::Borrowed(_)) && nothing.secrets.is_empty());
    }

    #[test]
    fn header_like_keys_are_redacted_for_every_tool() {
        let input = json!({
            "url": "https://example.com",
            "headers": {"Authorization": "Bearer s3cr3t-token", "Accept": "text/plain", "X-Api-Key": "k-123456"},
            "pairs": [{"name": "cookie", "value": "session=abcdef"}, {"name": "accept", "value": "x/y"}],
            "token": null,
            "password": false
        });
        let redacted = Redaction::by_name().input(&input);
        assert_eq!(
            *redacted.value,
            json!({
                "url": "https://example.com",
                "headers": {"Authorization": REDACTED, "Accept": "text/plain", "X-Api-Key": REDACTED},
                "pairs": [{"name": "cookie", "value": REDACTED}, {"name": "accept", "value": "x/y"}],
                "token": null,
                "password": false
            })
        );
        // The credential is scrubbed from an echo with or without its scheme.
        let echo = "got Bearer s3cr3t-token; token s3cr3t-token; session=abcdef";
        assert_eq!(
            redacted.secrets.scrub_text(echo),
            "got [redacted]; token [redacted]; [redacted]"
        );
        for key in [
            "Proxy-Authorization",
            "set_cookie",
            "client_secret",
            "X-Goog-Api-Key",
            "access-token",
            "x-a-very-long-vendor-specific-prefix-api-key",
        ] {
            assert!(is_sensitive_key(key), "{key}");
        }
        for key in ["tokens", "nextPageToken", "accept", "name", "secrets"] {
            assert!(!is_sensitive_key(key), "{key}");
        }
    }

    #[test]
    fn results_are_redacted_in_structure_and_text() {
        let redaction = Redaction::of(&spec(
            json!({"type": "object"}),
            json!({"type": "object", "properties": {"value": {"type": "string", "x-sensitive": true}}}),
        ));
        let structured = json!({"name": "K", "value": "quo\"ted-secret"});
        let mut result = CallToolResult::success(vec![ContentBlock::text(structured.to_string())]);
        result.structured_content = Some(structured);
        let recorded = redaction.result(&result, &Secrets::default());
        assert_eq!(
            recorded.structured_content,
            Some(json!({"name": "K", "value": REDACTED}))
        );
        let text = super::super::result_text(&recorded);
        assert!(!text.contains("ted-secret"), "{text}");
        assert!(text.contains(REDACTED), "{text}");
        // A value known from elsewhere (the input) is scrubbed from an unstructured echo.
        let mut known = Secrets::default();
        known.note(&json!("from-the-input"));
        let echo = CallToolResult::success(vec![ContentBlock::text("echo: from-the-input")]);
        assert_eq!(
            super::super::result_text(&Redaction::default().result(&echo, &known)),
            "echo: [redacted]"
        );
    }

    #[test]
    fn short_values_are_redacted_in_place_but_not_scrubbed_from_text() {
        let input = json!({"password": "abc"});
        let redacted = Redaction::by_name().input(&input);
        assert_eq!(*redacted.value, json!({"password": REDACTED}));
        assert_eq!(redacted.secrets.scrub_text("abc"), "abc");
    }
}

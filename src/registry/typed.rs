//! Typed tools: a handler over Rust types whose JSON Schemas are derived, not hand-written.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::context::CallContext;
use super::tool::{Audience, Hints, Origin, Tool, ToolFailure, ToolResult, ToolSpec};

/// The argument type of a tool that takes none.
#[derive(Debug, Default, serde::Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// Describes a tool step by step, then binds it to a typed handler.
pub struct ToolBuilder {
    name: &'static str,
    title: Option<&'static str>,
    description: &'static str,
    hints: Hints,
    audience: Audience,
}

impl ToolBuilder {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            title: None,
            description: "",
            hints: Hints::default(),
            audience: Audience::ByPolicy,
        }
    }

    pub fn title(mut self, title: &'static str) -> Self {
        self.title = Some(title);
        self
    }

    pub fn description(mut self, description: &'static str) -> Self {
        self.description = description;
        self
    }

    /// Makes the tool visible and callable by ops-admins only.
    pub fn admin_only(mut self) -> Self {
        self.audience = Audience::AdminsOnly;
        self
    }

    /// Who may see and call the tool besides what callers' policies grant (see [`Audience`];
    /// `Everyone` only for tools that answer about the caller's own records).
    pub fn audience(mut self, audience: Audience) -> Self {
        self.audience = audience;
        self
    }

    pub fn hints(mut self, hints: Hints) -> Self {
        self.hints = hints;
        self
    }

    /// Binds the handler. `I` is what the tool accepts, `O` what it returns as structuredContent.
    pub fn handler<I, O, F, Fut>(self, handler: F) -> Arc<dyn Tool>
    where
        I: DeserializeOwned + JsonSchema + Send + 'static,
        O: Serialize + JsonSchema + Send + 'static,
        F: Fn(I, CallContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, ToolFailure>> + Send + 'static,
    {
        let spec = ToolSpec {
            name: Arc::from(self.name),
            title: self.title.map(str::to_owned),
            description: self.description.to_owned(),
            input_schema: input_schema::<I>(),
            output_schema: Some(output_schema::<O>()),
            annotations: Some(self.hints),
            origin: Origin::Primitive,
            audience: self.audience,
        };
        Arc::new(TypedTool {
            spec,
            handler,
            _types: PhantomData::<fn(I) -> O>,
        })
    }
}

struct TypedTool<I, O, F> {
    spec: ToolSpec,
    handler: F,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O, F, Fut> Tool for TypedTool<I, O, F>
where
    I: DeserializeOwned + JsonSchema + Send + 'static,
    O: Serialize + JsonSchema + Send + 'static,
    F: Fn(I, CallContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, ToolFailure>> + Send + 'static,
{
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call<'a>(&'a self, input: Value, ctx: &'a CallContext) -> BoxFuture<'a, ToolResult> {
        // The registry validated `input` against the schema derived from `I`, so a failure here
        // means the schema is looser than the type (e.g. a number out of the type's range).
        let args = match serde_json::from_value::<I>(input) {
            Ok(args) => args,
            Err(error) => {
                return futures::future::ready(Err(ToolFailure::invalid_input(format!("invalid arguments: {error}"))))
                    .boxed();
            }
        };
        let fut = (self.handler)(args, ctx.clone());
        async move { structured(fut.await?) }.boxed()
    }
}

/// Renders a typed output as structuredContent plus the same JSON as text, for clients that
/// read only text content.
fn structured<O: Serialize>(output: O) -> ToolResult {
    let value = serde_json::to_value(&output)
        .map_err(|e| ToolFailure::new(format!("internal error: could not encode the result: {e}")))?;
    Ok(super::results::json_result(value))
}

/// What a tool accepts: the type's draft 2020-12 schema (how it deserializes) without the root
/// `title`, which schemars fills with the Rust type's name: noise to a model.
///
/// Generated here rather than by rmcp's schema helpers, which keep every schema they make in
/// thread-local caches for the life of the process: with the copies made from them, each tool's
/// schemas were held three to five times over.
fn input_schema<I: JsonSchema>() -> Arc<JsonObject> {
    let mut schema = schema_of::<I>(SchemaSettings::draft2020_12());
    schema.remove("title");
    Arc::new(normalized(schema))
}

/// What a tool returns: the type's schema for what it serializes to (an `Option` without
/// `skip_serializing_if` is always present), without the root `title` and `description`.
fn output_schema<O: JsonSchema>() -> Arc<JsonObject> {
    let mut schema = schema_of::<O>(SchemaSettings::draft2020_12().for_serialize());
    schema.remove("title");
    schema.remove("description");
    Arc::new(normalized(schema))
}

fn schema_of<T: JsonSchema>(settings: SchemaSettings) -> JsonObject {
    let schema = settings.into_generator().into_root_schema_for::<T>();
    match serde_json::to_value(schema) {
        Ok(Value::Object(object)) => object,
        // schemars writes a root schema as an object; anything else would be its bug, and a
        // schema that admits anything is the safe reading of it.
        _ => JsonObject::new(),
    }
}

/// Replaces boolean `true` subschemas (what schemars writes for an undescribed `serde_json::Value`)
/// with the equivalent `{}`: some MCP clients validate tool listings with schema libraries that
/// accept only object subschemas. Keyword values such as `uniqueItems: true` are left alone.
fn normalized(mut schema: JsonObject) -> JsonObject {
    normalize_subschemas(&mut schema);
    schema
}

fn normalize_subschemas(map: &mut JsonObject) {
    for (keyword, child) in map.iter_mut() {
        match keyword.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                if let Value::Object(children) = child {
                    children.values_mut().for_each(normalize_schema_position);
                }
            }
            "items" | "contains" | "not" | "if" | "then" | "else" | "propertyNames" | "additionalItems" => {
                normalize_schema_position(child)
            }
            "prefixItems" | "anyOf" | "oneOf" | "allOf" => {
                if let Value::Array(children) = child {
                    children.iter_mut().for_each(normalize_schema_position);
                }
            }
            _ => {}
        }
    }
}

fn normalize_schema_position(schema: &mut Value) {
    if *schema == Value::Bool(true) {
        *schema = Value::Object(Default::default());
    } else if let Value::Object(map) = schema {
        normalize_subschemas(map);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boolean_subschemas_become_objects_but_keywords_stay() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"any": true, "list": {"type": "array", "items": true, "uniqueItems": true}},
            "additionalProperties": false,
            "anyOf": [true, {"required": ["any"]}]
        });
        let Value::Object(map) = schema else { unreachable!() };
        let value = Value::Object(normalized(map));
        assert_eq!(value["properties"]["any"], serde_json::json!({}));
        assert_eq!(value["properties"]["list"]["items"], serde_json::json!({}));
        assert_eq!(value["properties"]["list"]["uniqueItems"], true);
        assert_eq!(value["additionalProperties"], false);
        assert_eq!(value["anyOf"][0], serde_json::json!({}));
    }
}

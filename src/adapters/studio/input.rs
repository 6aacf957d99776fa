//! A command's words as a tool's input: bare words fill the command's positional fields,
//! `field=value` words any field, and each value is read as the tool's input schema types it
//! (text stays text; numbers, booleans, objects and arrays are JSON).

use serde_json::{Map, Value};

use super::commands::Command;
use super::words::Word;

/// The JSON types a field's schema allows; empty when it does not say (any value, or a
/// `$ref`/`anyOf` the studio does not follow).
fn types_of(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(one) => vec![one.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `text` as a value of field `name`, whose schema is `schema`.
fn value_of(name: &str, text: &str, quoted: bool, schema: &Value) -> Result<Value, String> {
    let types = types_of(schema);
    let takes_text = types.contains(&"string");
    let only_text = takes_text && types.iter().all(|t| matches!(*t, "string" | "null"));
    if only_text || (quoted && (takes_text || types.is_empty())) {
        return Ok(Value::String(text.to_owned()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(value) => Ok(value),
        Err(_) if types.is_empty() || takes_text => Ok(Value::String(text.to_owned())),
        _ => Err(format!("`{name}` takes {}: `{text}` is not one", types.join(" or "))),
    }
}

/// A tool input schema's fields and which of them are required.
pub fn fields(input_schema: &Map<String, Value>) -> (&Map<String, Value>, Vec<&str>) {
    static EMPTY: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);
    let properties = input_schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&EMPTY);
    let required = input_schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    (properties, required)
}

/// The tool input `words` (after the command's name) make for `command`, under the tool's
/// `input_schema`.
pub fn build(
    command: &Command,
    words: &[Word],
    input_schema: &Map<String, Value>,
    usage: &str,
) -> Result<Map<String, Value>, String> {
    let (properties, required) = fields(input_schema);
    let schema_of = |name: &str| properties.get(name).cloned().unwrap_or(Value::Null);
    let mut input = Map::new();
    for (field, value) in command.preset {
        input.insert((*field).to_owned(), Value::String((*value).to_owned()));
    }
    let mut bare = Vec::new();
    for word in words {
        match word.named() {
            Some((name, text, quoted)) => {
                if !properties.contains_key(name) {
                    let mut known: Vec<&str> = properties.keys().map(String::as_str).collect();
                    known.sort_unstable();
                    return Err(format!(
                        "`{name}` is not an input of this command; it takes {}. Usage: {usage}",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ));
                }
                let value = value_of(name, text, quoted, &schema_of(name))?;
                input.insert(name.to_owned(), value);
            }
            None => bare.push(word),
        }
    }
    let positional = command.positional;
    let takes_the_rest = command.rest && !positional.is_empty();
    if bare.len() > positional.len() && !takes_the_rest {
        return Err(format!(
            "too many words: `{}`. Usage: {usage}",
            bare[positional.len()].text
        ));
    }
    for (index, field) in positional.iter().enumerate() {
        let last = index + 1 == positional.len();
        let (text, quoted) = if last && command.rest && bare.len() > index {
            let joined: Vec<&str> = bare[index..].iter().map(|w| w.text.as_str()).collect();
            (joined.join(" "), bare.len() == index + 1 && bare[index].quoted())
        } else if let Some(word) = bare.get(index) {
            (word.text.clone(), word.quoted())
        } else {
            break;
        };
        if input.contains_key(*field) {
            return Err(format!("`{field}` is given twice. Usage: {usage}"));
        }
        let value = value_of(field, &text, quoted, &schema_of(field))?;
        input.insert((*field).to_owned(), value);
    }
    if let Some(missing) = required.iter().find(|name| !input.contains_key(**name)) {
        return Err(format!("`{missing}` is missing. Usage: {usage}"));
    }
    Ok(input)
}

/// The usage line of `command` for a tool with `input_schema`: its positional fields in
/// angle brackets (square when optional), then the other fields as `[field=<type>]`.
pub fn usage(command: &Command, input_schema: &Map<String, Value>) -> String {
    let (properties, required) = fields(input_schema);
    let mut line = command.name.to_owned();
    for field in command.positional {
        let more = if command.rest && Some(field) == command.positional.last() {
            "..."
        } else {
            ""
        };
        if required.contains(field) {
            line.push_str(&format!(" <{field}{more}>"));
        } else {
            line.push_str(&format!(" [{field}{more}]"));
        }
    }
    for (field, schema) in properties {
        let preset = command.preset.iter().any(|(name, _)| name == field);
        if command.positional.contains(&field.as_str()) || preset {
            continue;
        }
        let types = types_of(schema);
        let shown = types.iter().find(|t| **t != "null").copied().unwrap_or("value");
        if required.contains(&field.as_str()) {
            line.push_str(&format!(" {field}=<{shown}>"));
        } else {
            line.push_str(&format!(" [{field}=<{shown}>]"));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::commands::find;
    use super::super::words::split;
    use super::*;

    fn schema() -> Map<String, Value> {
        json!({
            "type": "object",
            "required": ["key", "value"],
            "properties": {
                "key": {"type": "string"},
                "value": {},
                "ttlSeconds": {"type": ["integer", "null"]},
                "flag": {"type": "boolean"},
            }
        })
        .as_object()
        .cloned()
        .unwrap()
    }

    fn input(command: &str) -> Result<Value, String> {
        let words = split(command).unwrap();
        let texts: Vec<&str> = words.iter().map(|w| w.text.as_str()).collect();
        let (found, taken) = find(&texts).unwrap();
        build(found, &words[taken..], &schema(), "usage").map(Value::Object)
    }

    #[test]
    fn words_become_typed_fields() {
        assert_eq!(input("mem set 42 42").unwrap(), json!({"key": "42", "value": 42}));
        assert_eq!(input("mem set k hello").unwrap(), json!({"key": "k", "value": "hello"}));
        assert_eq!(input("mem set k \"42\"").unwrap(), json!({"key": "k", "value": "42"}));
        assert_eq!(input("mem set k v ttlSeconds='60'").unwrap()["ttlSeconds"], 60);
        assert_eq!(
            input(r#"mem set k {"a": [1, 2]} ttlSeconds=60 flag=true"#).unwrap(),
            json!({"key": "k", "value": {"a": [1, 2]}, "ttlSeconds": 60, "flag": true})
        );
        assert!(
            input("mem set k v ttlSeconds=soon")
                .unwrap_err()
                .contains("`ttlSeconds` takes integer")
        );
        assert!(input("mem set k").unwrap_err().contains("`value` is missing"));
        assert!(
            input("mem set k v extra")
                .unwrap_err()
                .contains("too many words: `extra`")
        );
        assert!(
            input("mem set k v color=red")
                .unwrap_err()
                .contains("it takes flag, key, ttlSeconds, value")
        );
        assert!(input("mem set k v key=other").unwrap_err().contains("given twice"));
    }

    #[test]
    fn usage_shows_positional_then_named_fields() {
        let (command, _) = find(&["mem", "set"]).unwrap();
        assert_eq!(
            usage(command, &schema()),
            "mem set <key> <value> [flag=<boolean>] [ttlSeconds=<integer>]"
        );
    }
}

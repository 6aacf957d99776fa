//! References between workflow steps: an object `{"$from": "<step id or index>", "pointer":
//! "/a/b"}` anywhere inside a step's input stands for the value at that JSON Pointer in an
//! earlier step's output. Checked when the workflow is submitted, resolved just before the step
//! runs.

use std::collections::HashMap;

use serde_json::Value;

pub const FROM: &str = "$from";
pub const POINTER: &str = "pointer";

/// Step ids and positions, to resolve `$from`.
pub struct StepNames {
    ids: HashMap<String, usize>,
    names: Vec<String>,
}

impl StepNames {
    pub fn new(ids: &[String]) -> Self {
        Self {
            ids: ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect(),
            names: ids.to_vec(),
        }
    }

    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    /// The position of the step `$from` names: its id, or its 0-based index.
    fn lookup(&self, from: &Value) -> Option<usize> {
        match from {
            Value::String(text) => self
                .ids
                .get(text)
                .copied()
                .or_else(|| text.parse::<usize>().ok().filter(|i| *i < self.names.len())),
            Value::Number(n) => n
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .filter(|i| *i < self.names.len()),
            _ => None,
        }
    }
}

/// A reference found in an input.
struct Reference<'a> {
    step: usize,
    pointer: &'a str,
}

/// Reads a `{"$from", "pointer"}` object; None if `value` is not one.
fn reference<'a>(value: &'a Value, names: &StepNames, current: usize) -> Option<Result<Reference<'a>, String>> {
    let object = value.as_object()?;
    let from = object.get(FROM)?;
    Some((|| {
        if let Some(extra) = object.keys().find(|k| *k != FROM && *k != POINTER) {
            return Err(format!(
                "a `{FROM}` reference may only have the keys `{FROM}` and `{POINTER}`; remove `{extra}`"
            ));
        }
        let step = names.lookup(from).ok_or_else(|| {
            format!("`{FROM}`: {from} is not a step of this workflow; use an earlier step's `id` or 0-based index")
        })?;
        if step >= current {
            return Err(format!(
                "`{FROM}`: step `{}` does not run before this one; a step can only use outputs of earlier steps",
                names.name(step)
            ));
        }
        let pointer = match object.get(POINTER) {
            None => "",
            Some(Value::String(p)) if p.is_empty() || p.starts_with('/') => p.as_str(),
            Some(other) => {
                return Err(format!(
                    "`{POINTER}` must be a JSON Pointer string such as `/a/b` or `/items/0` (or \"\" for the \
                     whole output); got {other}"
                ));
            }
        };
        Ok(Reference { step, pointer })
    })())
}

/// Checks every reference in step `current`'s input; says what is wrong with the first bad one.
pub fn check(input: &Value, names: &StepNames, current: usize) -> Result<(), String> {
    if let Some(found) = reference(input, names, current) {
        return found.map(|_| ());
    }
    match input {
        Value::Array(items) => items.iter().try_for_each(|item| check(item, names, current)),
        Value::Object(map) => map.values().try_for_each(|item| check(item, names, current)),
        _ => Ok(()),
    }
}

/// Replaces every reference in `input` by the value it points at. `outputs[i]` is step i's
/// output, None if it has none (it failed or was skipped).
pub fn resolve(input: &Value, names: &StepNames, current: usize, outputs: &[Option<Value>]) -> Result<Value, String> {
    if let Some(found) = reference(input, names, current) {
        let Reference { step, pointer } = found?;
        let name = names.name(step);
        let Some(output) = outputs.get(step).and_then(Option::as_ref) else {
            return Err(format!(
                "it takes a value from step `{name}`, which has no output (it failed)"
            ));
        };
        return output.pointer(pointer).cloned().ok_or_else(|| {
            let keys = match output {
                Value::Object(map) => format!(
                    "its top-level keys are: {}",
                    map.keys().map(|k| format!("`/{k}`")).collect::<Vec<_>>().join(", ")
                ),
                _ => "it is not an object".to_owned(),
            };
            format!("pointer `{pointer}` does not exist in the output of step `{name}` ({keys})")
        });
    }
    Ok(match input {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| resolve(item, names, current, outputs))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| Ok((key.clone(), resolve(item, names, current, outputs)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn names() -> StepNames {
        StepNames::new(&["save".to_owned(), "1".to_owned(), "load".to_owned()])
    }

    #[test]
    fn references_are_replaced_by_earlier_outputs() {
        let outputs = vec![Some(json!({"key": "k", "nested": {"list": [10, 20]}})), None, None];
        let input = json!({
            "key": {"$from": "save", "pointer": "/key"},
            "all": [{"$from": 0}, {"$from": "save", "pointer": "/nested/list/1"}],
            "plain": {"pointer": "/not-a-reference"}
        });
        check(&input, &names(), 2).unwrap();
        let resolved = resolve(&input, &names(), 2, &outputs).unwrap();
        assert_eq!(
            resolved,
            json!({
                "key": "k",
                "all": [{"key": "k", "nested": {"list": [10, 20]}}, 20],
                "plain": {"pointer": "/not-a-reference"}
            })
        );
    }

    #[test]
    fn bad_references_say_what_to_fix() {
        let names = names();
        let error = check(&json!({"a": {"$from": "nope"}}), &names, 2).unwrap_err();
        assert!(error.contains("not a step"), "{error}");
        let error = check(&json!({"a": {"$from": "load"}}), &names, 2).unwrap_err();
        assert!(error.contains("earlier steps"), "{error}");
        let error = check(&json!([{"$from": "save", "pointer": "a"}]), &names, 2).unwrap_err();
        assert!(error.contains("JSON Pointer"), "{error}");
        let error = check(&json!({"$from": "save", "extra": 1}), &names, 2).unwrap_err();
        assert!(error.contains("remove `extra`"), "{error}");
        let outputs = vec![Some(json!({"key": "k"})), None, None];
        let error = resolve(&json!({"$from": "save", "pointer": "/value"}), &names, 2, &outputs).unwrap_err();
        assert!(
            error.contains("`/value` does not exist") && error.contains("`/key`"),
            "{error}"
        );
        let error = resolve(&json!({"$from": 1}), &names, 2, &outputs).unwrap_err();
        assert!(error.contains("no output"), "{error}");
    }
}

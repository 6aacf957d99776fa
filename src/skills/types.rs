//! WIT types as JSON: the JSON Schema of a capability's inputs and result, generated from the
//! component's own types, and the conversion of JSON values to and from component values. One
//! mapping for both, so a value that passes the schema converts:
//!
//! | WIT | JSON |
//! |---|---|
//! | `bool`, integers, floats | boolean, integer (with its range), number |
//! | `char`, `string` | string (one character for `char`) |
//! | `list<T>`, `tuple<..>` | array |
//! | `record` | object, fields in camelCase, all required except `option` fields |
//! | `variant` | the case name, or `{"<case>": payload}` for a case with a payload |
//! | `enum` | the case name |
//! | `flags` | array of the flags set |
//! | `option<T>` | the value, or `null` |
//! | `result<T, E>` | `{"ok": T}` or `{"err": E}` (a capability's own result: ok is the answer, err a tool error) |
//!
//! Resources, futures, streams and maps have no JSON form here: a capability using them is
//! refused when the skill is published.

use serde_json::{Map, Value, json};
use wasmtime::component::{Type, Val};

/// `read-page` → `readPage`: WIT names in kebab-case, JSON keys in camelCase.
pub fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Why a type has no JSON form, naming it.
pub fn unsupported(ty: &Type) -> Option<&'static str> {
    match ty {
        Type::Own(_) | Type::Borrow(_) => Some("a resource"),
        Type::Future(_) => Some("a future"),
        Type::Stream(_) => Some("a stream"),
        Type::ErrorContext => Some("an error-context"),
        Type::Map(_) => Some("a map"),
        Type::List(list) => unsupported(&list.ty()),
        Type::FixedLengthList(list) => unsupported(&list.ty()),
        Type::Option(option) => unsupported(&option.ty()),
        Type::Tuple(tuple) => tuple.types().find_map(|t| unsupported(&t)),
        Type::Record(record) => record.fields().find_map(|f| unsupported(&f.ty)),
        Type::Variant(variant) => variant.cases().find_map(|c| c.ty.as_ref().and_then(unsupported)),
        Type::Result(result) => result
            .ok()
            .as_ref()
            .and_then(unsupported)
            .or_else(|| result.err().as_ref().and_then(unsupported)),
        _ => None,
    }
}

fn integer(min: i128, max: i128) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

/// The JSON Schema of values of `ty`.
pub fn schema(ty: &Type) -> Value {
    match ty {
        Type::Bool => json!({"type": "boolean"}),
        Type::S8 => integer(i8::MIN.into(), i8::MAX.into()),
        Type::U8 => integer(0, u8::MAX.into()),
        Type::S16 => integer(i16::MIN.into(), i16::MAX.into()),
        Type::U16 => integer(0, u16::MAX.into()),
        Type::S32 => integer(i32::MIN.into(), i32::MAX.into()),
        Type::U32 => integer(0, u32::MAX.into()),
        Type::S64 => integer(i64::MIN.into(), i64::MAX.into()),
        Type::U64 => integer(0, u64::MAX.into()),
        Type::Float32 | Type::Float64 => json!({"type": "number"}),
        Type::Char => json!({"type": "string", "minLength": 1, "maxLength": 1}),
        Type::String => json!({"type": "string"}),
        Type::List(list) => json!({"type": "array", "items": schema(&list.ty())}),
        Type::FixedLengthList(list) => {
            let size = list.len();
            json!({"type": "array", "items": schema(&list.ty()), "minItems": size, "maxItems": size})
        }
        Type::Tuple(tuple) => {
            let items: Vec<Value> = tuple.types().map(|t| schema(&t)).collect();
            let size = items.len();
            json!({"type": "array", "prefixItems": items, "minItems": size, "maxItems": size})
        }
        Type::Record(record) => object(record.fields().map(|field| (field.name, field.ty))),
        Type::Variant(variant) => {
            let cases: Vec<Value> = variant
                .cases()
                .map(|case| match &case.ty {
                    None => json!({"const": case.name}),
                    Some(payload) => object([(case.name, payload.clone())].into_iter()),
                })
                .collect();
            json!({"oneOf": cases})
        }
        Type::Enum(cases) => json!({"type": "string", "enum": cases.names().collect::<Vec<_>>()}),
        Type::Flags(flags) => json!({
            "type": "array",
            "items": {"type": "string", "enum": flags.names().collect::<Vec<_>>()},
            "uniqueItems": true
        }),
        Type::Option(option) => json!({"anyOf": [schema(&option.ty()), {"type": "null"}]}),
        Type::Result(result) => {
            let side = |name: &str, ty: Option<Type>| {
                let value = ty.as_ref().map_or(json!({"type": "null"}), schema);
                json!({"type": "object", "properties": {name: value}, "required": [name], "additionalProperties": false})
            };
            json!({"oneOf": [side("ok", result.ok()), side("err", result.err())]})
        }
        _ => json!({"not": {}, "description": "no JSON form"}),
    }
}

/// An object schema with one camelCase property per named type; `option` ones may be left out.
pub fn object<'a>(fields: impl Iterator<Item = (&'a str, Type)>) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, ty) in fields {
        let key = camel(name);
        if !matches!(ty, Type::Option(_)) {
            required.push(Value::String(key.clone()));
        }
        properties.insert(key, schema(&ty));
    }
    json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
}

/// Converts `value` to a component value of type `ty`; the error says where it did not fit.
pub fn to_val(value: &Value, ty: &Type, path: &str) -> Result<Val, String> {
    let wrong = |expected: &str| format!("`{path}` must be {expected}");
    let int = |min: i128, max: i128| -> Result<i128, String> {
        let n = value
            .as_i64()
            .map(i128::from)
            .or_else(|| value.as_u64().map(i128::from))
            .ok_or_else(|| wrong(&format!("an integer between {min} and {max}")))?;
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(wrong(&format!("an integer between {min} and {max}")))
        }
    };
    // Each conversion below follows a range check on the same bounds.
    Ok(match ty {
        Type::Bool => Val::Bool(value.as_bool().ok_or_else(|| wrong("true or false"))?),
        Type::S8 => Val::S8(int(i8::MIN.into(), i8::MAX.into())? as i8),
        Type::U8 => Val::U8(int(0, u8::MAX.into())? as u8),
        Type::S16 => Val::S16(int(i16::MIN.into(), i16::MAX.into())? as i16),
        Type::U16 => Val::U16(int(0, u16::MAX.into())? as u16),
        Type::S32 => Val::S32(int(i32::MIN.into(), i32::MAX.into())? as i32),
        Type::U32 => Val::U32(int(0, u32::MAX.into())? as u32),
        Type::S64 => Val::S64(int(i64::MIN.into(), i64::MAX.into())? as i64),
        Type::U64 => Val::U64(int(0, u64::MAX.into())? as u64),
        Type::Float32 => Val::Float32(value.as_f64().ok_or_else(|| wrong("a number"))? as f32),
        Type::Float64 => Val::Float64(value.as_f64().ok_or_else(|| wrong("a number"))?),
        Type::Char => {
            let text = value.as_str().ok_or_else(|| wrong("one character"))?;
            let mut chars = text.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(wrong("one character")),
            }
        }
        Type::String => Val::String(value.as_str().ok_or_else(|| wrong("a string"))?.to_owned()),
        Type::List(list) => Val::List(items(value, &list.ty(), path, &wrong)?),
        Type::FixedLengthList(list) => {
            let values = items(value, &list.ty(), path, &wrong)?;
            if values.len() != list.len() as usize {
                return Err(wrong(&format!("an array of {} items", list.len())));
            }
            Val::FixedLengthList(values)
        }
        Type::Tuple(tuple) => {
            let array = value.as_array().ok_or_else(|| wrong("an array"))?;
            if array.len() != tuple.types().len() {
                return Err(wrong(&format!("an array of {} items", tuple.types().len())));
            }
            let converted = array
                .iter()
                .zip(tuple.types())
                .enumerate()
                .map(|(i, (item, ty))| to_val(item, &ty, &format!("{path}/{i}")))
                .collect::<Result<_, _>>()?;
            Val::Tuple(converted)
        }
        Type::Record(record) => {
            let fields = record.fields().map(|f| (f.name.to_owned(), f.ty)).collect::<Vec<_>>();
            Val::Record(fields_of(value, &fields, path)?)
        }
        Type::Variant(variant) => {
            let (case, payload) = tagged(value).ok_or_else(|| wrong("a case name, or {\"<case>\": value}"))?;
            let found = variant.cases().find(|c| c.name == case).ok_or_else(|| {
                wrong(&format!(
                    "one of {}",
                    variant.cases().map(|c| c.name).collect::<Vec<_>>().join(", ")
                ))
            })?;
            let payload = match (&found.ty, payload) {
                (None, None) => None,
                (Some(ty), Some(payload)) => Some(Box::new(to_val(payload, ty, &format!("{path}/{case}"))?)),
                (None, Some(_)) => return Err(format!("`{path}`: case `{case}` carries no value")),
                (Some(_), None) => return Err(format!("`{path}`: case `{case}` needs a value: {{\"{case}\": ...}}")),
            };
            Val::Variant(case.to_owned(), payload)
        }
        Type::Enum(cases) => {
            let name = value.as_str().unwrap_or_default();
            if !cases.names().any(|n| n == name) {
                return Err(wrong(&format!(
                    "one of {}",
                    cases.names().collect::<Vec<_>>().join(", ")
                )));
            }
            Val::Enum(name.to_owned())
        }
        Type::Flags(flags) => {
            let array = value.as_array().ok_or_else(|| wrong("an array of flag names"))?;
            let mut set = Vec::new();
            for item in array {
                let name = item.as_str().filter(|n| flags.names().any(|f| f == *n));
                let name =
                    name.ok_or_else(|| wrong(&format!("flags from {}", flags.names().collect::<Vec<_>>().join(", "))))?;
                set.push(name.to_owned());
            }
            Val::Flags(set)
        }
        Type::Option(option) => match value {
            Value::Null => Val::Option(None),
            value => Val::Option(Some(Box::new(to_val(value, &option.ty(), path)?))),
        },
        Type::Result(result) => {
            let (side, payload) = tagged(value)
                .filter(|(side, _)| matches!(*side, "ok" | "err"))
                .ok_or_else(|| wrong("{\"ok\": ...} or {\"err\": ...}"))?;
            let ty = if side == "ok" { result.ok() } else { result.err() };
            let payload = match (ty, payload) {
                (Some(ty), Some(payload)) => Some(Box::new(to_val(payload, &ty, &format!("{path}/{side}"))?)),
                (None, None | Some(Value::Null)) => None,
                _ => return Err(wrong(&format!("{{\"{side}\": ...}} with the right value"))),
            };
            Val::Result(if side == "ok" { Ok(payload) } else { Err(payload) })
        }
        _ => return Err(format!("`{path}` has a type with no JSON form")),
    })
}

fn items(value: &Value, ty: &Type, path: &str, wrong: &dyn Fn(&str) -> String) -> Result<Vec<Val>, String> {
    let array = value.as_array().ok_or_else(|| wrong("an array"))?;
    array
        .iter()
        .enumerate()
        .map(|(i, item)| to_val(item, ty, &format!("{path}/{i}")))
        .collect()
}

/// A case name alone, or an object with exactly one key.
fn tagged(value: &Value) -> Option<(&str, Option<&Value>)> {
    match value {
        Value::String(name) => Some((name, None)),
        Value::Object(map) if map.len() == 1 => map.iter().next().map(|(k, v)| (k.as_str(), Some(v))),
        _ => None,
    }
}

/// The named fields of an object (camelCase keys), in order; missing `option` fields are none.
pub fn fields_of(value: &Value, fields: &[(String, Type)], path: &str) -> Result<Vec<(String, Val)>, String> {
    let object = value
        .as_object()
        .ok_or_else(|| format!("`{}` must be an object", if path.is_empty() { "/" } else { path }))?;
    let known: Vec<String> = fields.iter().map(|(name, _)| camel(name)).collect();
    if let Some(extra) = object.keys().find(|key| !known.contains(key)) {
        return Err(format!(
            "`{path}/{extra}` is not a field here; the fields are: {}",
            known.join(", ")
        ));
    }
    fields
        .iter()
        .zip(&known)
        .map(|((name, ty), key)| {
            let field_path = format!("{path}/{key}");
            let val = match object.get(key) {
                Some(item) => to_val(item, ty, &field_path)?,
                None if matches!(ty, Type::Option(_)) => Val::Option(None),
                None => return Err(format!("`{field_path}` is required")),
            };
            Ok((name.clone(), val))
        })
        .collect()
}

/// A component value as JSON (the inverse of [`to_val`]).
pub fn to_json(val: &Val) -> Value {
    match val {
        Val::Bool(b) => json!(b),
        Val::S8(n) => json!(n),
        Val::U8(n) => json!(n),
        Val::S16(n) => json!(n),
        Val::U16(n) => json!(n),
        Val::S32(n) => json!(n),
        Val::U32(n) => json!(n),
        Val::S64(n) => json!(n),
        Val::U64(n) => json!(n),
        Val::Float32(n) => json!(n),
        Val::Float64(n) => json!(n),
        Val::Char(c) => json!(c.to_string()),
        Val::String(s) => json!(s),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Value::Array(items.iter().map(to_json).collect())
        }
        Val::Record(fields) => Value::Object(fields.iter().map(|(k, v)| (camel(k), to_json(v))).collect()),
        Val::Variant(case, None) | Val::Enum(case) => json!(case),
        Val::Variant(case, Some(payload)) => json!({case.as_str(): to_json(payload)}),
        Val::Flags(set) => json!(set),
        Val::Option(None) => Value::Null,
        Val::Option(Some(inner)) => to_json(inner),
        Val::Result(Ok(payload)) => json!({"ok": payload.as_deref().map_or(Value::Null, to_json)}),
        Val::Result(Err(payload)) => json!({"err": payload.as_deref().map_or(Value::Null, to_json)}),
        Val::Map(_) | Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => Value::Null,
    }
}

//! Data tools that touch no state: new ids (`agentos.uuid_new`), digests (`agentos.hash`) and
//! values picked out of JSON documents (`agentos.json_query`).

use std::sync::Arc;

use base64::Engine;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Digest;

use crate::registry::{Hints, Tool, ToolBuilder, ToolFailure};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct UuidArgs {
    /// How many to make (default 1, at most 100).
    #[schemars(range(min = 1, max = 100))]
    count: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Uuids {
    /// Random (version 4) UUIDs.
    uuids: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Algorithm {
    #[default]
    Sha256,
    Blake3,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct HashArgs {
    /// The text to hash (as UTF-8). Give either `text` or `base64`.
    text: Option<String>,
    /// Bytes to hash, base64-encoded.
    base64: Option<String>,
    /// `sha256` (default) or `blake3`.
    #[serde(default)]
    algorithm: Algorithm,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Hashed {
    algorithm: Algorithm,
    /// The digest in lowercase hex.
    hex: String,
    /// How many bytes were hashed.
    bytes: usize,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct QueryArgs {
    /// The JSON document to look into.
    document: Value,
    /// Where to look: a JSON Pointer (`/items/0/name`) or a dotted path (`items[0].name`,
    /// `items[*].name` for every item's name). Empty means the whole document.
    query: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct QueryResult {
    /// Whether the path exists (for `[*]` paths: whether any item matched).
    found: bool,
    /// The value found; null when not found; an array for `[*]` paths.
    value: Value,
}

/// One step of a dotted path.
#[derive(Debug, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    Every,
}

/// Parses `a.b[0].c`, `a[*].b` and `a.*` into steps.
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        match name {
            "" => {}
            "*" => steps.push(Step::Every),
            name => steps.push(Step::Key(name.to_owned())),
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let close = inner.find(']').ok_or_else(|| format!("`{part}`: `[` without `]`"))?;
            let index = &inner[..close];
            steps.push(match index {
                "*" => Step::Every,
                digits => Step::Index(
                    digits
                        .parse()
                        .map_err(|_| format!("`[{digits}]`: an index is a number or `*`"))?,
                ),
            });
            rest = &inner[close + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("`{part}`: unexpected `{rest}`"));
        }
    }
    Ok(steps)
}

/// Follows steps through a value; `Every` fans out over array items or object values.
fn follow<'a>(value: &'a Value, steps: &[Step], out: &mut Vec<&'a Value>) {
    let Some((step, rest)) = steps.split_first() else {
        out.push(value);
        return;
    };
    match (step, value) {
        (Step::Key(key), Value::Object(map)) => {
            if let Some(next) = map.get(key) {
                follow(next, rest, out);
            }
        }
        (Step::Index(index), Value::Array(items)) => {
            if let Some(next) = items.get(*index) {
                follow(next, rest, out);
            }
        }
        (Step::Every, Value::Array(items)) => items.iter().for_each(|item| follow(item, rest, out)),
        (Step::Every, Value::Object(map)) => map.values().for_each(|item| follow(item, rest, out)),
        _ => {}
    }
}

fn run_query(document: &Value, query: &str) -> Result<QueryResult, String> {
    let query = query.trim();
    if query.is_empty() {
        return Ok(QueryResult {
            found: true,
            value: document.clone(),
        });
    }
    if query.starts_with('/') {
        return Ok(match document.pointer(query) {
            Some(value) => QueryResult {
                found: true,
                value: value.clone(),
            },
            None => QueryResult {
                found: false,
                value: Value::Null,
            },
        });
    }
    let steps = parse_path(query)?;
    let fans_out = steps.contains(&Step::Every);
    let mut found = Vec::new();
    follow(document, &steps, &mut found);
    Ok(if fans_out {
        QueryResult {
            found: !found.is_empty(),
            value: Value::Array(found.into_iter().cloned().collect()),
        }
    } else {
        match found.first() {
            Some(value) => QueryResult {
                found: true,
                value: (*value).clone(),
            },
            None => QueryResult {
                found: false,
                value: Value::Null,
            },
        }
    })
}

pub fn tools() -> Vec<Arc<dyn Tool>> {
    vec![
        ToolBuilder::new("agentos.uuid_new")
            .title("New UUIDs")
            .description("Makes random (version 4) UUIDs, e.g. to name records or correlate requests.")
            .hints(Hints {
                read_only: true,
                destructive: false,
                idempotent: false,
                open_world: false,
            })
            .handler(|args: UuidArgs, _ctx| async move {
                let count = args.count.unwrap_or(1);
                if !(1..=100).contains(&count) {
                    return Err(ToolFailure::new("`count` must be between 1 and 100"));
                }
                Ok(Uuids {
                    uuids: (0..count).map(|_| uuid::Uuid::new_v4().to_string()).collect(),
                })
            }),
        ToolBuilder::new("agentos.hash")
            .title("Hash data")
            .description(
                "Computes the SHA-256 (default) or BLAKE3 digest of text or of base64-encoded \
                 bytes, in hex. Use it to fingerprint content or check integrity.",
            )
            .hints(Hints::READ_ONLY)
            .handler(|args: HashArgs, _ctx| async move {
                let bytes = match (args.text, args.base64) {
                    (Some(text), None) => text.into_bytes(),
                    (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                        .decode(encoded.trim())
                        .map_err(|e| ToolFailure::new(format!("`base64` is not valid base64: {e}")))?,
                    _ => return Err(ToolFailure::new("give exactly one of `text` and `base64`")),
                };
                let hex = match args.algorithm {
                    Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(&bytes)),
                    Algorithm::Blake3 => blake3::hash(&bytes).to_hex().to_string(),
                };
                Ok(Hashed {
                    algorithm: args.algorithm,
                    hex,
                    bytes: bytes.len(),
                })
            }),
        ToolBuilder::new("agentos.json_query")
            .title("Query JSON")
            .description(
                "Extracts a value from a JSON document by JSON Pointer (`/a/0/b`) or dotted path \
                 (`a[0].b`, `items[*].name` to collect a field from every item). Returns \
                 found=false and null when nothing is there.",
            )
            .hints(Hints::READ_ONLY)
            .handler(|args: QueryArgs, _ctx| async move {
                run_query(&args.document, &args.query).map_err(|e| ToolFailure::new(format!("`query`: {e}")))
            }),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pointers_and_paths_find_values() {
        let doc = json!({"items": [{"name": "a", "n": 1}, {"name": "b"}], "meta": {"x": null}});
        assert_eq!(run_query(&doc, "/items/1/name").unwrap().value, "b");
        assert_eq!(run_query(&doc, "items[0].n").unwrap().value, 1);
        assert_eq!(run_query(&doc, "items[*].name").unwrap().value, json!(["a", "b"]));
        let missing = run_query(&doc, "items[5].name").unwrap();
        assert!(!missing.found && missing.value.is_null());
        let null = run_query(&doc, "meta.x").unwrap();
        assert!(null.found, "a present null is found");
        assert_eq!(run_query(&doc, "").unwrap().value, doc);
        assert!(run_query(&doc, "items[x]").is_err());
        assert!(run_query(&doc, "items[0").is_err());
    }

    #[test]
    fn digests_match_known_values() {
        assert_eq!(
            hex::encode(sha2::Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            blake3::hash(b"abc").to_hex().as_str(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
    }
}

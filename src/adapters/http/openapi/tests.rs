//! The document against the router: every `.route(...)` in the source is described, every
//! described operation is routed (or served by a part being built elsewhere), and the document is
//! a well-formed OpenAPI 3.1 description whose references resolve.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use super::DOCUMENT;

/// `{agent_id}` and `{agentId}` name the same segment.
fn shape(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

/// The (method, path) pairs of every `.route` call (a path literal, then `get(..)`, `post(..)`, ...) in the Rust sources
/// under `src/`; `any(..)` stands for the methods `/mcp` serves.
fn routed() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("src is readable").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source is readable");
                routes_in(&text, &mut found);
            }
        }
    }
    found
}

fn routes_in(text: &str, found: &mut BTreeSet<(String, String)>) {
    let needle = concat!(".route", "(");
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        rest = rest[at + needle.len()..].trim_start();
        let Some(literal) = rest.strip_prefix('"') else {
            continue;
        };
        rest = literal;
        let Some(end) = rest.find('"') else { return };
        let path = shape(&rest[..end]);
        // The handler expression runs to the parenthesis closing `.route(`.
        let mut depth = 1;
        let mut close = rest.len();
        for (i, c) in rest[end..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                close = end + i;
                break;
            }
        }
        let handlers = &rest[end..close];
        for method in ["get", "post", "delete", "put", "patch"] {
            if handlers.contains(&format!("{method}(")) {
                found.insert((method.to_owned(), path.clone()));
            }
        }
        if handlers.contains("any(") {
            for method in ["get", "post", "delete"] {
                found.insert((method.to_owned(), path.clone()));
            }
        }
    }
}

fn documented() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, methods) in DOCUMENT["paths"].as_object().expect("paths") {
        for method in methods.as_object().expect("path item").keys() {
            found.insert((method.clone(), shape(path)));
        }
    }
    found
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let routed = routed();
    assert!(routed.contains(&("post".into(), "/api/signup".into())), "{routed:?}");
    let documented = documented();
    let missing: Vec<_> = routed.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document: {missing:?}"
    );
    let stale: Vec<_> = documented.difference(&routed).collect();
    assert!(stale.is_empty(), "documented routes the router lacks: {stale:?}");
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("$ref", Value::String(target)) => out.push(target.clone()),
                    _ => refs(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, out)),
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_its_references_resolve() {
    assert_eq!(DOCUMENT["openapi"], "3.1.0");
    let mut targets = Vec::new();
    refs(&DOCUMENT, &mut targets);
    assert!(!targets.is_empty());
    for target in targets {
        let pointer = target.strip_prefix('#').expect("local reference");
        assert!(DOCUMENT.pointer(pointer).is_some(), "unresolved reference {target}");
    }
    let mut ids = BTreeSet::new();
    for (path, methods) in DOCUMENT["paths"].as_object().expect("paths") {
        for (method, op) in methods.as_object().expect("path item") {
            assert!(
                ids.insert(op["operationId"].to_string()),
                "duplicate operationId at {method} {path}"
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path} has no success"
            );
            // Path parameters are declared.
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(|c| c == '{' || c == '}');
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["in"] == "path" && p["name"] == name));
                assert!(declared, "{method} {path} does not declare {name}");
            }
        }
    }
}

#[test]
fn the_docs_page_is_self_contained() {
    let page = super::DOCS_PAGE.as_str();
    assert!(page.contains("/openapi.json"));
    assert!(!page.contains("/*SCRIPT*/") && !page.contains("/*STYLE*/"));
    for external in ["http://", "https://", "//cdn", "src=\"", "href=\"http"] {
        assert!(!page.contains(external), "the docs page refers to {external}");
    }
}

//! The document against the route table: every route is described, and the document is a
//! well-formed OpenAPI 3.1 description whose references resolve.

use std::collections::BTreeSet;

use serde_json::Value;

use super::DOCUMENT;

#[test]
fn every_route_of_the_table_is_described_once_with_an_id() {
    let mut described = BTreeSet::new();
    for (path, methods) in DOCUMENT["paths"].as_object().expect("paths") {
        for (method, op) in methods.as_object().expect("path item") {
            assert!(
                op["operationId"].as_str().is_some_and(|id| !id.is_empty()),
                "{method} {path} has no operationId"
            );
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            described.insert((method.clone(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = super::super::routes::table(true)
        .iter()
        .map(|route| (route.method.as_str().to_ascii_lowercase(), route.path.to_owned()))
        .collect();
    assert_eq!(described, routed);
    assert!(routed.contains(&("post".into(), "/api/signup".into())));
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

//! The architecture as a test over the crate's paths: the front doors (`src/adapters/`) never
//! reach a store, a primitive or an upstream except through the registry, and no two top-level
//! parts of `src/` depend on each other, directly or around a cycle. A part depends on another
//! when any of its files names `crate::<other>` (in a `use`, a `use crate::{...}` group or a
//! path) or climbs to it with `super::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the front doors must never import: they call the registry, which calls these.
const FORBIDDEN_TO_ADAPTERS: [&str; 3] = ["store", "primitives", "upstream"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level parts: `src/<part>.rs` and `src/<part>/`, beside `lib.rs` and `main.rs`.
fn parts() -> BTreeSet<String> {
    std::fs::read_dir(src())
        .expect("src is readable")
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let part = name.strip_suffix(".rs").unwrap_or(&name).to_owned();
            (part != "lib" && part != "main").then_some(part)
        })
        .collect()
}

/// Every Rust file under `dir`, with its module path (`src/adapters/http/auth.rs` is
/// `["adapters", "http", "auth"]`).
fn files(dir: &Path, module: &[String], out: &mut Vec<(PathBuf, Vec<String>)>) {
    for entry in std::fs::read_dir(dir).expect("source dir is readable").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut inner = module.to_vec();
            inner.push(name);
            files(&path, &inner, out);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            let mut inner = module.to_vec();
            if !(module.is_empty() && (stem == "lib" || stem == "main")) {
                inner.push(stem.to_owned());
            }
            out.push((path, inner));
        }
    }
}

/// The code of a file without its comments, so that prose naming `crate::x` is not a dependency.
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The top-level parts a file's code names.
fn named_parts(code: &str, module: &[String], parts: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                found.insert(ident_at(item.trim()).to_owned());
            }
        } else {
            found.insert(ident_at(rest).to_owned());
        }
    }
    // `super::super::x` from `a/b/c.rs` is `crate::x`.
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let mut climbs = 0;
        let mut after = &rest[at..];
        while let Some(next) = after.strip_prefix("super::") {
            climbs += 1;
            after = next;
        }
        rest = after;
        if climbs == module.len() {
            found.insert(ident_at(after).to_owned());
        }
    }
    found.retain(|name| parts.contains(name));
    found
}

/// Part → the parts it depends on, and for each edge one file that makes it.
fn graph() -> BTreeMap<String, BTreeMap<String, PathBuf>> {
    let parts = parts();
    let mut all = Vec::new();
    files(&src(), &[], &mut all);
    let mut graph: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for (path, module) in all {
        let Some(own) = module.first() else { continue };
        let text = std::fs::read_to_string(&path).expect("source is readable");
        for other in named_parts(&code(&text), &module, &parts) {
            if &other != own {
                graph
                    .entry(own.clone())
                    .or_default()
                    .entry(other)
                    .or_insert_with(|| path.clone());
            }
        }
    }
    graph
}

#[test]
fn adapters_reach_stores_primitives_and_upstreams_only_through_the_registry() {
    let graph = graph();
    let adapters = graph.get("adapters").expect("the adapters depend on something");
    assert!(adapters.contains_key("registry"), "{adapters:?}");
    let broken: Vec<String> = FORBIDDEN_TO_ADAPTERS
        .iter()
        .filter_map(|part| {
            adapters
                .get(*part)
                .map(|file| format!("{} imports crate::{part}", file.display()))
        })
        .collect();
    assert!(broken.is_empty(), "adapters go around the registry: {broken:#?}");
}

#[test]
fn no_two_parts_depend_on_each_other() {
    let graph = graph();
    // Depth-first search for a cycle; report the first one found, with a file per edge.
    fn visit(
        part: &str,
        graph: &BTreeMap<String, BTreeMap<String, PathBuf>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == part) {
            let mut cycle = path[start..].to_vec();
            cycle.push(part.to_owned());
            return Some(cycle);
        }
        if done.contains(part) {
            return None;
        }
        path.push(part.to_owned());
        for next in graph.get(part).into_iter().flat_map(|edges| edges.keys()) {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(part.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for part in graph.keys() {
        if let Some(cycle) = visit(part, &graph, &mut Vec::new(), &mut done) {
            let edges: Vec<String> = cycle
                .windows(2)
                .map(|pair| format!("{} -> {} ({})", pair[0], pair[1], graph[&pair[0]][&pair[1]].display()))
                .collect();
            panic!("the parts of src/ form a cycle: {edges:#?}");
        }
    }
}

#[test]
fn the_scanner_sees_every_way_of_naming_a_part() {
    let parts: BTreeSet<String> = ["store", "registry", "upstream"].map(String::from).into();
    let module = ["adapters".to_owned(), "http".to_owned()];
    let code =
        code("use crate::{registry::Caller, store};\n// crate::upstream in prose\nlet x = super::super::upstream::X;");
    let found = named_parts(&code, &module, &parts);
    assert_eq!(found, ["registry", "store", "upstream"].map(String::from).into());
    let plain = named_parts("use crate::store::Store;", &module, &parts);
    assert_eq!(plain, ["store".to_owned()].into());
    assert!(named_parts("use super::plain;", &module, &parts).is_empty());
}

//! Knowledge: documents split into chunks and searched with BM25, filtered by metadata.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Services;
use crate::registry::{Hints, Tool, ToolBuilder, ToolFailure};
use crate::store::{MetadataValue, NewDocument};

/// Splits text into chunks of at most `max` characters: whole paragraphs where they fit, else
/// sentences, else words, else a hard cut. Chunks never split a character.
pub fn chunk_text(text: &str, max: usize) -> Vec<String> {
    let max = max.max(50);
    let mut pieces: Vec<&str> = Vec::new();
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        split_to_fit(paragraph, max, &mut pieces);
    }
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    for piece in pieces {
        let needed = if current.is_empty() { 0 } else { 2 } + piece.chars().count();
        if !current.is_empty() && current.chars().count() + needed > max {
            chunks.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push_str("\n\n");
        }
        current.push_str(piece);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Appends `text` to `out` in pieces of at most `max` characters, preferring sentence ends, then
/// spaces.
fn split_to_fit<'a>(text: &'a str, max: usize, out: &mut Vec<&'a str>) {
    let mut rest = text.trim();
    while rest.chars().count() > max {
        let limit = rest.char_indices().nth(max).map_or(rest.len(), |(i, _)| i);
        let window = &rest[..limit];
        let cut = window
            .rfind(". ")
            .map(|i| i + 1)
            .or_else(|| window.rfind(char::is_whitespace))
            .filter(|&i| i > 0)
            .unwrap_or(limit);
        out.push(rest[..cut].trim());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct AddArgs {
    /// The document's text. Paragraphs (separated by blank lines) are kept together in chunks.
    #[schemars(length(min = 1))]
    text: String,
    /// Your id for the document; adding again with the same id replaces it. Default: a new UUID.
    #[schemars(length(min = 1, max = 200))]
    id: Option<String>,
    /// A title shown with search results.
    title: Option<String>,
    /// Where the text came from (a URL, a file name).
    source: Option<String>,
    /// Facts to filter searches by, e.g. `{"project": "alpha", "year": 2026}`: an object whose
    /// values are strings, numbers or booleans.
    metadata: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Added {
    id: String,
    /// How many chunks the text was split into.
    chunks: usize,
    /// True if a document with this id was replaced.
    replaced: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchArgs {
    /// Words to look for; any may match, also as prefixes. Best matches (BM25) come first.
    #[schemars(length(min = 1, max = 1000))]
    query: String,
    /// Only documents whose metadata has each of these key/value pairs, e.g. `{"project": "alpha"}`.
    filter: Option<Map<String, Value>>,
    /// Most chunks to return (default 5, at most 50).
    #[schemars(range(min = 1, max = 50))]
    limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Hit {
    /// The document's id.
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    metadata: Value,
    /// Position of the chunk within its document, from 0.
    chunk_index: i64,
    /// The matching chunk's text.
    text: String,
    /// Relevance, higher is better: BM25 computed over your own chunks only (k1 = 1.2, b = 0.75,
    /// lengths in characters), so it changes only when your knowledge does, never with what other
    /// agents store.
    score: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
struct SearchResult {
    results: Vec<Hit>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct DeleteArgs {
    /// The document's id.
    #[schemars(length(min = 1, max = 200))]
    id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct Deleted {
    id: String,
    deleted: bool,
}

fn check_metadata(metadata: &Map<String, Value>, field: &str) -> Result<Vec<(String, MetadataValue)>, ToolFailure> {
    metadata
        .iter()
        .map(|(key, value)| {
            let key_ok = (1..=64).contains(&key.len())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !key_ok {
                return Err(ToolFailure::new(format!(
                    "`{field}` key `{key}`: keys are 1-64 of A-Z, a-z, 0-9, `_`, `-`, `.`"
                )));
            }
            let value = match value {
                Value::String(text) => MetadataValue::Text(text.clone()),
                Value::Bool(b) => MetadataValue::Bool(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => MetadataValue::Integer(i),
                    None => MetadataValue::Real(n.as_f64().unwrap_or(f64::NAN)),
                },
                _ => {
                    return Err(ToolFailure::new(format!(
                        "`{field}.{key}` must be a string, number or boolean"
                    )));
                }
            };
            Ok((key.clone(), value))
        })
        .collect()
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let (add, search, delete) = (services.clone(), services.clone(), services.clone());
    vec![
        ToolBuilder::new("agentos.knowledge_add")
            .title("Add to knowledge")
            .description(
                "Adds a document (notes, a page, a transcript) to your searchable knowledge: it is \
                 split into chunks and indexed for agentos.knowledge_search. Attach metadata to \
                 filter by later. Adding again with the same id replaces the document.",
            )
            .hints(Hints::WRITE)
            .handler(move |args: AddArgs, ctx| {
                let services = add.clone();
                async move {
                    let config = &services.config.knowledge;
                    let characters = args.text.chars().count();
                    if characters > config.max_document_chars {
                        return Err(ToolFailure::new(format!(
                            "`text` has {characters} characters; documents are limited to {}. Split it into several documents",
                            config.max_document_chars
                        )));
                    }
                    let metadata = args.metadata.unwrap_or_default();
                    check_metadata(&metadata, "metadata")?;
                    let chunks = chunk_text(&args.text, config.chunk_chars);
                    if chunks.is_empty() {
                        return Err(ToolFailure::new("`text` is empty or only whitespace"));
                    }
                    let id = args.id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                    let count = chunks.len();
                    let replaced = services
                        .store
                        .knowledge_put(
                            &ctx.caller.agent_id,
                            NewDocument {
                                id: id.clone(),
                                title: args.title,
                                source: args.source,
                                metadata: Value::Object(metadata).to_string(),
                                chunks,
                            },
                            config.max_documents_per_agent,
                        )
                        .await?;
                    Ok(Added {
                        id,
                        chunks: count,
                        replaced,
                    })
                }
            }),
        ToolBuilder::new("agentos.knowledge_search")
            .title("Search knowledge")
            .description(
                "Searches your knowledge (documents added with agentos.knowledge_add) and returns \
                 the best-matching chunks first, with their document's id, title and metadata. \
                 Narrow it with a metadata filter, e.g. {\"project\": \"alpha\"}. Scores are BM25 \
                 over your own chunks only, so they depend on nothing other agents store.",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: SearchArgs, ctx| {
                let services = search.clone();
                async move {
                    let words = super::memory::query_words(&args.query);
                    if words.is_empty() {
                        return Err(ToolFailure::new("`query` has no words to search for: use letters or digits"));
                    }
                    let limit = args.limit.unwrap_or(5);
                    if !(1..=50).contains(&limit) {
                        return Err(ToolFailure::new("`limit` must be between 1 and 50"));
                    }
                    let filter = check_metadata(&args.filter.unwrap_or_default(), "filter")?;
                    let hits = services
                        .store
                        .knowledge_search(&ctx.caller.agent_id, &words, &filter, limit)
                        .await?;
                    let results = hits
                        .into_iter()
                        .map(|hit| Hit {
                            metadata: serde_json::from_str(&hit.metadata).unwrap_or(Value::Null),
                            id: hit.id,
                            title: hit.title,
                            source: hit.source,
                            chunk_index: hit.chunk_index,
                            text: hit.text,
                            score: hit.score,
                        })
                        .collect();
                    Ok(SearchResult { results })
                }
            }),
        ToolBuilder::new("agentos.knowledge_delete")
            .title("Remove from knowledge")
            .description("Removes a document and its chunks from your knowledge. Returns deleted=false if there was none.")
            .hints(Hints::DESTRUCTIVE)
            .handler(move |args: DeleteArgs, ctx| {
                let services = delete.clone();
                async move {
                    let deleted = services.store.knowledge_remove(&ctx.caller.agent_id, &args.id).await?;
                    Ok(Deleted { id: args.id, deleted })
                }
            }),
    ]
}

#[cfg(test)]
mod tests {
    use super::chunk_text;

    #[test]
    fn paragraphs_stay_together_until_a_chunk_is_full() {
        let text = "First para.\n\nSecond para.\n\nThird para.";
        assert_eq!(chunk_text(text, 1000), vec![text.to_owned()]);
        let chunks = chunk_text(text, 50);
        assert_eq!(chunks.len(), 1);
        let long = format!("{}\n\n{}", "a ".repeat(40).trim(), "b ".repeat(40).trim());
        let chunks = chunk_text(&long, 100);
        assert_eq!(chunks.len(), 2, "{chunks:?}");
    }

    #[test]
    fn long_paragraphs_split_at_sentences_or_words_without_breaking_characters() {
        let sentence = "Ünïcode sentence number one is here. ";
        let text = sentence.repeat(20);
        for chunk in chunk_text(&text, 100) {
            assert!(chunk.chars().count() <= 100, "{chunk}");
            assert!(chunk.ends_with('.'), "cut at a sentence end: {chunk}");
        }
        let unbroken = "x".repeat(250);
        let chunks = chunk_text(&unbroken, 100);
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 250);
        assert!(chunk_text("   \n\n  ", 100).is_empty());
    }
}

//! Per-agent knowledge: documents split into chunks, searchable with BM25.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::params;
use rusqlite::types::Value as SqlValue;

use super::{Migration, SqliteStore, StoreError, now_ms};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    name: "knowledge_1",
    sql: "CREATE TABLE knowledge_docs (
        id INTEGER PRIMARY KEY,
        owner TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        title TEXT,
        source TEXT,
        metadata TEXT NOT NULL,
        chunks INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (owner, doc_id)
    );
    CREATE TABLE knowledge_chunks (
        id INTEGER PRIMARY KEY,
        doc INTEGER NOT NULL REFERENCES knowledge_docs (id),
        seq INTEGER NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX knowledge_chunks_doc ON knowledge_chunks (doc);
    CREATE VIRTUAL TABLE knowledge_fts USING fts5(
        text, content = 'knowledge_chunks', content_rowid = 'id', tokenize = 'unicode61'
    );
    CREATE TRIGGER knowledge_fts_insert AFTER INSERT ON knowledge_chunks BEGIN
        INSERT INTO knowledge_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER knowledge_fts_delete AFTER DELETE ON knowledge_chunks BEGIN
        INSERT INTO knowledge_fts (knowledge_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;",
}];

/// A document to add: its chunks are already split.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: String,
    pub title: Option<String>,
    pub source: Option<String>,
    /// A JSON object, as text.
    pub metadata: String,
    pub chunks: Vec<String>,
}

/// One matching chunk and the document it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct KnowledgeHit {
    pub id: String,
    pub title: Option<String>,
    pub source: Option<String>,
    pub metadata: String,
    pub chunk_index: i64,
    pub text: String,
    /// BM25 relevance; higher is better.
    pub score: f64,
}

/// A metadata equality filter value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    Text(String),
    Integer(i64),
    Real(f64),
    Bool(bool),
}

pub trait KnowledgeStore: Send + Sync {
    /// Adds the document, replacing one with the same id; refuses past `max_documents` per owner.
    /// Returns whether an older document was replaced.
    fn knowledge_put<'a>(
        &'a self,
        owner: &'a str,
        document: NewDocument,
        max_documents: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn knowledge_remove<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Chunks matching any of `words` (as prefixes), best first, among documents whose metadata
    /// has every `(key, value)` of `filter`.
    fn knowledge_search<'a>(
        &'a self,
        owner: &'a str,
        words: &'a [String],
        filter: &'a [(String, MetadataValue)],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<KnowledgeHit>, StoreError>>;
}

/// Deletes a document's chunks and the document; the chunk trigger keeps the index in step.
fn remove_document(tx: &rusqlite::Transaction<'_>, owner: &str, id: &str) -> Result<bool, rusqlite::Error> {
    let row: Option<i64> = tx
        .prepare_cached("SELECT id FROM knowledge_docs WHERE owner = ?1 AND doc_id = ?2")?
        .query_row(params![owner, id], |row| row.get(0))
        .ok();
    let Some(row) = row else { return Ok(false) };
    tx.prepare_cached("DELETE FROM knowledge_chunks WHERE doc = ?1")?
        .execute(params![row])?;
    tx.prepare_cached("DELETE FROM knowledge_docs WHERE id = ?1")?
        .execute(params![row])?;
    Ok(true)
}

impl KnowledgeStore for SqliteStore {
    fn knowledge_put<'a>(
        &'a self,
        owner: &'a str,
        document: NewDocument,
        max_documents: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let owner = owner.to_owned();
        async move {
            let outcome = self
                .write(move |tx| {
                    let replaced = remove_document(tx, &owner, &document.id)?;
                    let count: i64 = tx
                        .prepare_cached("SELECT COUNT(*) FROM knowledge_docs WHERE owner = ?1")?
                        .query_row(params![owner], |row| row.get(0))?;
                    if usize::try_from(count).unwrap_or(usize::MAX) >= max_documents {
                        return Ok(None);
                    }
                    tx.prepare_cached(
                        "INSERT INTO knowledge_docs (owner, doc_id, title, source, metadata, chunks, created_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )?
                    .execute(params![
                        owner,
                        document.id,
                        document.title,
                        document.source,
                        document.metadata,
                        document.chunks.len() as i64,
                        now_ms()
                    ])?;
                    let doc = tx.last_insert_rowid();
                    let mut insert =
                        tx.prepare_cached("INSERT INTO knowledge_chunks (doc, seq, text) VALUES (?1, ?2, ?3)")?;
                    for (seq, text) in document.chunks.iter().enumerate() {
                        insert.execute(params![doc, seq as i64, text])?;
                    }
                    Ok(Some(replaced))
                })
                .await?;
            outcome.ok_or_else(|| {
                StoreError::Refused(format!(
                    "you already keep {max_documents} documents, the limit; remove one with agentos.knowledge_delete"
                ))
            })
        }
        .boxed()
    }

    fn knowledge_remove<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (owner, id) = (owner.to_owned(), id.to_owned());
        self.write(move |tx| remove_document(tx, &owner, &id)).boxed()
    }

    fn knowledge_search<'a>(
        &'a self,
        owner: &'a str,
        words: &'a [String],
        filter: &'a [(String, MetadataValue)],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<KnowledgeHit>, StoreError>> {
        let mut sql = String::from(
            "SELECT d.doc_id, d.title, d.source, d.metadata, c.seq, c.text, bm25(knowledge_fts) AS rank
             FROM knowledge_fts
             JOIN knowledge_chunks c ON c.id = knowledge_fts.rowid
             JOIN knowledge_docs d ON d.id = c.doc
             WHERE knowledge_fts MATCH ?1 AND d.owner = ?2",
        );
        let mut values: Vec<SqlValue> = vec![
            SqlValue::Text(super::memory::fts_any_prefix(words)),
            SqlValue::Text(owner.to_owned()),
        ];
        for (key, value) in filter {
            // Keys are bound, never spliced: `$."<key>"` addresses one top-level member.
            sql.push_str(&format!(
                " AND json_extract(d.metadata, '$.\"' || ?{} || '\"') = ?{}",
                values.len() + 1,
                values.len() + 2
            ));
            values.push(SqlValue::Text(key.clone()));
            values.push(match value {
                MetadataValue::Text(text) => SqlValue::Text(text.clone()),
                MetadataValue::Integer(n) => SqlValue::Integer(*n),
                MetadataValue::Real(x) => SqlValue::Real(*x),
                MetadataValue::Bool(b) => SqlValue::Integer(i64::from(*b)),
            });
        }
        sql.push_str(&format!(" ORDER BY rank LIMIT {}", limit.min(1000)));
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&sql)?;
            statement
                .query_map(rusqlite::params_from_iter(values), |row| {
                    let rank: f64 = row.get(6)?;
                    Ok(KnowledgeHit {
                        id: row.get(0)?,
                        title: row.get(1)?,
                        source: row.get(2)?,
                        metadata: row.get(3)?,
                        chunk_index: row.get(4)?,
                        text: row.get(5)?,
                        score: -rank,
                    })
                })?
                .collect()
        })
        .boxed()
    }
}

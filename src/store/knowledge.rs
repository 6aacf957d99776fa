//! Per-agent knowledge: documents split into chunks, searchable with BM25.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::params;
use rusqlite::types::Value as SqlValue;

use super::quota::{Family, within_quota};
use super::ranking::{self, Collection, WordMatch};
use super::{Migration, SqliteStore, StoreError, now_ms};

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
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
    },
    Migration {
        name: "knowledge_2",
        // Search scores from the caller's chunks alone (see `ranking`): the index gains an owner
        // tag column (the owner lives on the document, hence the view) so a query reaches only
        // the caller's chunks, and `knowledge_search_stats` keeps each owner's chunk count and
        // length. The index is rebuilt from the tables, so every existing chunk stays searchable.
        // A document's chunks are always deleted before the document (the foreign key demands
        // it), so the triggers can still look its owner up.
        sql: "DROP TRIGGER knowledge_fts_insert;
        DROP TRIGGER knowledge_fts_delete;
        DROP TABLE knowledge_fts;
        CREATE VIEW knowledge_fts_content AS
            SELECT c.id AS id, c.text AS text, hex(d.owner) AS owner_tag
            FROM knowledge_chunks c JOIN knowledge_docs d ON d.id = c.doc;
        CREATE VIRTUAL TABLE knowledge_fts USING fts5(
            text, owner_tag, content = 'knowledge_fts_content', content_rowid = 'id', tokenize = 'unicode61'
        );
        INSERT INTO knowledge_fts (knowledge_fts) VALUES ('rebuild');
        CREATE TRIGGER knowledge_fts_insert AFTER INSERT ON knowledge_chunks BEGIN
            INSERT INTO knowledge_fts (rowid, text, owner_tag)
            VALUES (new.id, new.text, (SELECT hex(owner) FROM knowledge_docs WHERE id = new.doc));
        END;
        CREATE TRIGGER knowledge_fts_delete AFTER DELETE ON knowledge_chunks BEGIN
            INSERT INTO knowledge_fts (knowledge_fts, rowid, text, owner_tag)
            VALUES ('delete', old.id, old.text, (SELECT hex(owner) FROM knowledge_docs WHERE id = old.doc));
        END;
        CREATE TABLE knowledge_search_stats (
            owner TEXT PRIMARY KEY,
            chunks INTEGER NOT NULL,
            characters INTEGER NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO knowledge_search_stats (owner, chunks, characters)
            SELECT d.owner, count(*), sum(length(c.text))
            FROM knowledge_chunks c JOIN knowledge_docs d ON d.id = c.doc GROUP BY d.owner;
        CREATE TRIGGER knowledge_stats_insert AFTER INSERT ON knowledge_chunks BEGIN
            INSERT INTO knowledge_search_stats (owner, chunks, characters)
            SELECT owner, 1, length(new.text) FROM knowledge_docs WHERE id = new.doc
            ON CONFLICT (owner) DO UPDATE SET chunks = chunks + 1, characters = characters + excluded.characters;
        END;
        CREATE TRIGGER knowledge_stats_delete AFTER DELETE ON knowledge_chunks BEGIN
            UPDATE knowledge_search_stats SET chunks = chunks - 1, characters = characters - length(old.text)
            WHERE owner = (SELECT owner FROM knowledge_docs WHERE id = old.doc);
        END;",
    },
];

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
    /// BM25 relevance computed from the owner's chunks alone (see `ranking`); higher is better.
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
    /// has every `(key, value)` of `filter`. Scores depend on `owner`'s chunks only.
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
        let quota = self.quotas().knowledge;
        async move {
            let outcome = self
                .write(move |tx| {
                    within_quota(tx, &owner, Family::Knowledge, quota, |tx| {
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
                })
                .await??;
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
        // Per word: the owner's matching chunks (also those the filter leaves out: the statistics
        // describe all the owner's chunks), each with its length, how often the word occurs in it
        // (highlight() marks each occurrence with one character, so the growth counts them) and
        // whether its document passes the filter. `?1` is the match, `?2` the owner.
        let mut passes = String::from("1");
        let mut values: Vec<SqlValue> = Vec::new();
        for (key, value) in filter {
            // Keys are bound, never spliced: `$."<key>"` addresses one top-level member.
            passes.push_str(&format!(
                " AND json_extract(d.metadata, '$.\"' || ?{} || '\"') = ?{}",
                values.len() + 3,
                values.len() + 4
            ));
            values.push(SqlValue::Text(key.clone()));
            values.push(match value {
                MetadataValue::Text(text) => SqlValue::Text(text.clone()),
                MetadataValue::Integer(n) => SqlValue::Integer(*n),
                MetadataValue::Real(x) => SqlValue::Real(*x),
                MetadataValue::Bool(b) => SqlValue::Integer(i64::from(*b)),
            });
        }
        let sql = format!(
            "SELECT c.id, length(c.text), length(highlight(knowledge_fts, 0, char(1), '')) - length(c.text), {passes}
             FROM knowledge_fts
             JOIN knowledge_chunks c ON c.id = knowledge_fts.rowid
             JOIN knowledge_docs d ON d.id = c.doc
             WHERE knowledge_fts MATCH ?1 AND d.owner = ?2"
        );
        let (owner, words) = (owner.to_owned(), ranking::distinct(words));
        let limit = limit.min(1000);
        self.read(move |conn| {
            // One snapshot for the statistics, the matches and the chunks, so they agree.
            let tx = conn.unchecked_transaction()?;
            let collection = Collection::load(
                &tx,
                "SELECT chunks, characters FROM knowledge_search_stats WHERE owner = ?1",
                &owner,
            )?;
            let tag = ranking::owner_tag(&owner);
            let mut matching = tx.prepare_cached(&sql)?;
            let matches = words
                .iter()
                .map(|word| {
                    let mut bound = vec![
                        SqlValue::Text(ranking::match_query(&tag, "{text}", word)),
                        SqlValue::Text(owner.clone()),
                    ];
                    bound.extend(values.iter().cloned());
                    matching
                        .query_map(rusqlite::params_from_iter(bound), WordMatch::from_row)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut chunk = tx.prepare_cached(
                "SELECT d.doc_id, d.title, d.source, d.metadata, c.seq, c.text
                 FROM knowledge_chunks c JOIN knowledge_docs d ON d.id = c.doc WHERE c.id = ?1",
            )?;
            ranking::rank(collection, &matches)
                .into_iter()
                .take(limit)
                .map(|(id, score)| {
                    chunk.query_row(params![id], |row| {
                        Ok(KnowledgeHit {
                            id: row.get(0)?,
                            title: row.get(1)?,
                            source: row.get(2)?,
                            metadata: row.get(3)?,
                            chunk_index: row.get(4)?,
                            text: row.get(5)?,
                            score,
                        })
                    })
                })
                .collect()
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Synchronous;

    fn document(id: &str, chunks: &[&str], metadata: &str) -> NewDocument {
        NewDocument {
            id: id.to_owned(),
            title: None,
            source: None,
            metadata: metadata.to_owned(),
            chunks: chunks.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    fn words(query: &str) -> Vec<String> {
        query.split(' ').map(str::to_owned).collect()
    }

    async fn stats_agree(store: &SqliteStore, owner: &str) {
        let owner = owner.to_owned();
        let (kept, counted) = store
            .read(move |conn| {
                let kept = Collection::load(
                    conn,
                    "SELECT chunks, characters FROM knowledge_search_stats WHERE owner = ?1",
                    &owner,
                )?;
                let counted = Collection::load(
                    conn,
                    "SELECT count(*), coalesce(sum(length(c.text)), 0)
                     FROM knowledge_chunks c JOIN knowledge_docs d ON d.id = c.doc WHERE d.owner = ?1",
                    &owner,
                )?;
                Ok((kept, counted))
            })
            .await
            .unwrap();
        assert_eq!(kept, counted);
    }

    #[tokio::test]
    async fn scores_depend_on_the_owners_chunks_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        let doc = document("birds", &["The nightingale sings at night.", "Sparrows do not."], "{}");
        store.knowledge_put("a", doc, 10).await.unwrap();
        let search = |owner: &'static str| {
            let store = &store;
            async move {
                store
                    .knowledge_search(owner, &words("nightingale"), &[], 10)
                    .await
                    .unwrap()
            }
        };
        let before = search("a").await;
        assert_eq!((before.len(), before[0].chunk_index), (1, 0));
        for i in 0..20 {
            let text = format!("nightingale {i}, nightingale again, and many more words about nightingales");
            store
                .knowledge_put("b", document(&format!("d{i}"), &[&text], "{}"), 100)
                .await
                .unwrap();
        }
        assert_eq!(search("a").await, before);
        assert_eq!(search("b").await.len(), 10);
        stats_agree(&store, "a").await;
        stats_agree(&store, "b").await;
    }

    #[tokio::test]
    async fn filters_choose_results_while_statistics_cover_every_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        store
            .knowledge_put("a", document("x", &["chocolate cake"], r#"{"project": "alpha"}"#), 10)
            .await
            .unwrap();
        store
            .knowledge_put(
                "a",
                document("y", &["chocolate chocolate"], r#"{"project": "beta"}"#),
                10,
            )
            .await
            .unwrap();
        let filter = [("project".to_owned(), MetadataValue::Text("alpha".into()))];
        let hits = store.knowledge_search("a", &words("choc"), &filter, 10).await.unwrap();
        assert_eq!(hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["x"]);
        let missing = [("nope".to_owned(), MetadataValue::Bool(true))];
        assert!(
            store
                .knowledge_search("a", &words("choc"), &missing, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Replacing and removing documents keeps the index and the statistics exact.
        store
            .knowledge_put("a", document("y", &["vanilla"], "{}"), 10)
            .await
            .unwrap();
        stats_agree(&store, "a").await;
        let all = store.knowledge_search("a", &words("chocolate"), &[], 10).await.unwrap();
        assert_eq!(all.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["x"]);
        assert!(store.knowledge_remove("a", "x").await.unwrap());
        stats_agree(&store, "a").await;
        assert!(
            store
                .knowledge_search("a", &words("chocolate"), &[], 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

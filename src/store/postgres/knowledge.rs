//! Per-agent knowledge on PostgreSQL: documents split into chunks, matched with full-text search
//! (a `simple` tsvector per chunk, GIN-indexed, prefix `:*` queries) and scored by BM25 from the
//! owner's chunks alone, as on SQLite (see `crate::store::ranking`).
//!
//! The index only finds an owner's matching chunks and each match's word positions; the score is
//! computed in `ranking::rank` from the owner's statistics row (kept exact by triggers), how many
//! of the owner's chunks match each word and how often. Text is indexed as SQLite's unicode61
//! tokenizer splits it: every run of letters and digits is one word (see the migration).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deadpool_postgres::Transaction;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_postgres::types::ToSql;

use super::quota::QuotaCheck;
use super::{PgStore, owner_tx, to_i64};
use crate::store::ranking::{self, Collection, WordMatch};
use crate::store::{Family, KnowledgeHit, KnowledgeStore, MetadataValue, NewDocument, StoreError, now_ms};

/// Deletes a document's chunks and then the document (the triggers count both); whether there
/// was one.
async fn remove_document(tx: &Transaction<'_>, owner: &str, id: &str) -> Result<bool, StoreError> {
    let find = tx
        .prepare_cached("SELECT id FROM knowledge_docs WHERE owner = $1 AND doc_id = $2")
        .await?;
    let Some(row) = tx.query_opt(&find, &[&owner, &id]).await? else {
        return Ok(false);
    };
    let doc: i64 = row.get(0);
    let chunks = tx.prepare_cached("DELETE FROM knowledge_chunks WHERE doc = $1").await?;
    tx.execute(&chunks, &[&doc]).await?;
    let document = tx.prepare_cached("DELETE FROM knowledge_docs WHERE id = $1").await?;
    tx.execute(&document, &[&doc]).await?;
    Ok(true)
}

/// A query word's tokens as the index splits text: runs of letters and digits. FTS5 reads
/// `"<word>"*` the same way: a phrase of its tokens, the last one a prefix.
fn tokens(word: &str) -> Vec<String> {
    word.split(|c: char| !c.is_alphanumeric())
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The tsquery for `tokens`: a phrase, its last token a prefix. Tokens are letters and digits
/// only, so quoting them is all the escaping they need.
fn ts_query(tokens: &[String]) -> String {
    let quoted: Vec<String> = tokens.iter().map(|t| format!("'{}'", t.replace('\'', "''"))).collect();
    format!("{}:*", quoted.join(" <-> "))
}

/// The SQL condition that `d.metadata` has every `(key, value)` of `filter`, comparing as
/// SQLite's `json_extract(...) = value` does: text equals a JSON string only; numbers compare by
/// value (1 = 1.0) and JSON `true`/`false` count as 1 and 0; a NaN matches nothing (SQLite binds
/// it as NULL). Keys and values are bound from `$first` on, never spliced.
fn metadata_condition(
    filter: &[(String, MetadataValue)],
    first: usize,
    values: &mut Vec<Box<dyn ToSql + Sync + Send>>,
) -> String {
    let mut condition = String::from("TRUE");
    for (key, value) in filter {
        let (k, v) = (first + values.len(), first + values.len() + 1);
        let member = format!("(d.metadata::jsonb -> ${k}::TEXT)");
        let test = match value {
            MetadataValue::Text(text) => {
                values.push(Box::new(key.clone()));
                values.push(Box::new(text.clone()));
                format!("jsonb_typeof({member}) = 'string' AND {member} #>> '{{}}' = ${v}::TEXT")
            }
            MetadataValue::Integer(_) | MetadataValue::Bool(_) => {
                let n = match value {
                    MetadataValue::Integer(n) => *n,
                    _ => i64::from(matches!(value, MetadataValue::Bool(true))),
                };
                values.push(Box::new(key.clone()));
                values.push(Box::new(n));
                format!(
                    "CASE jsonb_typeof({member}) WHEN 'number' THEN {member}::NUMERIC = ${v}::BIGINT
                        WHEN 'boolean' THEN {member}::BOOLEAN::INT = ${v}::BIGINT END"
                )
            }
            MetadataValue::Real(x) if x.is_nan() => {
                condition.push_str(" AND FALSE");
                continue;
            }
            MetadataValue::Real(x) => {
                values.push(Box::new(key.clone()));
                values.push(Box::new(*x));
                format!(
                    "CASE jsonb_typeof({member}) WHEN 'number' THEN {member}::FLOAT8 = ${v}::FLOAT8
                        WHEN 'boolean' THEN {member}::BOOLEAN::INT::FLOAT8 = ${v}::FLOAT8 END"
                )
            }
        };
        condition.push_str(&format!(" AND coalesce({test}, FALSE)"));
    }
    condition
}

/// How often the phrase of `n` tokens occurs, given for each of its tokens the positions of the
/// words matching it: positions `p, p+1, ...` holding tokens `0, 1, ...`. One token: how often
/// any word starting with it occurs.
fn phrase_hits(positions: &[BTreeSet<i32>]) -> i64 {
    let Some((first, rest)) = positions.split_first() else {
        return 0;
    };
    let hits = first.iter().filter(|&&p| {
        rest.iter()
            .zip(1..)
            .all(|(following, offset)| following.contains(&(p + offset)))
    });
    i64::try_from(hits.count()).unwrap_or(i64::MAX)
}

/// Each match of one word among the owner's chunks (also those the filter leaves out: the
/// statistics describe all the owner's chunks): the chunk, its length in characters, whether it
/// passes the filter, and per word of the chunk that matches a token, which tokens (1-based) it
/// matches and where it stands. `$1` is the tsquery, `$2` the owner, `$3` the tokens.
fn match_sql(passes: &str) -> String {
    format!(
        "SELECT c.id, char_length(c.text)::BIGINT, {passes}, m.tokens, w.positions
         FROM knowledge_chunks c
         JOIN knowledge_docs d ON d.id = c.doc
         CROSS JOIN LATERAL unnest(c.tsv) AS w (lexeme, positions, weights)
         CROSS JOIN LATERAL (
             SELECT array_agg(t.i::INT) AS tokens FROM unnest($3::TEXT[]) WITH ORDINALITY AS t (token, i)
             WHERE CASE WHEN t.i = cardinality($3::TEXT[]) THEN starts_with(w.lexeme, lower(t.token))
                 ELSE w.lexeme = lower(t.token) END
         ) m
         WHERE c.tsv @@ to_tsquery('simple', $1) AND d.owner = $2 AND m.tokens IS NOT NULL"
    )
}

impl KnowledgeStore for PgStore {
    fn knowledge_put<'a>(
        &'a self,
        owner: &'a str,
        document: NewDocument,
        max_documents: usize,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let check = QuotaCheck::before(&tx, owner, Family::Knowledge, self.quotas().knowledge).await?;
            let replaced = remove_document(&tx, owner, &document.id).await?;
            let count = tx
                .prepare_cached("SELECT count(*) FROM knowledge_docs WHERE owner = $1")
                .await?;
            let kept: i64 = tx.query_one(&count, &[&owner]).await?.get(0);
            if kept >= to_i64(max_documents) {
                // As on SQLite, the removal of a replaced document stands (it only frees room).
                tx.commit().await?;
                return Err(StoreError::Refused(format!(
                    "you already keep {max_documents} documents, the limit; remove one with agentos.knowledge_delete"
                )));
            }
            let insert = tx
                .prepare_cached(
                    "INSERT INTO knowledge_docs (owner, doc_id, title, source, metadata, chunks, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                )
                .await?;
            let chunk_count = to_i64(document.chunks.len());
            let doc: i64 = tx
                .query_one(
                    &insert,
                    &[
                        &owner,
                        &document.id,
                        &document.title,
                        &document.source,
                        &document.metadata,
                        &chunk_count,
                        &now_ms(),
                    ],
                )
                .await?
                .get(0);
            // One statement for every chunk, in order (their ids break ranking ties).
            let chunks = tx
                .prepare_cached(
                    "INSERT INTO knowledge_chunks (doc, seq, text)
                     SELECT $1, position - 1, text FROM unnest($2::TEXT[]) WITH ORDINALITY AS c (text, position)
                     ORDER BY position",
                )
                .await?;
            tx.execute(&chunks, &[&doc, &document.chunks]).await?;
            if let Err(exceeded) = check.after(&tx).await? {
                return Err(exceeded.into());
            }
            tx.commit().await?;
            Ok(replaced)
        }
        .boxed()
    }

    fn knowledge_remove<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let removed = remove_document(&tx, owner, id).await?;
            tx.commit().await?;
            Ok(removed)
        }
        .boxed()
    }

    fn knowledge_search<'a>(
        &'a self,
        owner: &'a str,
        words: &'a [String],
        filter: &'a [(String, MetadataValue)],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<KnowledgeHit>, StoreError>> {
        async move {
            let mut filter_values = Vec::new();
            let passes = metadata_condition(filter, 4, &mut filter_values);
            let sql = match_sql(&passes);
            let words = ranking::distinct(words);
            let limit = limit.min(1000);

            let mut client = self.client().await?;
            // One snapshot for the statistics, the matches and the chunks, so they agree.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let stats = tx
                .prepare_cached("SELECT chunks, characters FROM knowledge_search_stats WHERE owner = $1")
                .await?;
            let collection = tx
                .query_opt(&stats, &[&owner])
                .await?
                .map(|row| Collection {
                    rows: row.get(0),
                    characters: row.get(1),
                })
                .unwrap_or_default();
            let matching = tx.prepare_cached(&sql).await?;
            let mut matches = Vec::with_capacity(words.len());
            for word in &words {
                let tokens = tokens(word);
                if tokens.is_empty() {
                    matches.push(Vec::new());
                    continue;
                }
                let query = ts_query(&tokens);
                let mut bound: Vec<&(dyn ToSql + Sync)> = vec![&query, &owner, &tokens];
                bound.extend(filter_values.iter().map(|v| v.as_ref() as &(dyn ToSql + Sync)));
                // Per chunk: (length, passes, positions of the words matching each token).
                let mut chunks: BTreeMap<i64, (i64, bool, Vec<BTreeSet<i32>>)> = BTreeMap::new();
                for row in tx.query(&matching, &bound).await? {
                    let (length, passes) = (row.get::<_, i64>(1), row.get::<_, bool>(2));
                    let chunk = chunks
                        .entry(row.get(0))
                        .or_insert_with(|| (length, passes, vec![BTreeSet::new(); tokens.len()]));
                    let positions: Vec<i16> = row.get::<_, Option<Vec<i16>>>(4).unwrap_or_default();
                    for token in row.get::<_, Vec<i32>>(3) {
                        if let Some(at) = usize::try_from(token - 1).ok().and_then(|i| chunk.2.get_mut(i)) {
                            at.extend(positions.iter().map(|&p| i32::from(p)));
                        }
                    }
                }
                matches.push(
                    chunks
                        .into_iter()
                        .map(|(row, (length, eligible, positions))| WordMatch {
                            row,
                            length,
                            hits: phrase_hits(&positions),
                            eligible,
                        })
                        .collect::<Vec<_>>(),
                );
            }
            let ranked: Vec<(i64, f64)> = ranking::rank(collection, &matches).into_iter().take(limit).collect();
            let ids: Vec<i64> = ranked.iter().map(|(id, _)| *id).collect();
            let read = tx
                .prepare_cached(
                    "SELECT c.id, d.doc_id, d.title, d.source, d.metadata, c.seq, c.text
                     FROM knowledge_chunks c JOIN knowledge_docs d ON d.id = c.doc WHERE c.id = ANY($1)",
                )
                .await?;
            let mut found: HashMap<i64, tokio_postgres::Row> = tx
                .query(&read, &[&ids])
                .await?
                .into_iter()
                .map(|row| (row.get(0), row))
                .collect();
            tx.commit().await?;
            Ok(ranked
                .into_iter()
                .filter_map(|(id, score)| {
                    let row = found.remove(&id)?;
                    Some(KnowledgeHit {
                        id: row.get(1),
                        title: row.get(2),
                        source: row.get(3),
                        metadata: row.get(4),
                        chunk_index: row.get(5),
                        text: row.get(6),
                        score,
                    })
                })
                .collect())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::testing;
    use crate::store::{Quota, Quotas, StoreLimits, Usage};

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

    fn ids(hits: &[KnowledgeHit]) -> Vec<&str> {
        hits.iter().map(|h| h.id.as_str()).collect()
    }

    /// The statistics row and the quota usage agree with what the owner's rows hold.
    async fn stats_agree(store: &PgStore, owner: &str) {
        let client = store.client().await.unwrap();
        let kept = client
            .query_opt(
                "SELECT chunks, characters FROM knowledge_search_stats WHERE owner = $1",
                &[&owner],
            )
            .await
            .unwrap()
            .map_or((0, 0), |row| (row.get::<_, i64>(0), row.get::<_, i64>(1)));
        let counted = client
            .query_one(
                "SELECT count(*), coalesce(sum(char_length(c.text)), 0)::BIGINT
                 FROM knowledge_chunks c JOIN knowledge_docs d ON d.id = c.doc WHERE d.owner = $1",
                &[&owner],
            )
            .await
            .unwrap();
        assert_eq!(kept, (counted.get::<_, i64>(0), counted.get::<_, i64>(1)));
        let bytes = client
            .query_one(
                "SELECT count(*), coalesce(sum(octet_length(doc_id) + coalesce(octet_length(title), 0)
                    + coalesce(octet_length(source), 0) + octet_length(metadata)), 0)::BIGINT
                    + coalesce((SELECT sum(octet_length(c.text)) FROM knowledge_chunks c
                        JOIN knowledge_docs d ON d.id = c.doc WHERE d.owner = $1), 0)::BIGINT
                 FROM knowledge_docs WHERE owner = $1",
                &[&owner],
            )
            .await
            .unwrap();
        // Read from `quota_usage` itself: the whole report also counts files, another family.
        let knowledge = client
            .query_opt(
                "SELECT items, bytes FROM quota_usage WHERE owner = $1 AND family = 'knowledge'",
                &[&owner],
            )
            .await
            .unwrap()
            .map_or(Usage::default(), |row| Usage {
                items: u64::try_from(row.get::<_, i64>(0)).unwrap(),
                bytes: u64::try_from(row.get::<_, i64>(1)).unwrap(),
            });
        let expected = Usage {
            items: u64::try_from(bytes.get::<_, i64>(0)).unwrap(),
            bytes: u64::try_from(bytes.get::<_, i64>(1)).unwrap(),
        };
        assert_eq!(knowledge, expected);
    }

    #[tokio::test]
    async fn scores_depend_on_the_owners_chunks_alone() {
        let Some(store) = testing::store().await else { return };
        let doc = document("birds", &["The nightingale sings at night.", "Sparrows do not."], "{}");
        assert!(!store.knowledge_put("a", doc, 10).await.unwrap());
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

    /// The score is `ranking::rank` of the owner's statistics and each match's hits: prefix
    /// matches count every word they start, a phrase counts where its words stand together, and
    /// punctuation splits words as SQLite's unicode61 tokenizer does.
    #[tokio::test]
    async fn hits_and_statistics_feed_bm25_as_on_sqlite() {
        let Some(store) = testing::store().await else { return };
        let (one, two) = (
            "Nightingales sing; the nightingale's song, e-mail nightingale@example.org",
            "foo bar baz foo-barn foo qux",
        );
        let doc = document("d", &[one, two, "nothing here"], "{}");
        store.knowledge_put("a", doc, 10).await.unwrap();
        let collection = Collection {
            rows: 3,
            characters: [one, two, "nothing here"]
                .iter()
                .map(|t| t.chars().count() as i64)
                .sum(),
        };
        let hits = store
            .knowledge_search("a", &words("nightingale"), &[], 10)
            .await
            .unwrap();
        let first_chunk = hits[0].text.clone();
        assert_eq!(first_chunk, one);
        let client = store.client().await.unwrap();
        let chunk_ids: Vec<i64> = client
            .query("SELECT id FROM knowledge_chunks ORDER BY seq", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let expected = ranking::rank(
            collection,
            &[vec![WordMatch {
                row: chunk_ids[0],
                length: one.chars().count() as i64,
                hits: 3,
                eligible: true,
            }]],
        );
        assert_eq!(hits.len(), 1);
        assert!(
            (hits[0].score - expected[0].1).abs() < 1e-12,
            "{} {}",
            hits[0].score,
            expected[0].1
        );

        let phrase = store.knowledge_search("a", &words("foo-bar"), &[], 10).await.unwrap();
        let expected = ranking::rank(
            collection,
            &[vec![WordMatch {
                row: chunk_ids[1],
                length: two.chars().count() as i64,
                hits: 2,
                eligible: true,
            }]],
        );
        assert_eq!(phrase.len(), 1);
        assert!((phrase[0].score - expected[0].1).abs() < 1e-12);
        assert!(
            store
                .knowledge_search("a", &words("bar-foo"), &[], 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .knowledge_search("a", &words("--"), &[], 10)
                .await
                .unwrap()
                .is_empty()
        );
        let two_words = store
            .knowledge_search("a", &words("NOTHING song"), &[], 10)
            .await
            .unwrap();
        assert_eq!(
            two_words.iter().map(|h| h.chunk_index).collect::<Vec<_>>().len(),
            2,
            "case folds"
        );
        assert!(
            store
                .knowledge_search("b", &words("nightingale"), &[], 10)
                .await
                .unwrap()
                .is_empty()
        );
        let limited = store
            .knowledge_search("a", &words("foo nothing"), &[], 1)
            .await
            .unwrap();
        assert_eq!(limited.len(), 1);
    }

    #[tokio::test]
    async fn filters_choose_results_while_statistics_cover_every_chunk() {
        let Some(store) = testing::store().await else { return };
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
        assert_eq!(ids(&hits), ["x"]);
        let missing = [("nope".to_owned(), MetadataValue::Bool(true))];
        assert!(
            store
                .knowledge_search("a", &words("choc"), &missing, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Replacing and removing documents keeps the index and the statistics exact.
        assert!(
            store
                .knowledge_put("a", document("y", &["vanilla"], "{}"), 10)
                .await
                .unwrap()
        );
        stats_agree(&store, "a").await;
        let all = store.knowledge_search("a", &words("chocolate"), &[], 10).await.unwrap();
        assert_eq!(ids(&all), ["x"]);
        assert!(store.knowledge_remove("a", "x").await.unwrap());
        assert!(!store.knowledge_remove("a", "x").await.unwrap());
        stats_agree(&store, "a").await;
        assert!(
            store
                .knowledge_search("a", &words("chocolate"), &[], 10)
                .await
                .unwrap()
                .is_empty()
        );
    }

    /// Metadata values compare as SQLite's `json_extract(...) = value`.
    #[tokio::test]
    async fn metadata_filters_compare_as_json_extract_does() {
        let Some(store) = testing::store().await else { return };
        for (id, metadata) in [
            ("int", r#"{"n": 1, "s": "5", "flag": true}"#),
            ("real", r#"{"n": 1.0, "x": 2.5, "s": 5}"#),
            ("bool", r#"{"n": true, "flag": false, "key.with-dots": "v"}"#),
            ("text", r#"{"n": "1"}"#),
        ] {
            store
                .knowledge_put("a", document(id, &["apple"], metadata), 10)
                .await
                .unwrap();
        }
        let search = |filter: Vec<(&'static str, MetadataValue)>| {
            let store = &store;
            let filter: Vec<(String, MetadataValue)> = filter.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            async move {
                let mut found: Vec<String> = store
                    .knowledge_search("a", &words("apple"), &filter, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|h| h.id)
                    .collect();
                found.sort();
                found
            }
        };
        assert_eq!(
            search(vec![("n", MetadataValue::Integer(1))]).await,
            ["bool", "int", "real"]
        );
        assert_eq!(
            search(vec![("n", MetadataValue::Bool(true))]).await,
            ["bool", "int", "real"]
        );
        assert_eq!(
            search(vec![("n", MetadataValue::Real(1.0))]).await,
            ["bool", "int", "real"]
        );
        assert_eq!(search(vec![("n", MetadataValue::Text("1".into()))]).await, ["text"]);
        assert_eq!(search(vec![("s", MetadataValue::Text("5".into()))]).await, ["int"]);
        assert_eq!(search(vec![("s", MetadataValue::Integer(5))]).await, ["real"]);
        assert_eq!(search(vec![("x", MetadataValue::Real(2.5))]).await, ["real"]);
        assert_eq!(search(vec![("flag", MetadataValue::Bool(false))]).await, ["bool"]);
        assert_eq!(
            search(vec![("key.with-dots", MetadataValue::Text("v".into()))]).await,
            ["bool"]
        );
        assert!(search(vec![("x", MetadataValue::Real(f64::NAN))]).await.is_empty());
        let both = vec![("n", MetadataValue::Integer(1)), ("flag", MetadataValue::Bool(true))];
        assert_eq!(search(both).await, ["int"]);
    }

    #[tokio::test]
    async fn the_document_limit_and_the_quota_refuse_without_keeping_anything() {
        let quota = Quota {
            max_items: 10,
            max_bytes: 40,
        };
        let limits = StoreLimits {
            quotas: Quotas {
                knowledge: quota,
                ..Quotas::UNLIMITED
            },
            ..StoreLimits::default()
        };
        let Some(store) = testing::store_with(limits).await else {
            return;
        };
        store
            .knowledge_put("a", document("one", &["first text"], "{}"), 2)
            .await
            .unwrap();
        store
            .knowledge_put("a", document("two", &["second"], "{}"), 2)
            .await
            .unwrap();
        let refused = store
            .knowledge_put("a", document("three", &["third"], "{}"), 2)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("you already keep 2 documents"),
            "{refused}"
        );
        let replaced = store
            .knowledge_put("a", document("two", &["again"], "{}"), 2)
            .await
            .unwrap();
        assert!(replaced, "a replacement fits under the limit");
        // 15 + 10 bytes are kept; replacing "one" with 41 bytes would make it 51.
        let big = "x".repeat(36);
        let over = store
            .knowledge_put("a", document("one", &[&big], "{}"), 5)
            .await
            .unwrap_err();
        assert!(over.to_string().contains("knowledge quota reached"), "{over}");
        let kept = store.knowledge_search("a", &words("first"), &[], 10).await.unwrap();
        assert_eq!(ids(&kept), ["one"], "the refused replacement left the old document");
        stats_agree(&store, "a").await;
    }

    /// Writes of one owner from two replicas run one after the other: the document limit holds
    /// and the statistics and usage stay exact.
    #[tokio::test]
    async fn concurrent_puts_from_replicas_respect_the_limit() {
        let Some(url) = testing::fresh_database().await else {
            return;
        };
        let one = PgStore::connect(&url, 4, StoreLimits::default()).await.unwrap();
        let two = PgStore::connect(&url, 4, StoreLimits::default()).await.unwrap();
        let puts = (0..12).map(|i| {
            let store = if i % 2 == 0 { &one } else { &two };
            store.knowledge_put("a", document(&format!("d{i}"), &["shared words", "more"], "{}"), 5)
        });
        let outcomes = futures::future::join_all(puts).await;
        assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 5);
        let replaces = (0..8).map(|i| {
            let store = if i % 2 == 0 { &one } else { &two };
            store.knowledge_put("a", document("d0", &[&format!("version {i}")], "{}"), 5)
        });
        for outcome in futures::future::join_all(replaces).await {
            outcome.unwrap_or_else(|_| panic!("replacing keeps the count"));
        }
        let count: i64 = one
            .client()
            .await
            .unwrap()
            .query_one("SELECT count(*) FROM knowledge_docs WHERE owner = 'a'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, 5);
        assert_eq!(
            two.knowledge_search("a", &words("version"), &[], 10)
                .await
                .unwrap()
                .len(),
            1
        );
        stats_agree(&one, "a").await;
    }

    #[test]
    fn words_become_phrases_of_their_tokens() {
        assert_eq!(tokens("foo-bar"), ["foo", "bar"]);
        assert_eq!(ts_query(&tokens("foo-bar")), "'foo' <-> 'bar':*");
        assert_eq!(ts_query(&tokens("café")), "'café':*");
        assert!(tokens("--").is_empty());
        let at = |p: &[i32]| p.iter().copied().collect::<BTreeSet<i32>>();
        assert_eq!(phrase_hits(&[at(&[1, 4, 7])]), 3);
        assert_eq!(phrase_hits(&[at(&[1, 4, 7]), at(&[2, 9])]), 1);
        assert_eq!(phrase_hits(&[]), 0);
    }
}

//! Per-agent key-value memory on PostgreSQL, behind the same [`MemoryStore`] trait as SQLite,
//! including full-text search with SQLite's exact matching and scores (see [`search`]).

mod batch;
mod search;
mod unicode61;

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_postgres::{IsolationLevel, Row};

pub(super) use self::batch::MemoryWrites;
use self::search::Word;
use super::{PgStore, owner_tx, to_i64};
use crate::store::ranking::{self, Collection, WordMatch};
use crate::store::{MemoryEntry, MemoryHit, MemoryPage, MemoryStore, StoreError, now_ms};

fn row_to_entry(row: &Row) -> MemoryEntry {
    MemoryEntry {
        key: row.get(0),
        value: row.get(1),
        updated_at_ms: row.get(2),
        expires_at_ms: row.get(3),
    }
}

/// `text` up to its first NUL (all of it when it holds none).
pub(super) fn before_nul(text: &str) -> &str {
    text.split('\0').next().unwrap_or_default()
}

impl MemoryStore for PgStore {
    fn mem_set<'a>(
        &'a self,
        owner: &'a str,
        key: &'a str,
        value: String,
        expires_at_ms: Option<i64>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            // Tokenizing is CPU work on up to a whole value: done here, not in the shared writer.
            let lexemes = search::row_lexemes(owner, key, &value);
            self.memory_writes.set(owner, key, value, expires_at_ms, lexemes).await
        }
        .boxed()
    }

    fn mem_get<'a>(&'a self, owner: &'a str, key: &'a str) -> BoxFuture<'a, Result<Option<MemoryEntry>, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT key, value, updated_at, expires_at FROM memory
                     WHERE owner = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > $3)",
                )
                .await?;
            Ok(client
                .query_opt(&statement, &[&owner, &key, &now_ms()])
                .await?
                .map(|row| row_to_entry(&row)))
        }
        .boxed()
    }

    fn mem_delete<'a>(&'a self, owner: &'a str, key: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            // Deleted either way; reported as deleted only if it was still live, as on SQLite.
            let delete = tx
                .prepare_cached(
                    "DELETE FROM memory WHERE owner = $1 AND key = $2
                     RETURNING expires_at IS NULL OR expires_at > $3",
                )
                .await?;
            let live = tx
                .query_opt(&delete, &[&owner, &key, &now_ms()])
                .await?
                .is_some_and(|row| row.get::<_, bool>(0));
            tx.commit().await?;
            Ok(live)
        }
        .boxed()
    }

    fn mem_list<'a>(
        &'a self,
        owner: &'a str,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<MemoryPage, StoreError>> {
        async move {
            // Keys compare bytewise (COLLATE "C"), so `prefix <= key < prefix + U+10FFFF`
            // selects exactly the keys starting with `prefix` and uses the unique index.
            // PostgreSQL text cannot hold NUL, so no stored key does: no key starts with a prefix
            // holding one, and the keys after a cursor holding one are those after its part
            // before the NUL (SQLite's answers, where such text is storable but never stored).
            if prefix.contains('\0') {
                return Ok(MemoryPage {
                    entries: Vec::new(),
                    next_after: None,
                });
            }
            let upper = format!("{prefix}\u{10FFFF}");
            let start = match after.map(before_nul) {
                Some(after) if after >= prefix => after,
                _ => "",
            };
            let fetch = to_i64(limit.saturating_add(1));
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT key, value, updated_at, expires_at FROM memory
                     WHERE owner = $1 AND key >= $2 AND key < $3 AND key > $4
                       AND (expires_at IS NULL OR expires_at > $5)
                     ORDER BY key LIMIT $6",
                )
                .await?;
            let mut entries: Vec<MemoryEntry> = client
                .query(&statement, &[&owner, &prefix, &upper, &start, &now_ms(), &fetch])
                .await?
                .iter()
                .map(row_to_entry)
                .collect();
            let next_after = if entries.len() > limit {
                entries.truncate(limit);
                entries.last().map(|e| e.key.clone())
            } else {
                None
            };
            Ok(MemoryPage { entries, next_after })
        }
        .boxed()
    }

    fn mem_purge_expired(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let now = now_ms();
            let owners = client
                .prepare_cached("SELECT DISTINCT owner FROM memory WHERE expires_at IS NOT NULL AND expires_at <= $1")
                .await?;
            let owners: Vec<String> = client
                .query(&owners, &[&now])
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            // One owner at a time, under that owner's lock: the purge never interleaves with the
            // owner's writes, and replicas purging together never lock two owners' statistics in
            // opposite orders (which could deadlock); the second to reach an owner finds nothing.
            let mut purged = 0;
            for owner in owners {
                let tx = owner_tx(&mut client, &owner).await?;
                let delete = tx
                    .prepare_cached(
                        "DELETE FROM memory WHERE owner = $1 AND expires_at IS NOT NULL AND expires_at <= $2",
                    )
                    .await?;
                purged += tx.execute(&delete, &[&owner, &now]).await?;
                tx.commit().await?;
            }
            Ok(usize::try_from(purged).unwrap_or(usize::MAX))
        }
        .boxed()
    }

    fn mem_search<'a>(
        &'a self,
        owner: &'a str,
        words: &'a [String],
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<MemoryHit>, StoreError>> {
        async move {
            let words: Vec<Word> = ranking::distinct(words).iter().map(|word| Word::new(word)).collect();
            let Some(query) = search::candidates_query(owner, &words) else {
                // No word has a token: FTS5 matches nothing either.
                return Ok(Vec::new());
            };
            let mut client = self.client().await?;
            // One snapshot for the statistics and the rows, so they agree.
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let stats = tx
                .prepare_cached("SELECT entries, characters FROM memory_search_stats WHERE owner = $1")
                .await?;
            let collection = tx
                .query_opt(&stats, &[&owner])
                .await?
                .map_or_else(Collection::default, |row| Collection {
                    rows: row.get(0),
                    characters: row.get(1),
                });
            // The owner's candidate rows, expired ones too: they count in the statistics until
            // purged, as on SQLite.
            let candidates = tx
                .prepare_cached(
                    "SELECT key, value, updated_at, expires_at, id FROM memory
                     WHERE owner = $1 AND search_terms @@ $2::TEXT::TSQUERY",
                )
                .await?;
            let rows = tx.query(&candidates, &[&owner, &query]).await?;
            tx.commit().await?;
            let now = now_ms();
            let mut matches: Vec<Vec<WordMatch>> = words.iter().map(|_| Vec::new()).collect();
            let mut entries = HashMap::with_capacity(rows.len());
            for row in &rows {
                let entry = row_to_entry(row);
                let id: i64 = row.get(4);
                let columns = [unicode61::tokens(&entry.key), unicode61::tokens(&entry.value)];
                // SQLite's length(key) + length(value): characters.
                let length = to_i64(entry.key.chars().count() + entry.value.chars().count());
                let eligible = entry.expires_at_ms.is_none_or(|at| at > now);
                for (word, found) in words.iter().zip(matches.iter_mut()) {
                    let hits: i64 = columns.iter().map(|column| word.hits(column)).sum();
                    if hits > 0 {
                        found.push(WordMatch {
                            row: id,
                            length,
                            hits,
                            eligible,
                        });
                    }
                }
                entries.insert(id, entry);
            }
            Ok(ranking::rank(collection, &matches)
                .into_iter()
                .take(limit)
                .filter_map(|(id, score)| entries.remove(&id).map(|entry| MemoryHit { entry, score }))
                .collect())
        }
        .boxed()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::postgres::testing;
    use crate::store::{Quota, Quotas, SqliteStore, StoreLimits, Synchronous};

    fn words(query: &str) -> Vec<String> {
        query.split(' ').map(str::to_owned).collect()
    }

    async fn score_of(store: &PgStore, owner: &str, query: &str, key: &str) -> f64 {
        let hits = store.mem_search(owner, &words(query), 100).await.unwrap();
        hits.iter()
            .find(|hit| hit.entry.key == key)
            .unwrap_or_else(|| panic!("{key} not found: {hits:?}"))
            .score
    }

    /// The statistics row and the quota usage against a recount of the owner's rows, so the
    /// trigger is checked.
    pub(in crate::store::postgres) async fn stats_agree(store: &PgStore, owner: &str) {
        let client = store.client().await.unwrap();
        let kept = client
            .query_opt(
                "SELECT s.entries, s.characters, q.items, q.bytes FROM memory_search_stats s
                 JOIN quota_usage q ON q.owner = s.owner AND q.family = 'memory' WHERE s.owner = $1",
                &[&owner],
            )
            .await
            .unwrap()
            .map_or((0, 0, 0, 0), |row| (row.get(0), row.get(1), row.get(2), row.get(3)));
        let counted = client
            .query_one(
                "SELECT count(*), coalesce(sum(char_length(key) + char_length(value)), 0)::BIGINT,
                    count(*), coalesce(sum(octet_length(key) + octet_length(value)), 0)::BIGINT
                 FROM memory WHERE owner = $1",
                &[&owner],
            )
            .await
            .unwrap();
        let counted: (i64, i64, i64, i64) = (counted.get(0), counted.get(1), counted.get(2), counted.get(3));
        assert_eq!(kept, counted, "statistics and usage of {owner}");
    }

    #[tokio::test]
    async fn scores_depend_on_the_owners_entries_alone() {
        let Some(store) = testing::store().await else { return };
        store
            .mem_set("a", "bird", "\"a nightingale sang\"".into(), None)
            .await
            .unwrap();
        store.mem_set("a", "other", "\"a sparrow\"".into(), None).await.unwrap();
        let before = score_of(&store, "a", "nightingale", "bird").await;
        for i in 0..30 {
            let value = format!("\"nightingale nightingale number {i} with a much longer text around it\"");
            store.mem_set("b", &format!("n{i}"), value, None).await.unwrap();
        }
        store
            .mem_set("b", "bird", "\"nightingale\"".into(), None)
            .await
            .unwrap();
        assert_eq!(score_of(&store, "a", "nightingale", "bird").await, before);
        assert_eq!(
            store.mem_search("b", &words("nightingale"), 100).await.unwrap().len(),
            31
        );
        // The caller's own data does move its scores: the statistics are really used.
        store
            .mem_set("a", "again", "\"nightingale again\"".into(), None)
            .await
            .unwrap();
        assert_ne!(score_of(&store, "a", "nightingale", "bird").await, before);
    }

    #[tokio::test]
    async fn statistics_follow_every_write_and_matching_stays_exact() {
        let Some(store) = testing::store().await else { return };
        store
            .mem_set("a", "groceries", "[\"milk\", \"eggs\"]".into(), None)
            .await
            .unwrap();
        store
            .mem_set("a", "gone", "\"milk\"".into(), Some(now_ms() - 1))
            .await
            .unwrap();
        store.mem_set("b", "groceries", "\"milk\"".into(), None).await.unwrap();
        let found = store.mem_search("a", &words("mil"), 10).await.unwrap();
        let keys: Vec<_> = found.iter().map(|hit| hit.entry.key.as_str()).collect();
        assert_eq!(
            keys,
            ["groceries"],
            "prefix match, expired and foreign entries left out"
        );
        stats_agree(&store, "a").await;

        store.mem_set("a", "groceries", "\"bread\"".into(), None).await.unwrap();
        assert!(store.mem_search("a", &words("milk"), 10).await.unwrap().is_empty());
        stats_agree(&store, "a").await;
        assert!(store.mem_delete("a", "groceries").await.unwrap());
        assert_eq!(store.mem_purge_expired().await.unwrap(), 1);
        stats_agree(&store, "a").await;
        stats_agree(&store, "b").await;
        // A query word never matches the owner's lexeme.
        store.mem_set("a", "x", "\"plain\"".into(), None).await.unwrap();
        assert!(store.mem_search("a", &words("a"), 10).await.unwrap().is_empty());
        assert!(store.mem_search("a", &words("#a"), 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn more_occurrences_and_more_query_words_rank_first() {
        let Some(store) = testing::store().await else { return };
        for (key, value) in [
            ("once", "\"alpha beta gamma delta\""),
            ("twice", "\"alpha alpha gamma delta\""),
            ("both", "\"alpha deadline gamma delta\""),
            ("none", "\"omega\""),
        ] {
            store.mem_set("a", key, value.into(), None).await.unwrap();
        }
        let hits = store.mem_search("a", &words("alpha"), 10).await.unwrap();
        assert_eq!(hits[0].entry.key, "twice");
        let hits = store.mem_search("a", &words("alpha deadline alpha"), 10).await.unwrap();
        let keys: Vec<_> = hits.iter().map(|hit| hit.entry.key.as_str()).collect();
        assert_eq!(keys[0], "both");
        assert_eq!(keys.len(), 3);
        assert_eq!(store.mem_search("a", &words("alpha"), 1).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn search_results_and_scores_equal_sqlites_bit_for_bit() {
        let Some(pg) = testing::store().await else { return };
        let dir = tempfile::tempdir().unwrap();
        let sqlite = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        let entries = [
            (
                "a",
                "Mail/inbox",
                "\"send an e-mail to the team, e mail or email\"",
                None,
            ),
            ("a", "naïve", "{\"text\": \"Ærøskøbing café NAÏVE naive\"}", None),
            ("a", "repeat", "\"a a a b a a\"", None),
            ("a", "日本", "\"日本語のテキスト 한국어 हिन्दी\"", None),
            ("a", "expired", "\"email café\"", Some(now_ms() - 1)),
            ("a", "numbers", "[3.14, 2718, \"v2\", \"x86_64\"]", None),
            ("b", "theirs", "\"email email email café\"", None),
        ];
        for (owner, key, value, expires) in entries {
            pg.mem_set(owner, key, value.into(), expires).await.unwrap();
            sqlite.mem_set(owner, key, value.into(), expires).await.unwrap();
        }
        let queries: [&[&str]; 9] = [
            &["email"],
            &["e-mail"],
            &["mail", "caf"],
            &["naive", "aerosk"],
            &["a a"],
            &["日本語"],
            &["x86", "3"],
            &["!!!"],
            &["hindi", "हिन"],
        ];
        let mut compared = 0;
        for query in queries {
            let query: Vec<String> = query.iter().map(|w| w.to_string()).collect();
            for owner in ["a", "b"] {
                let ours = pg.mem_search(owner, &query, 10).await.unwrap();
                let theirs = sqlite.mem_search(owner, &query, 10).await.unwrap();
                let ours: Vec<_> = ours.iter().map(|h| (h.entry.key.as_str(), h.score)).collect();
                let theirs: Vec<_> = theirs.iter().map(|h| (h.entry.key.as_str(), h.score)).collect();
                assert_eq!(ours, theirs, "{owner} searching {query:?}");
                compared += ours.len();
            }
        }
        assert!(compared >= 10, "the queries found too little to compare: {compared}");
    }

    #[tokio::test]
    async fn get_list_delete_and_expiry_behave_as_on_sqlite() {
        let Some(store) = testing::store().await else { return };
        assert!(store.mem_set("a", "k", "1".into(), None).await.unwrap());
        assert!(!store.mem_set("a", "k", "2".into(), None).await.unwrap());
        let entry = store.mem_get("a", "k").await.unwrap().unwrap();
        assert_eq!((entry.value.as_str(), entry.expires_at_ms), ("2", None));
        assert!(store.mem_get("b", "k").await.unwrap().is_none());
        // An expired key is invisible, reads as new when set again, and is not "deleted".
        store.mem_set("a", "old", "1".into(), Some(now_ms() - 1)).await.unwrap();
        assert!(store.mem_get("a", "old").await.unwrap().is_none());
        assert!(
            store
                .mem_set("a", "old", "\"x\"".into(), Some(now_ms() - 1))
                .await
                .unwrap()
        );
        assert!(!store.mem_delete("a", "old").await.unwrap());
        assert!(!store.mem_delete("a", "missing").await.unwrap());
        for key in ["p/3", "p/1", "p/B", "p/a", "p/é", "q", "p"] {
            store.mem_set("a", key, "0".into(), None).await.unwrap();
        }
        store.mem_set("a", "p/2", "0".into(), Some(now_ms() - 1)).await.unwrap();
        let first = store.mem_list("a", "p/", None, 3).await.unwrap();
        let keys: Vec<_> = first.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["p/1", "p/3", "p/B"], "bytewise, expired left out");
        let second = store.mem_list("a", "p/", first.next_after.as_deref(), 3).await.unwrap();
        let keys: Vec<_> = second.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["p/a", "p/é"]);
        assert_eq!(second.next_after, None);
        // A cursor before the prefix starts at the prefix.
        let early = store.mem_list("a", "p/", Some("a"), 1).await.unwrap();
        assert_eq!(early.entries[0].key, "p/1");
        assert_eq!(early.next_after.as_deref(), Some("p/1"));
        assert!(store.mem_list("a", "p\0", None, 10).await.unwrap().entries.is_empty());
        let after_nul = store.mem_list("a", "p/", Some("p/B\0x"), 10).await.unwrap();
        assert_eq!(after_nul.entries[0].key, "p/a", "a cursor is compared up to a NUL");
        assert!(store.mem_delete("a", "k").await.unwrap());
        assert_eq!(store.mem_purge_expired().await.unwrap(), 1);
        stats_agree(&store, "a").await;
    }

    #[tokio::test]
    async fn a_write_past_the_quota_is_refused_and_changes_nothing() {
        let limits = StoreLimits {
            quotas: Quotas {
                memory: Quota {
                    max_items: 2,
                    max_bytes: 40,
                },
                ..Quotas::UNLIMITED
            },
            ..StoreLimits::default()
        };
        let Some(store) = testing::store_with(limits).await else {
            return;
        };
        store.mem_set("a", "k1", "\"0123456789\"".into(), None).await.unwrap();
        store.mem_set("a", "k2", "1".into(), None).await.unwrap();
        let third = store.mem_set("a", "k3", "1".into(), None).await.unwrap_err();
        assert!(
            matches!(&third, StoreError::Refused(m) if m.contains("quotas.memory_items") && m.contains("agentos.mem_delete")),
            "{third:?}"
        );
        let grow = store
            .mem_set("a", "k1", format!("\"{}\"", "x".repeat(40)), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&grow, StoreError::Refused(m) if m.contains("quotas.memory_bytes")),
            "{grow:?}"
        );
        assert_eq!(store.mem_get("a", "k1").await.unwrap().unwrap().value, "\"0123456789\"");
        assert!(store.mem_search("a", &words("xxx"), 10).await.unwrap().is_empty());
        store.mem_set("b", "k3", "1".into(), None).await.unwrap();
        store.mem_delete("a", "k2").await.unwrap();
        store.mem_set("a", "k3", "1".into(), None).await.unwrap();
        stats_agree(&store, "a").await;
        stats_agree(&store, "b").await;
    }

    #[tokio::test]
    async fn concurrent_sets_of_a_new_key_report_new_exactly_once() {
        let Some(store) = testing::store().await else { return };
        let store = Arc::new(store);
        let sets = (0..8).map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.mem_set("a", "shared", format!("{i}"), None).await.unwrap() })
        });
        let new = futures::future::join_all(sets)
            .await
            .into_iter()
            .filter(|set| *set.as_ref().unwrap())
            .count();
        assert_eq!(new, 1);
        stats_agree(&store, "a").await;
    }

    #[tokio::test]
    async fn replicas_purging_together_delete_each_expired_entry_once() {
        let Some(url) = testing::fresh_database().await else {
            return;
        };
        let one = PgStore::connect(&url, 4, StoreLimits::default()).await.unwrap();
        let two = PgStore::connect(&url, 4, StoreLimits::default()).await.unwrap();
        let past = now_ms() - 1;
        for owner in ["a", "b", "c", "d"] {
            for i in 0..20 {
                one.mem_set(owner, &format!("gone{i}"), "1".into(), Some(past))
                    .await
                    .unwrap();
            }
            one.mem_set(owner, "kept", "\"kept\"".into(), None).await.unwrap();
        }
        let (first, second) = tokio::join!(one.mem_purge_expired(), two.mem_purge_expired());
        assert_eq!(first.unwrap() + second.unwrap(), 80);
        for owner in ["a", "b", "c", "d"] {
            stats_agree(&one, owner).await;
            assert_eq!(one.mem_list(owner, "", None, 10).await.unwrap().entries.len(), 1);
        }
    }

    #[tokio::test]
    async fn a_value_too_large_to_index_word_by_word_is_still_found() {
        let Some(store) = testing::store().await else { return };
        let huge: String = (0..200_000).map(|i| format!("w{i} ")).collect();
        store.mem_set("a", "huge", format!("\"{huge}\""), None).await.unwrap();
        store
            .mem_set("a", "small", "\"w199999 here\"".into(), None)
            .await
            .unwrap();
        let hits = store.mem_search("a", &words("w199999"), 10).await.unwrap();
        let keys: Vec<_> = hits.iter().map(|hit| hit.entry.key.as_str()).collect();
        assert_eq!(keys, ["small", "huge"]);
        assert!(store.mem_search("a", &words("nothing"), 10).await.unwrap().is_empty());
        assert!(store.mem_search("b", &words("w1"), 10).await.unwrap().is_empty());
    }
}

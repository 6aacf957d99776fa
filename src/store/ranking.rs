//! BM25 from one owner's statistics alone, so a search score says nothing about other agents.
//!
//! Memory and knowledge each keep one FTS5 index for every agent (one index keeps writes and
//! matching cheap). FTS5's own `bm25()` takes the document count, the average length and each
//! word's document frequency from that whole index, so another agent storing "nightingale"
//! changed the score "nightingale" got in your search: a score leaked what others store.
//!
//! So the index only finds matches: every indexed row carries an owner tag column (the hex of
//! its owner), and each query is `owner_tag : "<tag>" AND {columns} : ("word"*)`, which reaches
//! the caller's rows only. The score is then computed here from the caller's rows and nothing
//! else: their count and total length (a per-owner statistics row that triggers keep exact), how
//! many of them match each word, and each match's hits and length:
//!
//! `score = Σ over query words w of idf(w) · tf·(k1+1) / (tf + k1·(1 − b + b·len/avglen))`
//! with `idf(w) = ln(1 + (N − n(w) + 0.5) / (n(w) + 0.5))`, `k1 = 1.2`, `b = 0.75`,
//! where `N` is how many rows the owner keeps, `n(w)` how many of them match `w` (as a prefix),
//! `tf` how often `w` occurs in the row and lengths are counted in characters. This `idf` (the
//! one Lucene uses) stays positive, so a word in every one of a few rows still scores.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};

/// BM25's term-frequency saturation (FTS5's default).
const K1: f64 = 1.2;
/// BM25's length normalisation (FTS5's default).
const B: f64 = 0.75;

/// The owner's whole collection, from its statistics row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Collection {
    pub rows: i64,
    /// Total length of the rows' indexed text, in characters.
    pub characters: i64,
}

impl Collection {
    /// Reads `(rows, characters)` with `sql`, which takes the owner as `?1`; no row reads as empty.
    pub(super) fn load(conn: &rusqlite::Connection, sql: &str, owner: &str) -> Result<Self, rusqlite::Error> {
        Ok(conn
            .prepare_cached(sql)?
            .query_row(params![owner], |row| {
                Ok(Self {
                    rows: row.get(0)?,
                    characters: row.get(1)?,
                })
            })
            .optional()?
            .unwrap_or_default())
    }
}

/// One row matching one query word.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct WordMatch {
    pub row: i64,
    /// The row's indexed text length, in characters.
    pub length: i64,
    /// How often the word occurs in the row.
    pub hits: i64,
    /// Whether the row may be returned (live, passes the filter). Rows that may not still count
    /// in `n(w)`, as they count in `N`: both describe everything the owner keeps.
    pub eligible: bool,
}

impl WordMatch {
    /// Reads a match from columns `row, length, hits, eligible` (eligible: non-zero, NULL is no).
    pub(super) fn from_row(row: &rusqlite::Row<'_>) -> Result<Self, rusqlite::Error> {
        Ok(Self {
            row: row.get(0)?,
            length: row.get(1)?,
            hits: row.get(2)?,
            eligible: row.get::<_, Option<i64>>(3)?.is_some_and(|v| v != 0),
        })
    }
}

/// The hex of the owner's UTF-8 bytes, as SQLite's `hex(owner)` writes it into the index: one
/// token that no other owner's rows carry.
pub(super) fn owner_tag(owner: &str) -> String {
    owner.bytes().map(|b| format!("{b:02X}")).collect()
}

/// An FTS5 query for `word` as a prefix in `columns` (e.g. `{key value}`) of `tag`'s rows only.
/// The word is quoted so it is never read as syntax; the column filter keeps it from matching the
/// owner tag column.
pub(super) fn match_query(tag: &str, columns: &str, word: &str) -> String {
    format!(
        "owner_tag : \"{tag}\" AND {columns} : (\"{}\"*)",
        word.replace('"', "\"\"")
    )
}

/// The query's words without repeats, in first-seen order: saying a word twice does not make it
/// count twice.
pub(super) fn distinct(words: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    words.iter().filter(|w| seen.insert(w.as_str())).cloned().collect()
}

/// Eligible rows matching any word, best first (ties: lower row first), with their scores.
/// `matches[i]` holds every owner row matching word `i`.
pub(super) fn rank(collection: Collection, matches: &[Vec<WordMatch>]) -> Vec<(i64, f64)> {
    // The statistics row counts every row, so `N >= n(w)`; the max only guards a broken count.
    let most_matches = matches.iter().map(Vec::len).max().unwrap_or(0) as f64;
    let rows = (collection.rows as f64).max(most_matches).max(1.0);
    let average = if collection.rows > 0 && collection.characters > 0 {
        collection.characters as f64 / collection.rows as f64
    } else {
        1.0
    };
    // A BTreeMap and words in query order: each row's sum is added up in one fixed order, so the
    // same data always gives bit-for-bit the same score.
    let mut scores: BTreeMap<i64, (bool, f64)> = BTreeMap::new();
    for word in matches {
        let matching = word.len() as f64;
        if word.is_empty() {
            continue;
        }
        let idf = (1.0 + (rows - matching + 0.5) / (matching + 0.5)).ln();
        for hit in word {
            let tf = hit.hits.max(1) as f64;
            let length = hit.length.max(0) as f64;
            let saturation = tf + K1 * (1.0 - B + B * length / average);
            let entry = scores.entry(hit.row).or_insert((hit.eligible, 0.0));
            entry.1 += idf * tf * (K1 + 1.0) / saturation;
        }
    }
    let mut ranked: Vec<(i64, f64)> = scores
        .into_iter()
        .filter_map(|(row, (eligible, score))| eligible.then_some((row, score)))
        .collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(row: i64, length: i64, hits: i64) -> WordMatch {
        WordMatch {
            row,
            length,
            hits,
            eligible: true,
        }
    }

    fn collection(rows: i64, characters: i64) -> Collection {
        Collection { rows, characters }
    }

    #[test]
    fn more_hits_rarer_words_and_shorter_rows_score_higher() {
        let c = collection(10, 1000);
        let ranked = rank(c, &[vec![hit(1, 100, 1), hit(2, 100, 3)]]);
        assert_eq!(
            ranked.iter().map(|r| r.0).collect::<Vec<_>>(),
            [2, 1],
            "more hits first"
        );

        let ranked = rank(c, &[vec![hit(1, 300, 1), hit(2, 50, 1)]]);
        assert_eq!(ranked[0].0, 2, "the shorter row first");

        let rare = rank(c, &[vec![hit(1, 100, 1)]])[0].1;
        let common = rank(c, &[(1..=8).map(|row| hit(row, 100, 1)).collect()])[0].1;
        assert!(rare > common && common > 0.0, "{rare} {common}");

        let both = rank(c, &[vec![hit(1, 100, 1)], vec![hit(1, 100, 1), hit(2, 100, 1)]]);
        assert_eq!(both[0].0, 1, "matching two words beats one");
    }

    #[test]
    fn the_score_is_textbook_bm25_from_the_collection_given() {
        // N = 4, n = 1, avglen = 100, len = 100, tf = 2.
        let score = rank(collection(4, 400), &[vec![hit(7, 100, 2)]])[0].1;
        let idf = (1.0_f64 + (4.0 - 1.0 + 0.5) / 1.5).ln();
        let expected = idf * 2.0 * 2.2 / (2.0 + 1.2);
        assert!((score - expected).abs() < 1e-12, "{score} {expected}");
        // A word in every row of a tiny collection still scores above zero.
        assert!(rank(collection(1, 10), &[vec![hit(1, 10, 1)]])[0].1 > 0.1);
    }

    #[test]
    fn ineligible_rows_count_in_the_statistics_but_are_not_returned() {
        let c = collection(5, 500);
        let mut expired = hit(1, 100, 1);
        expired.eligible = false;
        let with = rank(c, &[vec![expired, hit(2, 100, 1)]]);
        assert_eq!(with.iter().map(|r| r.0).collect::<Vec<_>>(), [2]);
        let alone = rank(c, &[vec![hit(2, 100, 1)]]);
        assert!(with[0].1 < alone[0].1, "n(w) counted the expired row too");
    }

    #[test]
    fn queries_are_quoted_and_confined_to_the_owner_and_columns() {
        assert_eq!(owner_tag("a-1"), "612D31");
        assert_eq!(owner_tag("é"), "C3A9");
        assert_eq!(
            match_query("6162", "{key value}", "say \"hi"),
            "owner_tag : \"6162\" AND {key value} : (\"say \"\"hi\"*)"
        );
        let words = ["b", "a", "b"].map(String::from);
        assert_eq!(distinct(&words), ["b", "a"]);
        assert!(rank(Collection::default(), &[vec![], vec![]]).is_empty());
    }
}

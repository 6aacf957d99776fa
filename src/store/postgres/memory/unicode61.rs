//! Splits and folds text into the words the memory index matches, as FTS5's `unicode61`
//! tokenizer (what the SQLite store's memory index uses, default options) does for the text
//! agents store: letters, digits and private-use characters make words, everything else
//! separates them; words are lowercased and lose their diacritics (é is e). Which rows match a
//! word, and how often, must not depend on the store.
//!
//! It is written from Unicode's own properties (Rust's `char` and canonical decomposition), not
//! from SQLite's tables, which follow an older Unicode version: for the scripts and symbols of
//! common text the two agree (a test compares them), but characters whose classes changed since,
//! scripts whose vowel signs are combining marks (Devanagari, Thai...), and symbols SQLite's
//! tables leave unclassified (it counts some emoji as word characters) may split differently from
//! SQLite, so a search can rank such text differently on the two stores.

use unicode_normalization::char::{canonical_combining_class, decompose_canonical};

/// FTS5 truncates every token (indexed or queried) to this many bytes (`FTS5_MAX_TOKEN_SIZE`).
const MAX_TOKEN_BYTES: usize = 32768;

/// The tokens of `text` in order: lowercase, diacritics removed, each cut to FTS5's 32 KiB
/// (possibly inside a character, as FTS5 does, hence bytes).
pub(super) fn tokens(text: &str) -> Vec<Vec<u8>> {
    let mut tokens = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for c in text.chars() {
        let keep = is_token_char(c) || (current.is_some() && is_diacritic(c));
        if !keep {
            if let Some(token) = current.take() {
                tokens.push(truncated(token));
            }
            continue;
        }
        let token = current.get_or_insert_with(Vec::new);
        fold_into(c, token);
    }
    if let Some(token) = current {
        tokens.push(truncated(token));
    }
    tokens
}

fn truncated(mut token: Vec<u8>) -> Vec<u8> {
    token.truncate(MAX_TOKEN_BYTES);
    token
}

/// Letters, digits (FTS5's `L*` and `N*`) and private-use characters (`Co`) make words; in
/// ASCII only `[0-9A-Za-z]`.
fn is_token_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric();
    }
    let private_use = matches!(u32::from(c), 0xE000..=0xF8FF | 0xF_0000..=0xF_FFFD | 0x10_0000..=0x10_FFFD);
    (c.is_alphanumeric() && !is_diacritic(c)) || private_use
}

/// A combining mark: it continues a word (and is dropped from it) but never starts one.
fn is_diacritic(c: char) -> bool {
    canonical_combining_class(c) != 0
}

/// `c` lowercased onto `token`, a Latin letter with diacritics as its plain letter (é is e): as
/// FTS5's default `remove_diacritics = 1` folds, only characters that decompose into an ASCII
/// letter and combining marks lose them (Greek ί, Cyrillic ё and Hangul syllables stay whole).
fn fold_into(c: char, token: &mut Vec<u8>) {
    let mut buffer = [0; 4];
    for lower in c.to_lowercase() {
        if is_diacritic(lower) {
            continue;
        }
        let mut parts = Vec::with_capacity(3);
        decompose_canonical(lower, |part| parts.push(part));
        let plain = match parts.split_first() {
            Some((base, marks)) if base.is_ascii() && marks.iter().all(|&mark| is_diacritic(mark)) => *base,
            _ => lower,
        };
        token.extend_from_slice(plain.encode_utf8(&mut buffer).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FTS5's own tokens of `text`, in order, read back through `fts5vocab`.
    fn sqlite_tokens(conn: &rusqlite::Connection, text: &str) -> Vec<Vec<u8>> {
        conn.execute("DELETE FROM t", []).unwrap();
        conn.execute("INSERT INTO t (rowid, x) VALUES (1, ?1)", [text]).unwrap();
        let mut statement = conn.prepare("SELECT term FROM v ORDER BY offset").unwrap();
        statement
            .query_map([], |row| Ok(row.get_ref(0)?.as_bytes()?.to_vec()))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn sqlite() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE VIRTUAL TABLE t USING fts5(x, tokenize = 'unicode61');
             CREATE VIRTUAL TABLE v USING fts5vocab(t, 'instance');",
        )
        .unwrap();
        conn
    }

    #[test]
    fn common_text_splits_and_folds_as_sqlite_does() {
        let conn = sqlite();
        let long = format!("{}é{}", "x".repeat(32766), "yz");
        for text in [
            "Hello, WORLD! e-mail foo.bar_baz 3.14 x86_64 user@example.com",
            "naïve café Crème brûlée São Paulo Zürich Ångström façade résumé İstanbul",
            "ΣΊΣΥΦΟΣ Ελληνικά Привет, МИР! Ёлка 日本語のテキスト 中文 한국어 ＡＢＣ 123４５６",
            "tab\tnew\nline\u{00A0}nbsp\u{2028}sep \u{0301}start a\u{0301}b \u{E000}private",
            "symbols: (parens) [brackets] {braces} <angle> «guillemets» “quotes” 50% $5 ±1 ©2026 a→b",
            long.as_str(),
        ] {
            assert_eq!(tokens(text), sqlite_tokens(&conn, text), "{text:.80}");
        }
        assert_eq!(
            tokens(&long)[0].len(),
            MAX_TOKEN_BYTES,
            "cut inside the é, as FTS5 cuts"
        );
    }
}

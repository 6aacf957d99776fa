//! How memory search runs on PostgreSQL with SQLite's exact semantics. PostgreSQL only narrows
//! the rows: each row keeps a `tsvector` of its [`unicode61`] tokens (built here, not by a
//! PostgreSQL text-search configuration, whose parser splits text differently and depends on the
//! server's locale), and a query's prefix `tsquery` finds a superset of the matching rows through
//! a GIN index. The matches and their hits are then decided here from the rows' text, token by
//! token, as FTS5 decides them, and `ranking` scores them as on SQLite.
//!
//! FTS5 reads each query word as a quoted phrase with a trailing `*`: the word's tokens must
//! follow each other, the last one as a prefix (a word is usually one token). A row's hits for a
//! word are what SQLite counts with `highlight()`: the phrase's occurrences per column, with
//! overlapping ones merged, as `highlight()` merges them.

use std::collections::BTreeSet;

use super::unicode61;

/// Longest lexeme kept in the index, in bytes (PostgreSQL allows 2047). Tokens and query words
/// are cut the same way, so a cut lexeme still finds every row its full token matches; the
/// exact comparison happens here.
const LEXEME_BYTES: usize = 1000;
/// Most lexeme bytes one row's `tsvector` may carry (PostgreSQL's limit is 1 MiB). A row with
/// more distinct words is indexed by the [`UNINDEXED`] marker instead and every search of its
/// owner reads it.
const ROW_LEXEME_BYTES: usize = 1_000_000;
/// Lexeme of rows too large to index word by word. Tokens never contain `!` or `#` (ASCII
/// punctuation is never a token character), so neither marker can be matched by a query word.
const UNINDEXED: &str = "!unindexed";

/// The owner's lexeme: a search reaches the owner's rows only through the index, as SQLite's
/// `owner_tag` column does (the query also filters on `owner`, so a cut tag stays exact).
fn owner_lexeme(owner: &str) -> String {
    cut(&format!("#{owner}")).to_owned()
}

/// The longest prefix of `text` of at most [`LEXEME_BYTES`] bytes that ends on a character.
fn cut(text: &str) -> &str {
    let mut end = text.len().min(LEXEME_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn lexeme(token: &[u8]) -> String {
    cut(&String::from_utf8_lossy(token)).to_owned()
}

/// The lexemes a row is indexed by: its owner's and its tokens' (distinct, cut), or the
/// unindexed marker when they would not fit one `tsvector`.
pub(super) fn row_lexemes(owner: &str, key: &str, value: &str) -> Vec<String> {
    let mut lexemes: BTreeSet<String> = unicode61::tokens(key)
        .iter()
        .chain(unicode61::tokens(value).iter())
        .map(|token| lexeme(token))
        .filter(|lexeme| !lexeme.is_empty())
        .collect();
    if lexemes.iter().map(String::len).sum::<usize>() > ROW_LEXEME_BYTES {
        lexemes = BTreeSet::from([UNINDEXED.to_owned()]);
    }
    lexemes.insert(owner_lexeme(owner));
    lexemes.into_iter().collect()
}

/// One query word: its tokens, the phrase FTS5 makes of it (no tokens: it matches nothing).
pub(super) struct Word {
    tokens: Vec<Vec<u8>>,
}

impl Word {
    pub(super) fn new(word: &str) -> Self {
        Self {
            tokens: unicode61::tokens(word),
        }
    }

    /// How many times this word occurs in a column's tokens, counted as `highlight()` counts:
    /// phrase occurrences in token order, overlapping ones merged into one.
    pub(super) fn hits(&self, column: &[Vec<u8>]) -> i64 {
        let Some((last, leading)) = self.tokens.split_last() else {
            return 0;
        };
        let span = self.tokens.len();
        let mut hits = 0;
        let mut open_until: Option<usize> = None;
        for start in 0..column.len().saturating_sub(span - 1) {
            let found = leading.iter().enumerate().all(|(i, token)| &column[start + i] == token)
                && column[start + span - 1].starts_with(last);
            if !found {
                continue;
            }
            let end = start + span - 1;
            match open_until {
                Some(until) if start <= until => open_until = Some(until.max(end)),
                _ => {
                    hits += 1;
                    open_until = Some(end);
                }
            }
        }
        hits
    }
}

/// The `tsquery` (in its text form) that finds a superset of the owner's rows matching any of
/// `words`: every token as a prefix (cut lexemes), plus the rows too large to index; `None` when
/// no word has a token, so nothing can match.
pub(super) fn candidates_query(owner: &str, words: &[Word]) -> Option<String> {
    let phrases: Vec<String> = words
        .iter()
        .filter(|word| !word.tokens.is_empty())
        .map(|word| {
            let tokens: Vec<String> = word
                .tokens
                .iter()
                .map(|token| format!("{}:*", quoted(&lexeme(token))))
                .collect();
            format!("({})", tokens.join(" & "))
        })
        .collect();
    if phrases.is_empty() {
        return None;
    }
    Some(format!(
        "{} & ({} | {})",
        quoted(&owner_lexeme(owner)),
        phrases.join(" | "),
        quoted(UNINDEXED)
    ))
}

/// A lexeme as a quoted `tsquery` operand: taken as is, never parsed as operators.
fn quoted(lexeme: &str) -> String {
    format!("'{}'", lexeme.replace('\\', "\\\\").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(text: &str) -> Vec<Vec<u8>> {
        unicode61::tokens(text)
    }

    #[test]
    fn hits_count_phrases_and_prefixes_as_highlight_does() {
        assert_eq!(Word::new("alp").hits(&column("Alpha alpha beta ALPINE")), 3);
        assert_eq!(Word::new("e-ma").hits(&column("send an e-mail, e mail, email")), 2);
        // Overlapping phrase occurrences merge: "a a" in "a a a" highlights once.
        assert_eq!(Word::new("a a").hits(&column("a a a x a a")), 2);
        assert_eq!(Word::new("!!!").hits(&column("!!! anything")), 0);
        assert_eq!(Word::new("éte").hits(&column("ÉTÉ")), 1, "case and diacritics fold");
        assert_eq!(Word::new("x").hits(&[]), 0);
        assert_eq!(Word::new("a b c").hits(&column("a b")), 0);
    }

    #[test]
    fn queries_quote_lexemes_and_reach_the_owner_only() {
        let words = [Word::new("it's"), Word::new("back\\slash"), Word::new("...")];
        assert_eq!(
            candidates_query("o'wner", &words).unwrap(),
            "'#o''wner' & (('it':* & 's':*) | ('back':* & 'slash':*) | '!unindexed')"
        );
        assert_eq!(candidates_query("a", &[Word::new("--")]), None);
        assert_eq!(row_lexemes("a", "K", "k b k"), ["#a", "b", "k"]);
    }

    #[test]
    fn long_tokens_and_huge_rows_still_reach_the_index() {
        let long = "x".repeat(5000);
        let lexemes = row_lexemes("a", "k", &long);
        assert!(lexemes.iter().all(|l| l.len() <= LEXEME_BYTES));
        let query = candidates_query("a", &[Word::new(&long)]).unwrap();
        assert!(query.contains(&format!("'{}':*", "x".repeat(LEXEME_BYTES))));
        let multibyte = "é".repeat(999);
        assert!(cut(&multibyte).len() <= LEXEME_BYTES && cut(&multibyte).ends_with('é'));
        let huge: String = (0..200_000).map(|i| format!("w{i} ")).collect();
        assert_eq!(row_lexemes("a", "k", &huge), ["!unindexed", "#a"]);
    }
}

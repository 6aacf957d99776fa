//! What SQL an agent may run on its scratch database, decided from the statement's tokens
//! before SQLite sees it, with messages that say what to do instead. The second, authoritative
//! line is inside SQLite: the authorizer (see `authorizer`), limits and connection settings
//! (see `scratch`).
//!
//! Refused: ATTACH/DETACH and `VACUUM INTO` (they reach other files of the host), transaction
//! control (each call is its own transaction), `load_extension`, and every PRAGMA except a few
//! that only read, whether written as a statement or as a `pragma_*` table-valued function.

/// PRAGMAs that only read and may take an argument (a table or index name, a check's limit).
const READ_PRAGMAS_WITH_ARGUMENT: &[&str] = &[
    "foreign_key_check",
    "foreign_key_list",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "quick_check",
    "table_info",
    "table_list",
    "table_xinfo",
];

/// PRAGMAs allowed only in their bare, reading form (`PRAGMA user_version`): with a value they
/// would change a setting.
const READ_PRAGMAS_BARE: &[&str] = &[
    "application_id",
    "collation_list",
    "data_version",
    "encoding",
    "foreign_keys",
    "freelist_count",
    "function_list",
    "max_page_count",
    "module_list",
    "page_count",
    "page_size",
    "pragma_list",
    "schema_version",
    "user_version",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A keyword or bare identifier, as written.
    Word(String),
    /// An identifier in `"..."`, `` `...` `` or `[...]`, unquoted.
    Quoted(String),
    /// A string literal, unquoted (SQLite also takes one where a name is expected).
    Text(String),
    Semicolon,
    Dot,
    /// Anything else: numbers, blobs, parameters, operators.
    Other,
}

impl Token {
    /// The name this token may stand for, in lower case.
    fn name(&self) -> Option<String> {
        match self {
            Token::Word(name) | Token::Quoted(name) | Token::Text(name) => Some(name.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(word) if word.eq_ignore_ascii_case(keyword))
    }
}

fn is_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$' || byte >= 0x80
}

/// Splits SQL into tokens the way SQLite's tokenizer does, as far as these checks need.
fn tokenize(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    // Reads a quoted run starting after the opening quote at `i`, where a doubled `close`
    // stands for itself; returns the content and the index after the closing quote.
    let quoted = |start: usize, close: u8, doubling: bool| -> (String, usize) {
        let mut content = Vec::new();
        let mut j = start;
        while j < bytes.len() {
            if bytes[j] == close {
                if doubling && bytes.get(j + 1) == Some(&close) {
                    content.push(close);
                    j += 2;
                    continue;
                }
                return (String::from_utf8_lossy(&content).into_owned(), j + 1);
            }
            content.push(bytes[j]);
            j += 1;
        }
        (String::from_utf8_lossy(&content).into_owned(), bytes.len())
    };
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i = (i + 2).min(bytes.len());
            }
            b'\'' => {
                let (text, next) = quoted(i + 1, b'\'', true);
                tokens.push(Token::Text(text));
                i = next;
            }
            b'"' | b'`' => {
                let (name, next) = quoted(i + 1, byte, true);
                tokens.push(Token::Quoted(name));
                i = next;
            }
            b'[' => {
                let (name, next) = quoted(i + 1, b']', false);
                tokens.push(Token::Quoted(name));
                i = next;
            }
            b'x' | b'X' if bytes.get(i + 1) == Some(&b'\'') => {
                let (_, next) = quoted(i + 2, b'\'', false);
                tokens.push(Token::Other);
                i = next;
            }
            b';' => {
                tokens.push(Token::Semicolon);
                i += 1;
            }
            b'.' if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                tokens.push(Token::Dot);
                i += 1;
            }
            b'0'..=b'9' | b'.' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.' || bytes[i] == b'_') {
                    i += 1;
                }
                tokens.push(Token::Other);
            }
            b'?' | b':' | b'@' | b'$' => {
                i += 1;
                while i < bytes.len() && is_name_byte(bytes[i]) {
                    i += 1;
                }
                tokens.push(Token::Other);
            }
            _ if is_name_byte(byte) => {
                let start = i;
                while i < bytes.len() && is_name_byte(bytes[i]) {
                    i += 1;
                }
                tokens.push(Token::Word(sql[start..i].to_owned()));
            }
            _ => {
                // One character of an operator; skip the rest of a multi-byte character whole.
                i += 1;
                while i < bytes.len() && bytes[i] & 0xC0 == 0x80 {
                    i += 1;
                }
                tokens.push(Token::Other);
            }
        }
    }
    tokens
}

fn is_read_pragma(name: &str) -> bool {
    READ_PRAGMAS_WITH_ARGUMENT.contains(&name) || READ_PRAGMAS_BARE.contains(&name)
}

fn allowed_pragmas() -> String {
    let mut all: Vec<&str> = READ_PRAGMAS_WITH_ARGUMENT
        .iter()
        .chain(READ_PRAGMAS_BARE)
        .copied()
        .collect();
    all.sort_unstable();
    all.join(", ")
}

/// Checks `PRAGMA [schema.]name [= value | (argument)]`, given the tokens after `PRAGMA`.
fn check_pragma(rest: &[Token]) -> Result<(), String> {
    let mut rest = rest;
    if rest.get(1) == Some(&Token::Dot) {
        rest = &rest[2..];
    }
    let Some(name) = rest.first().and_then(Token::name) else {
        return Err("`sql`: PRAGMA needs a name".into());
    };
    let has_value = rest[1..].iter().any(|token| *token != Token::Semicolon);
    pragma_refusal(&name, has_value).map_or(Ok(()), Err)
}

/// Why `PRAGMA name` (lower case), with a value or argument or without, is refused; `None` if
/// it is on the read-only allow-list. The SQLite authorizer (see `authorizer`) applies it too.
pub(super) fn pragma_refusal(name: &str, has_value: bool) -> Option<String> {
    if !is_read_pragma(name) {
        return Some(format!(
            "`sql`: PRAGMA {name} is not available; only these read-only PRAGMAs are: {}",
            allowed_pragmas()
        ));
    }
    if has_value && READ_PRAGMAS_BARE.contains(&name) {
        return Some(format!(
            "`sql`: PRAGMA {name} can only be read here; write `PRAGMA {name}` without a value"
        ));
    }
    None
}

/// Whether the statement is a VACUUM, which needs to attach a temporary database while it runs.
pub(super) fn is_vacuum(sql: &str) -> bool {
    tokenize(sql)
        .iter()
        .find(|token| **token != Token::Semicolon)
        .is_some_and(|token| token.is_keyword("VACUUM"))
}

/// Refuses what an agent may not run, with the reason and what to do instead.
pub(super) fn check(sql: &str) -> Result<(), String> {
    let tokens = tokenize(sql);
    for token in &tokens {
        let Some(name) = token.name() else { continue };
        if name == "load_extension" && !matches!(token, Token::Text(_)) {
            return Err("`sql`: load_extension is not available; extensions cannot be loaded".into());
        }
        if let Some(pragma) = name.strip_prefix("pragma_")
            && !is_read_pragma(pragma)
        {
            return Err(format!(
                "`sql`: {name} is not available; only these read-only PRAGMAs are: {}",
                allowed_pragmas()
            ));
        }
    }
    let mut head = tokens
        .iter()
        .skip_while(|t| **t == Token::Semicolon)
        .collect::<Vec<_>>();
    if head.first().is_some_and(|t| t.is_keyword("EXPLAIN")) {
        head.remove(0);
        if head.first().is_some_and(|t| t.is_keyword("QUERY")) && head.get(1).is_some_and(|t| t.is_keyword("PLAN")) {
            head.drain(..2);
        }
    }
    let Some(Token::Word(first)) = head.first() else {
        return Ok(()); // SQLite reports what is wrong with it.
    };
    match first.to_ascii_uppercase().as_str() {
        "ATTACH" | "DETACH" => Err(format!(
            "`sql`: {} is not available: your database is a single file of its own. Create more tables in it instead",
            first.to_ascii_uppercase()
        )),
        "BEGIN" | "COMMIT" | "END" | "ROLLBACK" | "SAVEPOINT" | "RELEASE" => Err(format!(
            "`sql`: {} is not needed: every call runs as its own transaction, committed when it succeeds and rolled back when it fails",
            first.to_ascii_uppercase()
        )),
        "VACUUM" if head.iter().any(|t| t.is_keyword("INTO")) => {
            Err("`sql`: VACUUM INTO is not available (it writes another file); plain VACUUM works".into())
        }
        "PRAGMA" => {
            let rest: Vec<Token> = head[1..].iter().map(|t| (*t).clone()).collect();
            check_pragma(&rest)
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_statements_pass() {
        for sql in [
            "SELECT 1",
            "select * from t where name = 'attach' -- attach\n",
            "WITH x AS (SELECT 1) SELECT * FROM x;",
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB)",
            "CREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO b VALUES (1); END",
            "INSERT INTO t VALUES (?1, :name, @x, $y, x'00ff', 1.5e3, .5)",
            "/* comment */ UPDATE t SET v = 'it''s' WHERE id = 1",
            "VACUUM",
            "EXPLAIN QUERY PLAN SELECT * FROM t",
            "PRAGMA table_info(notes)",
            "PRAGMA main.table_info = 'notes'",
            "pragma user_version;",
            "SELECT * FROM pragma_table_info('notes')",
            "SELECT \"pragma\", [weird ] name] FROM t",
        ] {
            assert_eq!(check(sql), Ok(()), "{sql}");
        }
    }

    #[test]
    fn host_reaching_and_session_statements_are_refused() {
        for (sql, says) in [
            ("ATTACH DATABASE '/etc/passwd' AS p", "ATTACH is not available"),
            ("  -- hidden\n/* x */ attach 'a.db' as a", "ATTACH is not available"),
            ("EXPLAIN ATTACH 'a.db' AS a", "ATTACH is not available"),
            (";;DETACH a", "DETACH is not available"),
            ("VACUUM INTO '/tmp/copy.db'", "VACUUM INTO"),
            ("vacuum main into 'x'", "VACUUM INTO"),
            ("BEGIN", "own transaction"),
            ("commit", "own transaction"),
            ("SAVEPOINT s", "own transaction"),
            ("SELECT load_extension('/tmp/x.so')", "load_extension"),
            ("SELECT \"LOAD_EXTENSION\"('/tmp/x.so')", "load_extension"),
            ("PRAGMA writable_schema = 1", "PRAGMA writable_schema is not available"),
            ("PRAGMA max_page_count = 999999999", "can only be read"),
            ("PRAGMA user_version(7)", "can only be read"),
            (
                "PRAGMA main.journal_mode = DELETE",
                "PRAGMA journal_mode is not available",
            ),
            ("PRAGMA \"temp_store_directory\" = '/tmp'", "not available"),
            (
                "SELECT * FROM pragma_database_list",
                "pragma_database_list is not available",
            ),
            ("SELECT * FROM main.\"pragma_compile_options\"", "not available"),
            ("SELECT * FROM 'pragma_database_list'", "not available"),
        ] {
            let error = check(sql).expect_err(sql);
            assert!(error.contains(says), "{sql}: {error}");
            assert!(error.starts_with("`sql`"), "names the field: {error}");
        }
    }

    #[test]
    fn vacuum_is_recognised_and_pragmas_share_one_allow_list() {
        assert!(is_vacuum("VACUUM"));
        assert!(is_vacuum(" ;-- x\n vacuum main"));
        assert!(!is_vacuum("EXPLAIN VACUUM"));
        assert!(!is_vacuum("SELECT 'VACUUM'"));
        assert_eq!(pragma_refusal("table_info", true), None);
        assert_eq!(pragma_refusal("user_version", false), None);
        assert!(
            pragma_refusal("user_version", true)
                .unwrap()
                .contains("can only be read")
        );
        assert!(pragma_refusal("journal_mode", false).unwrap().contains("not available"));
    }

    #[test]
    fn tokens_follow_sqlite_quoting() {
        assert_eq!(
            tokenize("a 'b''c' \"d\"\"e\" [f] `g` x'00' ; -- h\n/* i */ j.k"),
            vec![
                Token::Word("a".into()),
                Token::Text("b'c".into()),
                Token::Quoted("d\"e".into()),
                Token::Quoted("f".into()),
                Token::Quoted("g".into()),
                Token::Other,
                Token::Semicolon,
                Token::Word("j".into()),
                Token::Dot,
                Token::Word("k".into()),
            ]
        );
        // Unterminated quotes and comments end at the end of the text without panicking.
        for sql in ["'abc", "\"abc", "[abc", "/* abc", "x'ab", "é✓", "-"] {
            let _ = tokenize(sql);
        }
    }
}

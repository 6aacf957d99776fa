//! One agent's scratch database: where its file lives, how a connection to it is locked down,
//! and how one statement runs on it, with values mapped between JSON and SQLite. Everything
//! here blocks; callers run it off the async threads.
//!
//! Inside SQLite a connection is held by an authorizer (see `authorizer`), run-time limits (no
//! attached databases, bounded values, statements and expressions), defensive settings, and a
//! progress handler that stops a statement once its deadline passes or its call is cancelled.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rusqlite::config::DbConfig;
use rusqlite::fallible_iterator::FallibleIterator as _;
use rusqlite::hooks::AuthContext;
use rusqlite::limits::Limit;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Batch, Connection, ErrorCode, OpenFlags, Statement};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::authorizer::{Gate, QUERY_ONLY_READS};
use super::guard;

/// The key of the JSON object that stands for a blob: `{"$base64": "..."}`.
pub(super) const BLOB_KEY: &str = "$base64";

/// Whether a statement may change the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    Query,
    Exec,
}

/// Limits of one call.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub max_rows: usize,
    pub max_result_bytes: usize,
    pub max_db_bytes: u64,
    pub busy_timeout: Duration,
    pub max_sql_chars: usize,
}

/// Deepest expression tree SQLite accepts (its default is 1000).
const MAX_EXPR_DEPTH: i32 = 500;
/// Most terms of one compound SELECT (its default is 500; multi-row VALUES is not counted).
const MAX_COMPOUND_SELECT: i32 = 100;
/// `SQLITE_LIMIT_LENGTH` and `SQLITE_LIMIT_SQL_LENGTH` are never set below this, so that a
/// small `max_result_bytes` or `max_sql_chars` cannot make the schema itself unloadable.
const MIN_LENGTH_LIMIT: usize = 1 << 20;
/// How many SQLite virtual machine steps run between two looks at the deadline and stop flag.
const PROGRESS_STEPS: i32 = 1000;

/// The largest string, blob or row SQLite builds on a scratch connection: `max_result_bytes`
/// (a larger value could never be returned), but at least 1 MiB.
pub(super) fn value_limit(max_result_bytes: usize) -> i32 {
    i32::try_from(max_result_bytes.max(MIN_LENGTH_LIMIT)).unwrap_or(i32::MAX)
}

/// The longest SQL text in bytes: `max_sql_chars` UTF-8 characters (checked first, with a
/// clearer message), but at least 1 MiB, since SQLite also parses the stored schema with it.
fn sql_limit(max_sql_chars: usize) -> i32 {
    i32::try_from(max_sql_chars.saturating_mul(4).max(MIN_LENGTH_LIMIT)).unwrap_or(i32::MAX)
}

/// Stops the statements of a connection from any thread: the connection's progress handler
/// interrupts whatever runs once this is raised.
#[derive(Debug, Clone, Default)]
pub(super) struct Stop(Arc<AtomicBool>);

impl Stop {
    pub(super) fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// An open, locked-down connection to one agent's scratch database.
pub(super) struct Scratch {
    conn: Connection,
    mode: Mode,
    gate: Arc<Gate>,
}

impl Scratch {
    /// From now on, interrupts any statement once `deadline` passes or `stop` is raised.
    pub(super) fn stop_at(&mut self, deadline: Instant, stop: Stop) -> Result<(), Failure> {
        self.conn.progress_handler(
            PROGRESS_STEPS,
            Some(move || stop.is_raised() || Instant::now() >= deadline),
        )?;
        Ok(())
    }

    /// An SQLite error as a failure: a refusal with the authorizer's reason if it denied
    /// something since the last look.
    fn failure(&self, error: rusqlite::Error) -> Failure {
        match self.gate.take_refusal() {
            Some(reason) => Failure::Refused(reason),
            None => Failure::Sqlite(error),
        }
    }
}

/// While alive, marks the statement as running (see `Gate::set_running`) and, for a VACUUM,
/// lets SQLite attach the one temporary database VACUUM copies through.
struct Running<'a> {
    db: &'a Scratch,
    vacuum: bool,
}

impl<'a> Running<'a> {
    fn start(db: &'a Scratch, vacuum: bool) -> Result<Self, Failure> {
        if vacuum {
            db.conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 1)?;
        }
        db.gate.set_running(true);
        Ok(Self { db, vacuum })
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.db.gate.set_running(false);
        if self.vacuum {
            // Cannot fail for a valid limit; the connection is closed after the call anyway.
            let _ = self.db.conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0);
        }
    }
}

/// What went wrong, beside SQLite's own errors: a refusal whose message says what to change.
#[derive(Debug)]
pub(super) enum Failure {
    Refused(String),
    Sqlite(rusqlite::Error),
    Io(std::io::Error),
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Self {
        Failure::Sqlite(error)
    }
}

/// What one statement did.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    /// True if rows were left out because of `max_rows` or `max_result_bytes`.
    pub truncated: bool,
    pub rows_affected: u64,
    pub last_insert_rowid: i64,
}

/// `<data_dir>/scratch/<hex SHA-256 of the agent id>.db`: a file name no agent id can steer.
pub(super) fn path_for(data_dir: &Path, agent_id: &str) -> PathBuf {
    let digest = Sha256::digest(agent_id.as_bytes());
    let name = hex::encode(digest);
    data_dir.join("scratch").join(format!("{name}.db"))
}

/// Opens (creating if needed) the database at `path`, locked down for agent SQL: the authorizer
/// refuses ATTACH, DETACH, PRAGMAs off the allow-list, `load_extension` and (for queries) every
/// write; no database can be attached; values, statements and expressions are bounded; the
/// schema is untrusted; the size is capped; and for queries nothing can be written at all.
pub(super) fn open(path: &Path, mode: Mode, limits: &Limits) -> Result<Scratch, Failure> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Failure::Io)?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(limits.busy_timeout)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_CREATE, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_ATTACH_WRITE, false)?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    let page_size: i64 = conn.pragma_query_value(None, "page_size", |row| row.get(0))?;
    let max_pages = i64::try_from(limits.max_db_bytes / page_size.max(512) as u64)
        .unwrap_or(i64::MAX)
        .max(1);
    // Setting it answers with the value in force (never below the current size).
    conn.pragma_update_and_check(None, "max_page_count", max_pages, |_| Ok(()))?;
    conn.pragma_update_and_check(Some("temp"), "max_page_count", max_pages, |_| Ok(()))?;
    if mode == Mode::Query {
        conn.pragma_update(None, "query_only", "ON")?;
    }
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, value_limit(limits.max_result_bytes))?;
    conn.set_limit(Limit::SQLITE_LIMIT_SQL_LENGTH, sql_limit(limits.max_sql_chars))?;
    conn.set_limit(Limit::SQLITE_LIMIT_EXPR_DEPTH, MAX_EXPR_DEPTH)?;
    conn.set_limit(Limit::SQLITE_LIMIT_COMPOUND_SELECT, MAX_COMPOUND_SELECT)?;
    // Last, so that the settings above are not themselves refused.
    let gate = Arc::new(Gate::new(mode));
    let authorizer = Arc::clone(&gate);
    conn.authorizer(Some(move |context: AuthContext<'_>| authorizer.authorize(context)))?;
    Ok(Scratch { conn, mode, gate })
}

/// Runs one statement with its parameters on `db` and collects what it returns, within
/// `limits`.
pub(super) fn run(db: &Scratch, sql: &str, params: Vec<SqlValue>, limits: &Limits) -> Result<Outcome, Failure> {
    let mode = db.mode;
    db.gate.take_refusal();
    let mut batch = Batch::new(&db.conn, sql);
    let mut statement = match batch.next() {
        Ok(Some(statement)) => statement,
        Ok(None) => {
            return Err(Failure::Refused(
                "`sql` holds no statement (only blanks or comments)".into(),
            ));
        }
        Err(error) => return Err(db.failure(error)),
    };
    // Anything after the first statement but blanks and comments is a second statement, even
    // one that SQLite could not compile (the authorizer's reason for that one does not matter).
    if !matches!(batch.next(), Ok(None)) {
        db.gate.take_refusal();
        return Err(Failure::Refused(
            "`sql` must hold exactly one statement; send each further statement in its own call".into(),
        ));
    }
    match (mode, statement.readonly()) {
        (Mode::Query, false) => {
            return Err(Failure::Refused(QUERY_ONLY_READS.into()));
        }
        (Mode::Exec, true) => {
            return Err(Failure::Refused(
                "this statement changes nothing; use agentos.db_query to read (agentos.db_exec is for \
                 CREATE, INSERT, UPDATE, DELETE, ALTER, DROP, ...)"
                    .into(),
            ));
        }
        _ => {}
    }
    let expected = statement.parameter_count();
    if expected != params.len() {
        return Err(Failure::Refused(format!(
            "the statement has {expected} parameter placeholder(s) (?, ?NNN, :name) but `params` has {} value(s); \
             pass one value per placeholder, in order",
            params.len()
        )));
    }
    for (index, value) in params.into_iter().enumerate() {
        statement.raw_bind_parameter(index + 1, value)?;
    }
    let running = Running::start(db, mode == Mode::Exec && guard::is_vacuum(sql))?;
    let mut outcome = collect(&mut statement, mode, limits).map_err(|error| db.failure(error))?;
    drop(running);
    drop(statement);
    if mode == Mode::Exec {
        outcome.rows_affected = db.conn.changes();
        outcome.last_insert_rowid = db.conn.last_insert_rowid();
    }
    Ok(outcome)
}

/// Steps a bound statement to its end, keeping the rows `limits` allow.
fn collect(statement: &mut Statement<'_>, mode: Mode, limits: &Limits) -> rusqlite::Result<Outcome> {
    let columns: Vec<String> = statement.column_names().map(str::to_owned).collect();
    let mut outcome = Outcome {
        columns,
        ..Outcome::default()
    };
    let mut result_bytes = 0usize;
    let mut rows = statement.raw_query();
    while let Some(row) = rows.next()? {
        if outcome.truncated {
            // A changing statement (RETURNING) must still run to its end; its rows are dropped.
            continue;
        }
        let count = outcome.columns.len();
        let mut values = Vec::with_capacity(count);
        for index in 0..count {
            let (value, size) = to_json(row.get_ref(index)?);
            result_bytes = result_bytes.saturating_add(size + 1);
            values.push(value);
        }
        if outcome.rows.len() >= limits.max_rows || result_bytes > limits.max_result_bytes {
            outcome.truncated = true;
            if mode == Mode::Query {
                break;
            }
            continue;
        }
        outcome.rows.push(values);
    }
    Ok(outcome)
}

/// A JSON parameter as an SQLite value; `index` names it in the error.
pub(super) fn to_sql(index: usize, value: Value) -> Result<SqlValue, String> {
    Ok(match value {
        Value::Null => SqlValue::Null,
        Value::Bool(flag) => SqlValue::Integer(i64::from(flag)),
        Value::Number(number) => match number.as_i64() {
            Some(integer) => SqlValue::Integer(integer),
            None => SqlValue::Real(number.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(text) => SqlValue::Text(text),
        Value::Object(object) if object.len() == 1 && object.contains_key(BLOB_KEY) => {
            let Some(Value::String(encoded)) = object.get(BLOB_KEY) else {
                return Err(format!("`params[{index}].{BLOB_KEY}` must be a string of base64"));
            };
            let bytes = STANDARD
                .decode(encoded.as_bytes())
                .map_err(|e| format!("`params[{index}].{BLOB_KEY}` is not valid standard base64: {e}"))?;
            SqlValue::Blob(bytes)
        }
        Value::Array(_) | Value::Object(_) => {
            return Err(format!(
                "`params[{index}]` is an array or object; SQLite takes numbers, strings, booleans, null, or \
                 {{\"{BLOB_KEY}\": \"...\"}} for a blob. To store JSON, pass it as a string"
            ));
        }
    })
}

/// An SQLite value as JSON, with the approximate size of its JSON text. Text that is not UTF-8
/// and blobs become `{"$base64": "..."}`; infinities become strings.
pub(super) fn to_json(value: ValueRef<'_>) -> (Value, usize) {
    match value {
        ValueRef::Null => (Value::Null, 4),
        ValueRef::Integer(integer) => (json!(integer), 20),
        ValueRef::Real(real) => match serde_json::Number::from_f64(real) {
            Some(number) => (Value::Number(number), 24),
            None if real.is_nan() => (Value::String("NaN".into()), 5),
            None if real > 0.0 => (Value::String("Infinity".into()), 10),
            None => (Value::String("-Infinity".into()), 11),
        },
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => (Value::String(text.to_owned()), text.len() + 2),
            Err(_) => blob(bytes),
        },
        ValueRef::Blob(bytes) => blob(bytes),
    }
}

fn blob(bytes: &[u8]) -> (Value, usize) {
    let encoded = STANDARD.encode(bytes);
    let size = encoded.len() + BLOB_KEY.len() + 8;
    let mut object = Map::new();
    object.insert(BLOB_KEY.to_owned(), Value::String(encoded));
    (Value::Object(object), size)
}

/// Whether an SQLite error has this code.
pub(super) fn has_code(error: &rusqlite::Error, code: ErrorCode) -> bool {
    error.sqlite_error_code() == Some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_rows: 1000,
            max_result_bytes: 1 << 20,
            max_db_bytes: 1 << 20,
            busy_timeout: Duration::from_secs(1),
            max_sql_chars: 100_000,
        }
    }

    fn exec(db: &Scratch, sql: &str) -> Outcome {
        run(db, sql, Vec::new(), &limits()).unwrap()
    }

    /// Runs `sql` on `db` with the textual guard bypassed and returns the refusal's message.
    fn refused(db: &Scratch, sql: &str) -> String {
        match run(db, sql, Vec::new(), &limits()) {
            Err(Failure::Refused(message)) => message,
            other => panic!("{sql}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn file_names_are_hashes_of_the_agent_id() {
        let path = path_for(Path::new("/data"), "../../etc/passwd");
        assert_eq!(path.parent().unwrap(), Path::new("/data/scratch"));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(name.len(), 64 + 3);
        assert!(name.ends_with(".db") && name[..64].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(path_for(Path::new("/d"), "a"), path_for(Path::new("/d"), "b"));
    }

    #[test]
    fn values_round_trip_between_json_and_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let db = open(&path, Mode::Exec, &limits()).unwrap();
        exec(&db, "CREATE TABLE t (v)");
        let inputs = [
            json!(null),
            json!(true),
            json!(-7),
            json!(2.5),
            json!("héllo"),
            json!({"$base64": "AP8="}),
        ];
        for (i, input) in inputs.iter().enumerate() {
            let value = to_sql(i, input.clone()).unwrap();
            let outcome = run(&db, "INSERT INTO t VALUES (?)", vec![value], &limits()).unwrap();
            assert_eq!((outcome.rows_affected, outcome.last_insert_rowid), (1, i as i64 + 1));
        }
        let reader = open(&path, Mode::Query, &limits()).unwrap();
        let read = run(&reader, "SELECT v FROM t ORDER BY rowid", Vec::new(), &limits()).unwrap();
        let values: Vec<Value> = read.rows.into_iter().map(|mut row| row.remove(0)).collect();
        assert_eq!(
            values,
            [
                json!(null),
                json!(1),
                json!(-7),
                json!(2.5),
                json!("héllo"),
                json!({"$base64": "AP8="})
            ]
        );
        assert_eq!(to_json(ValueRef::Real(f64::INFINITY)).0, json!("Infinity"));
        assert_eq!(to_json(ValueRef::Text(&[0xff])).0, json!({"$base64": "/w=="}));
        assert!(to_sql(3, json!([1])).unwrap_err().contains("`params[3]`"));
        assert!(to_sql(0, json!({"$base64": "!"})).unwrap_err().contains("base64"));
        assert!(matches!(to_sql(0, json!(u64::MAX)).unwrap(), SqlValue::Real(_)));
    }

    #[test]
    fn sqlite_itself_refuses_what_the_guard_would_catch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let db = open(&path, Mode::Exec, &limits()).unwrap();
        exec(&db, "CREATE TABLE t (v)");
        let outside = dir.path().join("outside.db");
        let outside_sql = outside.display().to_string().replace('\'', "''");

        // ATTACH and DETACH, however the name is written.
        let attach = refused(&db, &format!("ATTACH '{outside_sql}' AS o"));
        assert!(attach.contains("ATTACH is not available"), "{attach}");
        assert!(refused(&db, "ATTACH '' || ':memory:' AS o").contains("ATTACH is not available"));
        assert!(refused(&db, "ATTACH '' AS o").contains("ATTACH is not available"));
        assert!(refused(&db, "DETACH o").contains("DETACH is not available"));
        assert!(!outside.exists(), "ATTACH created a file");

        // VACUUM INTO writes a file on the host: SQLite refuses its ATTACH while it runs, both
        // through `run` and on the bare connection.
        let vacuum_into = refused(&db, &format!("VACUUM INTO '{outside_sql}'"));
        assert!(vacuum_into.contains("VACUUM INTO is not available"), "{vacuum_into}");
        let bare = db
            .conn
            .execute_batch(&format!("VACUUM INTO '{outside_sql}'"))
            .unwrap_err();
        assert!(has_code(&bare, ErrorCode::AuthorizationForStatementDenied), "{bare}");
        assert!(!outside.exists(), "VACUUM INTO wrote a file");
        // Plain VACUUM still works, and afterwards nothing can be attached again.
        exec(&db, "VACUUM");
        assert_eq!(db.conn.limit(Limit::SQLITE_LIMIT_ATTACHED).unwrap(), 0);
        assert!(refused(&db, "ATTACH '' AS o").contains("ATTACH is not available"));

        // PRAGMAs: only the read-only allow-list, and the bare ones only without a value.
        for (sql, says) in [
            ("PRAGMA user_version = 7", "PRAGMA user_version can only be read"),
            ("PRAGMA main.max_page_count = 999999999", "can only be read"),
            ("PRAGMA writable_schema = ON", "PRAGMA writable_schema is not available"),
            ("PRAGMA journal_mode = DELETE", "PRAGMA journal_mode is not available"),
            ("PRAGMA query_only = OFF", "PRAGMA query_only is not available"),
        ] {
            let message = refused(&db, sql);
            assert!(message.contains(says), "{sql}: {message}");
        }
        // A `pragma_*` function runs its PRAGMA while the statement runs; that is checked too.
        let reader = open(&path, Mode::Query, &limits()).unwrap();
        let listed = refused(&reader, "SELECT * FROM pragma_database_list");
        assert!(listed.contains("PRAGMA database_list is not available"), "{listed}");
        for sql in [
            "PRAGMA user_version",
            "PRAGMA table_info(t)",
            "SELECT * FROM pragma_table_info('t')",
            "PRAGMA integrity_check",
        ] {
            run(&reader, sql, Vec::new(), &limits()).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        }

        // Extensions and transaction control.
        let load = refused(&reader, "SELECT load_extension('/tmp/evil.so')");
        assert!(load.contains("load_extension is not available"), "{load}");
        assert!(refused(&reader, "BEGIN IMMEDIATE").contains("own transaction"));

        // A query connection refuses every write while compiling it, even on the bare
        // connection, where the readonly check of `run` does not apply.
        for sql in [
            "INSERT INTO t VALUES (1)",
            "UPDATE t SET v = 2",
            "DELETE FROM t",
            "CREATE TABLE u (v)",
            "CREATE TEMP TABLE u (v)",
            "DROP TABLE t",
            "ALTER TABLE t ADD COLUMN w",
            "CREATE INDEX i ON t (v)",
            "CREATE VIEW w AS SELECT 1",
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t; END",
            "ANALYZE",
        ] {
            assert_eq!(refused(&reader, sql), QUERY_ONLY_READS, "{sql}");
            let error = reader.conn.execute(sql, []).unwrap_err();
            assert!(
                has_code(&error, ErrorCode::AuthorizationForStatementDenied),
                "{sql}: {error}"
            );
        }

        // None of it changed anything.
        let count = run(&reader, "SELECT count(*) FROM t", Vec::new(), &limits()).unwrap();
        assert_eq!(count.rows, vec![vec![json!(0)]]);
        let version = run(&reader, "PRAGMA user_version", Vec::new(), &limits()).unwrap();
        assert_eq!(version.rows, vec![vec![json!(0)]]);
        let tables = run(&reader, "SELECT name FROM sqlite_schema", Vec::new(), &limits()).unwrap();
        assert_eq!(tables.rows, vec![vec![json!("t")]]);
    }

    #[test]
    fn sqlite_limits_bound_what_a_statement_may_build() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir.path().join("x.db"), Mode::Query, &limits()).unwrap();
        let limit = |which| db.conn.limit(which).unwrap();
        assert_eq!(limit(Limit::SQLITE_LIMIT_ATTACHED), 0);
        assert_eq!(limit(Limit::SQLITE_LIMIT_LENGTH), 1 << 20);
        // 100 000 characters are at most 400 000 bytes, under the 1 MiB floor.
        assert_eq!(limit(Limit::SQLITE_LIMIT_SQL_LENGTH), 1 << 20);
        assert_eq!(sql_limit(1_000_000), 4_000_000);
        assert_eq!(limit(Limit::SQLITE_LIMIT_EXPR_DEPTH), MAX_EXPR_DEPTH);
        assert_eq!(limit(Limit::SQLITE_LIMIT_COMPOUND_SELECT), MAX_COMPOUND_SELECT);
        assert_eq!(value_limit(10 << 20), 10 << 20);
        assert_eq!(value_limit(10), 1 << 20);
        assert_eq!(sql_limit(usize::MAX), i32::MAX);

        let sql = |sql: &str| run(&db, sql, Vec::new(), &limits());
        let big = sql("SELECT length(zeroblob(2000000))");
        assert!(
            matches!(&big, Err(Failure::Sqlite(e)) if has_code(e, ErrorCode::TooBig)),
            "{big:?}"
        );
        let deep = format!("SELECT {}", vec!["1"; 600].join(" + "));
        assert!(matches!(sql(&deep), Err(Failure::Sqlite(e)) if e.to_string().contains("too large")));
        let compound = vec!["SELECT 1"; 150].join(" UNION ALL ");
        assert!(matches!(sql(&compound), Err(Failure::Sqlite(e)) if e.to_string().contains("compound")));
        let values = format!("SELECT count(*) FROM (VALUES {})", vec!["(1)"; 150].join(", "));
        assert_eq!(sql(&values).unwrap().rows, vec![vec![json!(150)]]);
    }

    #[test]
    fn the_progress_handler_stops_statements_at_the_deadline_or_when_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";
        let interrupted = |result: &Result<Outcome, Failure>| matches!(result, Err(Failure::Sqlite(e)) if has_code(e, ErrorCode::OperationInterrupted));

        // The deadline passes.
        let mut db = open(&path, Mode::Query, &limits()).unwrap();
        let started = Instant::now();
        db.stop_at(started + Duration::from_millis(200), Stop::default())
            .unwrap();
        let result = run(&db, endless, Vec::new(), &limits());
        let took = started.elapsed();
        assert!(interrupted(&result), "{result:?}");
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "stopped after {took:?}"
        );

        // The call is cancelled from another thread long before the deadline.
        let mut db = open(&path, Mode::Query, &limits()).unwrap();
        let stop = Stop::default();
        db.stop_at(Instant::now() + Duration::from_secs(60), stop.clone())
            .unwrap();
        let started = Instant::now();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            stop.raise();
        });
        let result = run(&db, endless, Vec::new(), &limits());
        canceller.join().unwrap();
        assert!(interrupted(&result), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "stopped after {:?}",
            started.elapsed()
        );

        // A statement that ends in time keeps its result.
        let mut db = open(&path, Mode::Query, &limits()).unwrap();
        db.stop_at(Instant::now() + Duration::from_secs(60), Stop::default())
            .unwrap();
        let finite = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) \
                      SELECT count(*) FROM c";
        assert_eq!(
            run(&db, finite, Vec::new(), &limits()).unwrap().rows,
            vec![vec![json!(100000)]]
        );
    }

    #[test]
    fn size_rows_and_statement_shape_are_limited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let small = Limits {
            max_rows: 2,
            max_db_bytes: 64 * 1024,
            ..limits()
        };
        let db = open(&path, Mode::Exec, &small).unwrap();
        run(&db, "CREATE TABLE t (v)", Vec::new(), &small).unwrap();
        let full = run(&db, "INSERT INTO t VALUES (zeroblob(200000))", Vec::new(), &small);
        assert!(
            matches!(&full, Err(Failure::Sqlite(e)) if has_code(e, ErrorCode::DiskFull)),
            "{full:?}"
        );
        let returning = run(
            &db,
            "INSERT INTO t SELECT value FROM generate_series(1, 5) RETURNING v",
            Vec::new(),
            &small,
        );
        // generate_series may be absent from the build; fall back to a recursive CTE.
        let returning = match returning {
            Ok(outcome) => outcome,
            Err(_) => run(
                &db,
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) \
                 INSERT INTO t SELECT i FROM n RETURNING v",
                Vec::new(),
                &small,
            )
            .unwrap(),
        };
        assert_eq!(
            (returning.rows.len(), returning.truncated, returning.rows_affected),
            (2, true, 5)
        );
        let reader = open(&path, Mode::Query, &small).unwrap();
        let read = run(&reader, "SELECT v FROM t", Vec::new(), &small).unwrap();
        assert_eq!((read.rows.len(), read.truncated), (2, true));
        for two in [
            "SELECT 1; SELECT 2",
            "SELECT 1; DELETE FROM t",
            "SELECT 1; ATTACH 'x' AS x",
            "SELECT 1; SELEC",
        ] {
            let refused = run(&reader, two, Vec::new(), &small);
            assert!(
                matches!(&refused, Err(Failure::Refused(m)) if m.contains("exactly one statement")),
                "{two}: {refused:?}"
            );
        }
        let empty = run(&reader, " -- nothing\n/* at all */ ;", Vec::new(), &small);
        assert!(matches!(empty, Err(Failure::Refused(m)) if m.contains("holds no statement")));
        let one = run(&reader, "SELECT 1; -- done\n", Vec::new(), &small).unwrap();
        assert_eq!(one.rows, vec![vec![json!(1)]]);
        let params = run(&reader, "SELECT ?, ?", vec![SqlValue::Null], &small);
        assert!(matches!(params, Err(Failure::Refused(m)) if m.contains("2 parameter")));
        let write = run(&reader, "DELETE FROM t", Vec::new(), &small);
        assert!(matches!(write, Err(Failure::Refused(m)) if m.contains("agentos.db_exec")));
        let read_in_exec = run(&db, "SELECT 1", Vec::new(), &small);
        assert!(matches!(read_in_exec, Err(Failure::Refused(m)) if m.contains("agentos.db_query")));
    }
}

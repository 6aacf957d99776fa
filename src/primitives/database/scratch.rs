//! One agent's scratch database: where its file lives, how a connection to it is locked down,
//! and how one statement runs on it, with values mapped between JSON and SQLite. Everything
//! here blocks; callers run it off the async threads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rusqlite::config::DbConfig;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

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
    let name: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    data_dir.join("scratch").join(format!("{name}.db"))
}

/// Opens (creating if needed) the database at `path`, locked down for agent SQL: no ATTACH can
/// create or write files, the schema is untrusted, the size is capped, and for queries nothing
/// can be written at all.
pub(super) fn open(path: &Path, mode: Mode, limits: &Limits) -> Result<Connection, Failure> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Failure::Io)?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
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
    Ok(conn)
}

/// Runs one statement with its parameters and collects what it returns, within `limits`.
pub(super) fn run(
    conn: &Connection,
    sql: &str,
    params: Vec<SqlValue>,
    mode: Mode,
    limits: &Limits,
) -> Result<Outcome, Failure> {
    let mut statement = conn.prepare(sql).map_err(|error| match error {
        rusqlite::Error::MultipleStatement => Failure::Refused(
            "`sql` must hold exactly one statement; send each further statement in its own call".into(),
        ),
        rusqlite::Error::Empty => Failure::Refused("`sql` holds no statement (only blanks or comments)".into()),
        error => Failure::Sqlite(error),
    })?;
    match (mode, statement.readonly()) {
        (Mode::Query, false) => {
            return Err(Failure::Refused(
                "agentos.db_query runs only statements that read (SELECT, read-only PRAGMA, EXPLAIN); \
                 use agentos.db_exec for statements that change the database"
                    .into(),
            ));
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
    drop(rows);
    if mode == Mode::Exec {
        outcome.rows_affected = conn.changes();
        outcome.last_insert_rowid = conn.last_insert_rowid();
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
        }
    }

    fn exec(conn: &Connection, sql: &str) -> Outcome {
        run(conn, sql, Vec::new(), Mode::Exec, &limits()).unwrap()
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
        let conn = open(&dir.path().join("x.db"), Mode::Exec, &limits()).unwrap();
        exec(&conn, "CREATE TABLE t (v)");
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
            let outcome = run(&conn, "INSERT INTO t VALUES (?)", vec![value], Mode::Exec, &limits()).unwrap();
            assert_eq!((outcome.rows_affected, outcome.last_insert_rowid), (1, i as i64 + 1));
        }
        let read = run(
            &conn,
            "SELECT v FROM t ORDER BY rowid",
            Vec::new(),
            Mode::Query,
            &limits(),
        )
        .unwrap();
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
    fn the_connection_refuses_what_the_guard_might_miss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db");
        let conn = open(&path, Mode::Exec, &limits()).unwrap();
        exec(&conn, "CREATE TABLE t (v)");
        // ATTACH cannot create a file, nor write one that exists.
        let outside = dir.path().join("outside.db");
        let error = conn.execute_batch(&format!("ATTACH '{}' AS o", outside.display()));
        assert!(error.is_err() && !outside.exists(), "ATTACH created a file");
        // VACUUM INTO, though, writes wherever it is told: only the guard stops it.
        assert!(super::super::guard::check(&format!("VACUUM INTO '{}'", outside.display())).is_err());
        Connection::open(&outside)
            .unwrap()
            .execute_batch("CREATE TABLE o (v)")
            .unwrap();
        conn.execute_batch(&format!("ATTACH '{}' AS o", outside.display()))
            .unwrap();
        let write = run(&conn, "INSERT INTO o.o VALUES (1)", Vec::new(), Mode::Exec, &limits());
        assert!(write.is_err(), "attached files are read-only");
        // Extensions stay off.
        let load = run(&conn, "SELECT load_extension('x')", Vec::new(), Mode::Query, &limits());
        assert!(matches!(load, Err(Failure::Sqlite(_))), "{load:?}");
        // A query connection cannot write even if a statement claims to be read-only.
        let reader = open(&path, Mode::Query, &limits()).unwrap();
        let error = reader.execute("INSERT INTO t VALUES (1)", []).unwrap_err();
        assert!(has_code(&error, ErrorCode::ReadOnly), "{error}");
    }

    #[test]
    fn size_rows_and_statement_shape_are_limited() {
        let dir = tempfile::tempdir().unwrap();
        let small = Limits {
            max_rows: 2,
            max_db_bytes: 64 * 1024,
            ..limits()
        };
        let conn = open(&dir.path().join("x.db"), Mode::Exec, &small).unwrap();
        run(&conn, "CREATE TABLE t (v)", Vec::new(), Mode::Exec, &small).unwrap();
        let full = run(
            &conn,
            "INSERT INTO t VALUES (zeroblob(200000))",
            Vec::new(),
            Mode::Exec,
            &small,
        );
        assert!(
            matches!(&full, Err(Failure::Sqlite(e)) if has_code(e, ErrorCode::DiskFull)),
            "{full:?}"
        );
        let returning = run(
            &conn,
            "INSERT INTO t SELECT value FROM generate_series(1, 5) RETURNING v",
            Vec::new(),
            Mode::Exec,
            &small,
        );
        // generate_series may be absent from the build; fall back to a recursive CTE.
        let returning = match returning {
            Ok(outcome) => outcome,
            Err(_) => run(
                &conn,
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) \
                 INSERT INTO t SELECT i FROM n RETURNING v",
                Vec::new(),
                Mode::Exec,
                &small,
            )
            .unwrap(),
        };
        assert_eq!(
            (returning.rows.len(), returning.truncated, returning.rows_affected),
            (2, true, 5)
        );
        let read = run(&conn, "SELECT v FROM t", Vec::new(), Mode::Query, &small).unwrap();
        assert_eq!((read.rows.len(), read.truncated), (2, true));
        let two = run(&conn, "SELECT 1; SELECT 2", Vec::new(), Mode::Query, &small);
        assert!(matches!(two, Err(Failure::Refused(m)) if m.contains("exactly one statement")));
        let one = run(&conn, "SELECT 1; -- done\n", Vec::new(), Mode::Query, &small).unwrap();
        assert_eq!(one.rows, vec![vec![json!(1)]]);
        let params = run(&conn, "SELECT ?, ?", vec![SqlValue::Null], Mode::Query, &small);
        assert!(matches!(params, Err(Failure::Refused(m)) if m.contains("2 parameter")));
        let write = run(&conn, "DELETE FROM t", Vec::new(), Mode::Query, &small);
        assert!(matches!(write, Err(Failure::Refused(m)) if m.contains("agentos.db_exec")));
        let read_in_exec = run(&conn, "SELECT 1", Vec::new(), Mode::Exec, &small);
        assert!(matches!(read_in_exec, Err(Failure::Refused(m)) if m.contains("agentos.db_query")));
    }
}

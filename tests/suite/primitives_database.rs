//! The `agentos.db_*` tools through MCP: each agent's own SQLite scratch database.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{call, structured, text_of};
use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn failure(result: &CallToolResult) -> String {
    assert_eq!(
        result.is_error,
        Some(true),
        "expected a failure, got {}",
        text_of(result)
    );
    text_of(result)
}

fn scratch_file(data_dir: &Path, agent: &str) -> PathBuf {
    let name: String = Sha256::digest(agent.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    data_dir.join("scratch").join(format!("{name}.db"))
}

fn exec(sql: &str, params: Value) -> Value {
    json!({"sql": sql, "params": params})
}

#[tokio::test]
async fn tables_round_trip_over_mcp_in_the_agents_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;

    let created = structured(
        &call(
            &client,
            "agentos.db_exec",
            json!({"sql": "CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, score REAL, done INTEGER, data BLOB)"}),
        )
        .await,
    );
    assert_eq!(created, json!({"rowsAffected": 0, "lastInsertRowid": 0}));
    let insert = "INSERT INTO notes (title, score, done, data) VALUES (?, ?, ?, ?)";
    let first = structured(
        &call(
            &client,
            "agentos.db_exec",
            exec(insert, json!(["first", 2.5, true, {"$base64": "AAEC/w=="}])),
        )
        .await,
    );
    assert_eq!(first, json!({"rowsAffected": 1, "lastInsertRowid": 1}));
    let second = structured(
        &call(
            &client,
            "agentos.db_exec",
            exec(insert, json!(["sécond ✓", null, false, null])),
        )
        .await,
    );
    assert_eq!(second["lastInsertRowid"], 2);

    let rows = structured(
        &call(
            &client,
            "agentos.db_query",
            exec(
                "SELECT id, title, score, done, data FROM notes WHERE id >= ?1 ORDER BY id",
                json!([1]),
            ),
        )
        .await,
    );
    assert_eq!(
        rows,
        json!({
            "columns": ["id", "title", "score", "done", "data"],
            "rows": [[1, "first", 2.5, 1, {"$base64": "AAEC/w=="}], [2, "sécond ✓", null, 0, null]],
            "rowCount": 2,
            "truncated": false
        })
    );
    let returning = structured(
        &call(
            &client,
            "agentos.db_exec",
            exec("UPDATE notes SET done = 1 WHERE done = 0 RETURNING id, done", json!([])),
        )
        .await,
    );
    assert_eq!(
        returning,
        json!({"rowsAffected": 1, "lastInsertRowid": 0, "columns": ["id", "done"], "rows": [[2, 1]]})
    );
    let info = structured(&call(&client, "agentos.db_query", json!({"sql": "PRAGMA table_info(notes)"})).await);
    assert_eq!(info["rowCount"], 5);
    let aggregate = structured(
        &call(
            &client,
            "agentos.db_query",
            json!({"sql": "SELECT count(*) AS n, json_group_array(title) AS titles FROM notes"}),
        )
        .await,
    );
    assert_eq!(aggregate["rows"], json!([[2, "[\"first\",\"sécond ✓\"]"]]));
    client.cancel().await.unwrap();

    // The table lives in the agent's own file, never in agentos's database.
    let own = scratch_file(dir.path(), "owner");
    assert!(own.exists(), "{} exists", own.display());
    let main = rusqlite::Connection::open(dir.path().join("agentos.db")).unwrap();
    let in_main: i64 = main
        .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'notes'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(in_main, 0);

    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    let again = structured(
        &call(
            &client,
            "agentos.db_query",
            json!({"sql": "SELECT title FROM notes ORDER BY id"}),
        )
        .await,
    );
    assert_eq!(again["rows"], json!([["first"], ["sécond ✓"]]));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn unsafe_or_malformed_sql_is_refused_with_what_to_change() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    structured(&call(&client, "agentos.db_exec", json!({"sql": "CREATE TABLE t (v)"})).await);
    let main_db = dir.path().join("agentos.db");
    let copy = dir.path().join("copy.db");
    for (tool, args, says) in [
        (
            "agentos.db_query",
            json!({"sql": "INSERT INTO t VALUES (1)"}),
            "use agentos.db_exec",
        ),
        (
            "agentos.db_query",
            json!({"sql": "DROP TABLE t"}),
            "use agentos.db_exec",
        ),
        (
            "agentos.db_exec",
            json!({"sql": "SELECT * FROM t"}),
            "use agentos.db_query",
        ),
        (
            "agentos.db_exec",
            json!({"sql": format!("ATTACH DATABASE '{}' AS other", main_db.display())}),
            "ATTACH is not available",
        ),
        (
            "agentos.db_query",
            json!({"sql": "SELECT 1; DELETE FROM t"}),
            "exactly one statement",
        ),
        (
            "agentos.db_exec",
            json!({"sql": "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)"}),
            "exactly one statement",
        ),
        (
            "agentos.db_exec",
            json!({"sql": "PRAGMA writable_schema = ON"}),
            "PRAGMA writable_schema is not available",
        ),
        (
            "agentos.db_exec",
            json!({"sql": "PRAGMA max_page_count = 1000000000"}),
            "can only be read",
        ),
        (
            "agentos.db_query",
            json!({"sql": "SELECT * FROM pragma_database_list"}),
            "not available",
        ),
        (
            "agentos.db_query",
            json!({"sql": "SELECT load_extension('/tmp/evil.so')"}),
            "load_extension is not available",
        ),
        (
            "agentos.db_exec",
            json!({"sql": format!("VACUUM INTO '{}'", copy.display())}),
            "VACUUM INTO is not available",
        ),
        ("agentos.db_exec", json!({"sql": "BEGIN"}), "own transaction"),
        ("agentos.db_query", json!({"sql": "SELEC 1"}), "syntax error"),
        (
            "agentos.db_query",
            json!({"sql": "SELECT * FROM missing"}),
            "no such table: missing",
        ),
        (
            "agentos.db_query",
            json!({"sql": "  -- nothing here"}),
            "holds no statement",
        ),
        (
            "agentos.db_query",
            json!({"sql": "SELECT ?, ?", "params": [1]}),
            "2 parameter placeholder(s)",
        ),
        (
            "agentos.db_exec",
            json!({"sql": "INSERT INTO t VALUES (?)", "params": [[1, 2]]}),
            "`params[0]`",
        ),
        (
            "agentos.db_exec",
            json!({"sql": "INSERT INTO t VALUES (?)", "params": [{"$base64": "***"}]}),
            "`params[0].$base64`",
        ),
    ] {
        let message = failure(&call(&client, tool, args.clone()).await);
        assert!(message.contains(says), "{tool} {args}: {message}");
        assert!(
            !message.contains(&dir.path().display().to_string())
                || message.contains("ATTACH")
                || message.contains("VACUUM"),
            "no host paths leak: {message}"
        );
    }
    assert!(!copy.exists(), "VACUUM INTO wrote nothing");
    let count = structured(&call(&client, "agentos.db_query", json!({"sql": "SELECT count(*) FROM t"})).await);
    assert_eq!(count["rows"], json!([[0]]), "no refused statement changed anything");

    // What the schema rules out never reaches the tool, and the answer names the field.
    for (args, field) in [
        (json!({"sql": "SELECT 1", "limit": 5}), "`limit`"),
        (json!({"params": []}), "`sql`"),
        (json!({"sql": "SELECT 1", "params": "x"}), "`params`"),
    ] {
        let message = failure(&call(&client, "agentos.db_query", args.clone()).await);
        assert!(
            message.contains("invalid arguments") && message.contains(field),
            "{args}: {message}"
        );
    }
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn limits_from_the_config_file_apply() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agentos.toml");
    std::fs::write(
        &config,
        "[database]\nmax_rows = 3\ntimeout_ms = 300\nmax_db_bytes = 65536\nmax_sql_chars = 200\n",
    )
    .unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &["--config", config.to_str().unwrap()]).await;
    structured(&call(&client, "agentos.db_exec", json!({"sql": "CREATE TABLE t (v)"})).await);
    let filled = structured(
        &call(
            &client,
            "agentos.db_exec",
            json!({"sql": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) INSERT INTO t SELECT i FROM n"}),
        )
        .await,
    );
    assert_eq!(filled["rowsAffected"], 10);

    let page = structured(
        &call(
            &client,
            "agentos.db_query",
            json!({"sql": "SELECT v FROM t ORDER BY v"}),
        )
        .await,
    );
    assert_eq!(page["rows"], json!([[1], [2], [3]]));
    assert_eq!((&page["rowCount"], &page["truncated"]), (&json!(3), &json!(true)));
    let exact = structured(&call(&client, "agentos.db_query", json!({"sql": "SELECT v FROM t LIMIT 3"})).await);
    assert_eq!(exact["truncated"], false);

    let started = Instant::now();
    let endless = failure(
        &call(
            &client,
            "agentos.db_query",
            json!({"sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"}),
        )
        .await,
    );
    assert!(endless.contains("database.timeout_ms (300 ms)"), "{endless}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped promptly: {:?}",
        started.elapsed()
    );

    let big = failure(
        &call(
            &client,
            "agentos.db_exec",
            json!({"sql": "INSERT INTO t VALUES (zeroblob(100000))"}),
        )
        .await,
    );
    assert!(big.contains("database.max_db_bytes (65536 bytes)"), "{big}");
    let long = failure(
        &call(
            &client,
            "agentos.db_query",
            json!({"sql": format!("SELECT '{}'", "x".repeat(200))}),
        )
        .await,
    );
    assert!(long.contains("database.max_sql_chars allows 200"), "{long}");

    // After all of that the database is intact and usable.
    let count = structured(
        &call(
            &client,
            "agentos.db_query",
            json!({"sql": "SELECT count(*), sum(v) FROM t"}),
        )
        .await,
    );
    assert_eq!(count["rows"], json!([[10, 55]]));
    client.cancel().await.unwrap();
}

async fn as_agent(app: &agentos::app::App, agent: &str, tool: &str, input: Value) -> CallToolResult {
    common::call_as(app, agent, tool, input)
        .await
        .unwrap_or_else(|e| panic!("{agent} {tool}: {e}"))
}

#[tokio::test]
async fn agents_have_separate_databases() {
    let dir = tempfile::tempdir().unwrap();
    let app = common::in_process_app(dir.path()).await;
    let sql = |sql: &str| json!({"sql": sql});
    structured(&as_agent(&app, "agent-a", "agentos.db_exec", sql("CREATE TABLE secrets (v TEXT)")).await);
    structured(
        &as_agent(
            &app,
            "agent-a",
            "agentos.db_exec",
            sql("INSERT INTO secrets VALUES ('A only')"),
        )
        .await,
    );

    let read = failure(&as_agent(&app, "agent-b", "agentos.db_query", sql("SELECT v FROM secrets")).await);
    assert!(read.contains("no such table: secrets"), "{read}");
    let tables = structured(
        &as_agent(
            &app,
            "agent-b",
            "agentos.db_query",
            sql("SELECT name FROM sqlite_schema"),
        )
        .await,
    );
    assert_eq!(tables["rows"], json!([]), "B's database is empty");
    let write = failure(&as_agent(&app, "agent-b", "agentos.db_exec", sql("DELETE FROM secrets")).await);
    assert!(write.contains("no such table: secrets"), "{write}");

    // B's table of the same name is B's alone; dropping it leaves A's.
    structured(&as_agent(&app, "agent-b", "agentos.db_exec", sql("CREATE TABLE secrets (v TEXT)")).await);
    structured(
        &as_agent(
            &app,
            "agent-b",
            "agentos.db_exec",
            sql("INSERT INTO secrets VALUES ('B only')"),
        )
        .await,
    );
    let b = structured(&as_agent(&app, "agent-b", "agentos.db_query", sql("SELECT v FROM secrets")).await);
    assert_eq!(b["rows"], json!([["B only"]]));
    structured(&as_agent(&app, "agent-b", "agentos.db_exec", sql("DROP TABLE secrets")).await);
    let a = structured(&as_agent(&app, "agent-a", "agentos.db_query", sql("SELECT v FROM secrets")).await);
    assert_eq!(a["rows"], json!([["A only"]]));

    // Two files, named by a hash of each agent's id.
    assert!(scratch_file(dir.path(), "agent-a").exists());
    assert!(scratch_file(dir.path(), "agent-b").exists());
    let attach = failure(
        &as_agent(
            &app,
            "agent-b",
            "agentos.db_exec",
            sql(&format!(
                "ATTACH '{}' AS a",
                scratch_file(dir.path(), "agent-a").display()
            )),
        )
        .await,
    );
    assert!(attach.contains("ATTACH is not available"), "{attach}");
}

#[tokio::test]
async fn sqlite_enforced_limits_leave_ordinary_maintenance_working() {
    let dir = tempfile::tempdir().unwrap();
    let (client, _, _) = common::stdio_client(dir.path(), &[]).await;
    structured(&call(&client, "agentos.db_exec", json!({"sql": "CREATE TABLE t (v)"})).await);
    structured(
        &call(
            &client,
            "agentos.db_exec",
            exec("INSERT INTO t VALUES (?), (?)", json!(["a", {"$base64": "AAE="}])),
        )
        .await,
    );
    // Plain VACUUM copies the database through a temporary one that SQLite attaches itself;
    // the authorizer lets exactly that through.
    let vacuum = structured(&call(&client, "agentos.db_exec", json!({"sql": "VACUUM"})).await);
    assert_eq!(vacuum["rowsAffected"], 0);
    // A pragma_* function runs its PRAGMA inside SQLite, where the allow-list applies too.
    let columns = structured(
        &call(
            &client,
            "agentos.db_query",
            json!({"sql": "SELECT name FROM pragma_table_info('t')"}),
        )
        .await,
    );
    assert_eq!(columns["rows"], json!([["v"]]));
    let version = structured(&call(&client, "agentos.db_query", json!({"sql": "PRAGMA user_version"})).await);
    assert_eq!(version["rows"], json!([[0]]));
    // Values are bounded by database.max_result_bytes (10 MiB by default).
    let big = failure(
        &call(
            &client,
            "agentos.db_query",
            json!({"sql": "SELECT length(zeroblob(20000000))"}),
        )
        .await,
    );
    assert!(big.contains("at most 10485760 bytes"), "{big}");
    let deep = failure(
        &call(
            &client,
            "agentos.db_query",
            json!({"sql": format!("SELECT {}", vec!["1"; 600].join(" + "))}),
        )
        .await,
    );
    assert!(deep.contains("Expression tree is too large"), "{deep}");
    let rows = structured(&call(&client, "agentos.db_query", json!({"sql": "SELECT count(*) FROM t"})).await);
    assert_eq!(rows["rows"], json!([[2]]), "VACUUM kept the rows");
    client.cancel().await.unwrap();
}

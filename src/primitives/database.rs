//! Database: a per-agent SQLite scratch database for the agent's own tables.
//!
//! Each agent has its own file, `<data_dir>/scratch/<sha256 of the agent id>.db`, apart from
//! agentos's own database. Every call opens it afresh, runs one statement off the async threads
//! and closes it; a statement that outlives `database.timeout_ms`, the call's deadline or the
//! client's patience is stopped by SQLite's progress handler.
//!
//! What an agent may run is checked twice: by the textual guard (`guard`), whose messages say
//! what to do instead, and authoritatively inside SQLite by an authorizer, limits and
//! connection settings (`authorizer`, `scratch`).

mod authorizer;
mod guard;
mod scratch;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::ErrorCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::scratch::{Failure, Limits, Mode, Outcome, Stop};
use super::Services;
use crate::config::DatabaseConfig;
use crate::registry::{CallContext, Hints, Tool, ToolBuilder, ToolFailure};

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SqlArgs {
    /// One SQLite statement. Use `?` (or `?1`, `:name`) placeholders for values instead of
    /// writing them into the text.
    #[schemars(length(min = 1))]
    sql: String,
    /// Values for the placeholders, in order: numbers, strings, booleans (stored as 1/0), null,
    /// or `{"$base64": "..."}` for a blob.
    #[serde(default)]
    params: Vec<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct QueryResult {
    /// The result's column names, in order.
    columns: Vec<String>,
    /// The rows, each an array of values in column order: numbers, strings, null, or
    /// `{"$base64": "..."}` for a blob.
    rows: Vec<Vec<Value>>,
    /// How many rows are in `rows`.
    row_count: usize,
    /// True if more rows matched than one call returns; narrow the query or page with
    /// LIMIT/OFFSET.
    truncated: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ExecResult {
    /// Rows inserted, updated or deleted by the statement (0 for CREATE, DROP, ...).
    rows_affected: u64,
    /// The rowid of the last row inserted by this statement; 0 if it inserted none.
    last_insert_rowid: i64,
    /// Column names of a RETURNING clause; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    columns: Option<Vec<String>>,
    /// Rows of a RETURNING clause; absent without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    rows: Option<Vec<Vec<Value>>>,
    /// True if a RETURNING clause produced more rows than one call returns (all were applied).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

/// Stops the running statement when dropped, also when the call is abandoned (its future
/// dropped), so no statement runs on unobserved. A no-op once the statement has ended.
struct StopOnDrop(Stop);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.raise();
    }
}

/// Checks and runs one statement on the caller's scratch database.
async fn run_statement(
    services: &Services,
    ctx: &CallContext,
    args: SqlArgs,
    mode: Mode,
) -> Result<Outcome, ToolFailure> {
    let config = &services.config.database;
    let chars = args.sql.chars().count();
    if chars > config.max_sql_chars {
        return Err(ToolFailure::new(format!(
            "`sql` is {chars} characters; database.max_sql_chars allows {}. Send shorter statements, with \
             values as `params`",
            config.max_sql_chars
        )));
    }
    guard::check(&args.sql).map_err(ToolFailure::new)?;
    let params = args
        .params
        .into_iter()
        .enumerate()
        .map(|(index, value)| scratch::to_sql(index, value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ToolFailure::new)?;
    let configured = Duration::from_millis(config.timeout_ms);
    let timeout = configured.min(ctx.remaining());
    let limits = Limits {
        max_rows: config.max_rows,
        max_result_bytes: config.max_result_bytes,
        max_db_bytes: config.max_db_bytes,
        busy_timeout: timeout,
        max_sql_chars: config.max_sql_chars,
    };
    let path = scratch::path_for(&services.config.data_dir, &ctx.caller.agent_id);
    let stop = Stop::default();
    let _stop_on_drop = StopOnDrop(stop.clone());
    let deadline = Instant::now() + timeout;
    let sql = args.sql;
    let stops_it = stop.clone();
    let mut task = tokio::task::spawn_blocking(move || {
        let mut db = scratch::open(&path, mode, &limits)?;
        // SQLite's progress handler interrupts the statement at the deadline or once stopped.
        db.stop_at(deadline, stops_it)?;
        scratch::run(&db, &sql, params, &limits)
    });
    let finished = tokio::select! {
        joined = &mut task => Some(joined),
        () = ctx.cancel.cancelled() => None,
    };
    let cancelled = finished.is_none();
    let joined = match finished {
        Some(joined) => joined,
        None => {
            stop.raise();
            task.await
        }
    };
    // A statement that ended before it was stopped keeps its result.
    match joined {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(Failure::Sqlite(error))) if scratch::has_code(&error, ErrorCode::OperationInterrupted) => {
            Err(ToolFailure::new(if cancelled {
                "the call was cancelled and the statement stopped; nothing was changed".into()
            } else if timeout < configured {
                format!(
                    "the statement was stopped after {} ms when the call's deadline came; nothing was changed",
                    timeout.as_millis()
                )
            } else {
                format!(
                    "the statement ran longer than database.timeout_ms ({} ms) and was stopped; nothing was \
                     changed. Add a WHERE or LIMIT, create an index, or split the work",
                    timeout.as_millis()
                )
            }))
        }
        Ok(Err(failure)) => Err(explain(failure, mode, config)),
        Err(_) => Err(ToolFailure::new("internal error: the database task failed; retry")),
    }
}

/// A failure as a message a model can act on, without agentos internals such as file paths.
fn explain(failure: Failure, mode: Mode, config: &DatabaseConfig) -> ToolFailure {
    let error = match failure {
        Failure::Refused(message) => return ToolFailure::new(message),
        Failure::Io(error) => {
            tracing::error!(%error, "cannot create the scratch database directory");
            return ToolFailure::new("agentos could not open your database; retry shortly");
        }
        Failure::Sqlite(error) => error,
    };
    let code = error.sqlite_error_code();
    ToolFailure::new(match (&error, code) {
        (_, Some(ErrorCode::DiskFull)) => format!(
            "your database reached database.max_db_bytes ({} bytes); nothing was changed. Delete rows or drop \
             tables you no longer need (then VACUUM), or store less",
            config.max_db_bytes
        ),
        (_, Some(ErrorCode::ReadOnly)) if mode == Mode::Query => {
            "agentos.db_query only reads; use agentos.db_exec to change the database".into()
        }
        (_, Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)) => {
            "your database is busy with another of your calls; retry shortly".into()
        }
        (_, Some(ErrorCode::TooBig)) => format!(
            "SQL error: string or blob too big: one value may hold at most {} bytes here \
             (database.max_result_bytes); store large data in smaller pieces",
            scratch::value_limit(config.max_result_bytes)
        ),
        // Refusals normally arrive with the authorizer's reason, as `Failure::Refused`.
        (_, Some(ErrorCode::AuthorizationForStatementDenied)) => {
            "`sql` uses something agentos does not allow on your database (ATTACH, DETACH, a PRAGMA that \
             is not read-only, load_extension, or a write through agentos.db_query)"
                .into()
        }
        (rusqlite::Error::SqlInputError { msg, offset, .. }, _) => {
            format!("SQL error: {msg} (at character {offset} of `sql`)")
        }
        (rusqlite::Error::SqliteFailure(_, Some(msg)), _) => format!("SQL error: {msg}"),
        (rusqlite::Error::SqliteFailure(code, None), _) => format!("SQL error: {code}"),
        (error, _) => {
            tracing::warn!(%error, "scratch database call failed");
            format!("SQL error: {error}")
        }
    })
}

pub fn tools(services: &Services) -> Vec<Arc<dyn Tool>> {
    let (query, exec) = (services.clone(), services.clone());
    vec![
        ToolBuilder::new("agentos.db_query")
            .title("Query your database")
            .description(
                "Runs one read-only SQL statement (SELECT, WITH ... SELECT, EXPLAIN, or a read-only \
                 PRAGMA such as table_info) on your private SQLite database and returns its columns and \
                 rows. Create and fill tables with agentos.db_exec first. Values: numbers, strings, null, \
                 and {\"$base64\": \"...\"} for blobs. At most database.max_rows rows come back; \
                 truncated=true means there were more (use LIMIT/OFFSET).",
            )
            .hints(Hints::READ_ONLY)
            .handler(move |args: SqlArgs, ctx| {
                let services = query.clone();
                async move {
                    let outcome = run_statement(&services, &ctx, args, Mode::Query).await?;
                    Ok(QueryResult {
                        row_count: outcome.rows.len(),
                        columns: outcome.columns,
                        rows: outcome.rows,
                        truncated: outcome.truncated,
                    })
                }
            }),
        ToolBuilder::new("agentos.db_exec")
            .title("Change your database")
            .description(
                "Runs one SQL statement that changes your private SQLite database (CREATE TABLE, INSERT, \
                 UPDATE, DELETE, ALTER, DROP, CREATE INDEX, ...), which persists across conversations and \
                 belongs to you alone. Pass values as `params` for `?` placeholders. Each call is its own \
                 transaction. Returns rowsAffected and lastInsertRowid, and the rows of a RETURNING clause.",
            )
            .hints(Hints {
                read_only: false,
                destructive: true,
                idempotent: false,
                open_world: false,
            })
            .handler(move |args: SqlArgs, ctx| {
                let services = exec.clone();
                async move {
                    let outcome = run_statement(&services, &ctx, args, Mode::Exec).await?;
                    let returning = !outcome.columns.is_empty();
                    Ok(ExecResult {
                        rows_affected: outcome.rows_affected,
                        last_insert_rowid: outcome.last_insert_rowid,
                        columns: returning.then_some(outcome.columns),
                        rows: returning.then_some(outcome.rows),
                        truncated: outcome.truncated,
                    })
                }
            }),
    ]
}

//! The second line of defence, inside SQLite itself: an authorizer that SQLite consults for
//! every action of a statement while it compiles it, including the statements SQLite compiles
//! for itself while one runs (VACUUM's copy, the `pragma_*` table-valued functions). Whatever the
//! textual guard lets through, this refuses: ATTACH and DETACH (and so `VACUUM INTO`, which
//! attaches its target file), PRAGMAs outside the guard's read-only allow-list, `load_extension`,
//! transaction control, and on an `agentos.db_query` connection every action that writes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rusqlite::ffi;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use super::guard;
use super::scratch::Mode;

/// Why `agentos.db_query` refuses a statement that writes.
pub(super) const QUERY_ONLY_READS: &str = "agentos.db_query runs only statements that read (SELECT, read-only \
     PRAGMA, EXPLAIN); use agentos.db_exec for statements that change the database";

const ATTACH: &str =
    "`sql`: ATTACH is not available: your database is a single file of its own. Create more tables in it instead";
const DETACH: &str =
    "`sql`: DETACH is not available: your database is a single file of its own. Create more tables in it instead";
const VACUUM_INTO: &str = "`sql`: VACUUM INTO is not available (it writes another file); plain VACUUM works";
const LOAD_EXTENSION: &str = "`sql`: load_extension is not available; extensions cannot be loaded";
const TRANSACTION: &str = "`sql`: BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE are not needed: every call runs \
     as its own transaction, committed when it succeeds and rolled back when it fails";

/// The authorizer's view of one connection, shared with the code that runs statements on it.
#[derive(Debug)]
pub(super) struct Gate {
    mode: Mode,
    /// True while a statement that the authorizer let through runs. SQLite then compiles only
    /// statements of its own, such as VACUUM's, which attaches a private temporary database.
    running: AtomicBool,
    /// Why the first refused action of the current statement was refused, for the tool's answer.
    refusal: Mutex<Option<String>>,
}

impl Gate {
    pub(super) fn new(mode: Mode) -> Self {
        Self {
            mode,
            running: AtomicBool::new(false),
            refusal: Mutex::new(None),
        }
    }

    /// Marks the start (true) or end (false) of running a statement that compiled.
    pub(super) fn set_running(&self, running: bool) {
        self.running.store(running, Ordering::SeqCst);
    }

    /// Why the last refused action was refused, if one was since the last call; clears it.
    pub(super) fn take_refusal(&self) -> Option<String> {
        self.refusal.lock().unwrap_or_else(|poison| poison.into_inner()).take()
    }

    /// The authorizer callback: allows or denies one action, remembering why it denied.
    pub(super) fn authorize(&self, context: AuthContext<'_>) -> Authorization {
        match self.decide(&context.action) {
            Ok(()) => Authorization::Allow,
            Err(reason) => {
                tracing::debug!(action = ?context.action, "scratch database authorizer denied an action");
                let mut refusal = self.refusal.lock().unwrap_or_else(|poison| poison.into_inner());
                refusal.get_or_insert(reason);
                Authorization::Deny
            }
        }
    }

    fn decide(&self, action: &AuthAction<'_>) -> Result<(), String> {
        let running = self.running.load(Ordering::SeqCst);
        match *action {
            // Plain VACUUM rebuilds the database through a temporary one that it attaches, with
            // an empty file name, while it runs. Nothing else may attach anything.
            AuthAction::Attach { filename } if running && filename.is_empty() && self.mode == Mode::Exec => Ok(()),
            // A statement that runs attaches a named file only as `VACUUM INTO`'s target.
            AuthAction::Attach { .. } if running => Err(VACUUM_INTO.into()),
            AuthAction::Attach { .. } => Err(ATTACH.into()),
            // ATTACH and DETACH with a computed name arrive without one.
            AuthAction::Unknown {
                code: ffi::SQLITE_ATTACH,
                ..
            } => Err(ATTACH.into()),
            AuthAction::Detach { .. }
            | AuthAction::Unknown {
                code: ffi::SQLITE_DETACH,
                ..
            } => Err(DETACH.into()),
            AuthAction::Pragma {
                pragma_name,
                pragma_value,
            } => guard::pragma_refusal(&pragma_name.to_ascii_lowercase(), pragma_value.is_some()).map_or(Ok(()), Err),
            AuthAction::Function { function_name } if function_name.eq_ignore_ascii_case("load_extension") => {
                Err(LOAD_EXTENSION.into())
            }
            // VACUUM opens its own transaction while it runs; agents never need to.
            AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } if !running => Err(TRANSACTION.into()),
            AuthAction::Unknown { code, .. } => Err(format!(
                "`sql` asks SQLite for something agentos does not allow on your database (authorizer action {code})"
            )),
            AuthAction::Select
            | AuthAction::Read { .. }
            | AuthAction::Function { .. }
            | AuthAction::Recursive
            | AuthAction::Transaction { .. }
            | AuthAction::Savepoint { .. } => Ok(()),
            // Everything else creates, changes or drops something.
            _ if self.mode == Mode::Query => Err(QUERY_ONLY_READS.into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(gate: &Gate, action: AuthAction<'_>) -> Result<(), String> {
        let outcome = gate.decide(&action);
        let authorized = gate.authorize(AuthContext {
            action,
            database_name: None,
            accessor: None,
        });
        assert_eq!(authorized == Authorization::Allow, outcome.is_ok());
        assert_eq!(gate.take_refusal(), outcome.clone().err());
        outcome
    }

    #[test]
    fn only_vacuums_own_temporary_database_may_be_attached() {
        let exec = Gate::new(Mode::Exec);
        let temporary = || AuthAction::Attach { filename: "" };
        let file = || AuthAction::Attach { filename: "/tmp/x.db" };
        assert!(
            decide(&exec, temporary())
                .unwrap_err()
                .contains("ATTACH is not available")
        );
        assert!(decide(&exec, file()).unwrap_err().contains("ATTACH is not available"));
        exec.set_running(true);
        assert_eq!(decide(&exec, temporary()), Ok(()));
        assert!(
            decide(&exec, file())
                .unwrap_err()
                .contains("VACUUM INTO is not available")
        );
        let query = Gate::new(Mode::Query);
        query.set_running(true);
        assert!(decide(&query, temporary()).is_err());
        let computed = AuthAction::Unknown {
            code: ffi::SQLITE_ATTACH,
            arg1: None,
            arg2: None,
        };
        assert!(decide(&exec, computed).unwrap_err().contains("ATTACH"));
        let detach = AuthAction::Detach { database_name: "x" };
        assert!(decide(&exec, detach).unwrap_err().contains("DETACH is not available"));
    }

    #[test]
    fn pragmas_functions_and_writes_follow_the_mode() {
        for mode in [Mode::Query, Mode::Exec] {
            let gate = Gate::new(mode);
            let pragma = |name, value| AuthAction::Pragma {
                pragma_name: name,
                pragma_value: value,
            };
            assert_eq!(decide(&gate, pragma("table_info", Some("t"))), Ok(()));
            assert_eq!(decide(&gate, pragma("USER_VERSION", None)), Ok(()));
            assert!(
                decide(&gate, pragma("user_version", Some("7")))
                    .unwrap_err()
                    .contains("can only be read")
            );
            assert!(
                decide(&gate, pragma("journal_mode", None))
                    .unwrap_err()
                    .contains("not available")
            );
            let load = AuthAction::Function {
                function_name: "LOAD_EXTENSION",
            };
            assert!(decide(&gate, load).unwrap_err().contains("load_extension"));
            assert_eq!(decide(&gate, AuthAction::Function { function_name: "abs" }), Ok(()));
            assert_eq!(decide(&gate, AuthAction::Select), Ok(()));
            let begin = AuthAction::Transaction {
                operation: rusqlite::hooks::TransactionOperation::Begin,
            };
            assert!(decide(&gate, begin).unwrap_err().contains("own transaction"));
            let insert = decide(&gate, AuthAction::Insert { table_name: "t" });
            let create = decide(&gate, AuthAction::CreateTempTable { table_name: "t" });
            match mode {
                Mode::Exec => assert_eq!((insert, create), (Ok(()), Ok(()))),
                Mode::Query => {
                    assert_eq!(insert.unwrap_err(), QUERY_ONLY_READS);
                    assert_eq!(create.unwrap_err(), QUERY_ONLY_READS);
                }
            }
        }
    }
}

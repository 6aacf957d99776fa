//! The background runs this process executes, by id, so `agentos.workflow_cancel` can stop one.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub(super) struct Running {
    runs: Mutex<HashMap<String, (String, CancellationToken)>>,
}

impl Running {
    /// Registers a run of `owner` under `cancel` until the returned guard is dropped.
    pub fn enter(&self, run_id: &str, owner: &str, cancel: CancellationToken) -> impl Drop + '_ {
        self.runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(run_id.to_owned(), (owner.to_owned(), cancel));
        Leave {
            running: self,
            run_id: run_id.to_owned(),
        }
    }

    /// Cancels `owner`'s run `run_id`; false if this process runs no such run.
    pub fn cancel(&self, owner: &str, run_id: &str) -> bool {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        match runs.get(run_id) {
            Some((run_owner, cancel)) if run_owner == owner => {
                cancel.cancel();
                true
            }
            _ => false,
        }
    }
}

struct Leave<'a> {
    running: &'a Running,
    run_id: String,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.running
            .runs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.run_id);
    }
}

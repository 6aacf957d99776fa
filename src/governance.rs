//! Governance: what operators read to trust agentos. The audit trail of every call, the span
//! tree of each call (traces) and the calls held for a human's approval share one shape: a
//! pipeline hook that hands records to a bounded queue, a background writer, and a query tool
//! whose visibility rules live in one place, [`access`].

pub mod access;
pub mod approvals;
pub mod audit;
mod filters;
pub mod traces;

use std::sync::{Arc, Weak};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ops::metrics::RecordLoss;
use crate::registry::{Registry, Tool};
use crate::sealing::Sealer;
use crate::store::Store;

/// What the governance parts share. Cheap to clone.
#[derive(Clone)]
pub struct Governance {
    store: Arc<dyn Store>,
    config: Arc<Config>,
    /// Weak: the registry holds the tools and hooks that hold this.
    registry: Weak<Registry>,
    /// Counts the records a full queue made us drop, for `/metrics`.
    loss: Arc<RecordLoss>,
    /// Seals the sensitive inputs of held calls, whose stored copies are redacted.
    sealer: Arc<Sealer>,
}

impl Governance {
    pub fn new(
        store: Arc<dyn Store>,
        config: Arc<Config>,
        registry: &Arc<Registry>,
        loss: Arc<RecordLoss>,
        sealer: Arc<Sealer>,
    ) -> Self {
        Self {
            store,
            config,
            registry: Arc::downgrade(registry),
            loss,
            sealer,
        }
    }

    /// Plugs the approval gate into the registry's pipeline and returns the governance tools
    /// (`agentos.audit_query`, `agentos.traces_query` and the approval tools) to register.
    pub fn install(&self) -> Vec<Arc<dyn Tool>> {
        let mut tools = audit::tools(self);
        tools.extend(traces::tools(self));
        tools.extend(approvals::install(self));
        tools
    }

    /// Starts the audit writer (`None` when audit is off), the trace writer (`None` when traces
    /// are off) and the expiry of undecided approvals, until `shutdown`. Needs a Tokio runtime.
    pub fn start(&self, shutdown: &CancellationToken) -> Writers {
        let audit_stop = shutdown.child_token();
        let trace_stop = shutdown.child_token();
        let writers = Writers {
            audit: audit::start(self, audit_stop.clone()).map(|task| (audit_stop, task)),
            traces: traces::start(self, trace_stop.clone()).map(|task| (trace_stop, task)),
        };
        approvals::start(self, shutdown.clone());
        writers
    }

    fn registry(&self) -> Option<Arc<Registry>> {
        self.registry.upgrade()
    }
}

/// The background writers, each with its own stop signal, so a shutdown can wait until every
/// queued record is written.
#[derive(Default)]
pub struct Writers {
    pub audit: Option<(CancellationToken, JoinHandle<()>)>,
    pub traces: Option<(CancellationToken, JoinHandle<()>)>,
}

impl Writers {
    /// Stops each writer and waits until it has written what was queued.
    pub async fn flush(self) {
        for (what, writer) in [("audit", self.audit), ("trace", self.traces)] {
            if let Some((stop, task)) = writer {
                stop.cancel();
                if let Err(error) = task.await {
                    tracing::warn!(%error, "the {what} writer ended abnormally");
                }
            }
        }
    }
}

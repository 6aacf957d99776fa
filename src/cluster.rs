//! What replicas sharing one database tell each other beyond what the store keeps: the rate
//! limit charges each lets through, so an agent's budget is the cluster's (see
//! `registry::limits_shared` for the format and the precision).

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::registry::RateLimits;
use crate::registry::limits_shared::{REPORT_EVERY, decode, encode};
use crate::store::{Store, StoreChange};

/// Reports this replica's charges every [`REPORT_EVERY`] and charges the others' reports to
/// `limits`, until the store goes.
pub fn share_rate_limits(limits: Arc<RateLimits>, store: Arc<dyn Store>, mut feed: broadcast::Receiver<StoreChange>) {
    let replica = uuid::Uuid::new_v4().simple().to_string();
    let (reporting, own) = (Arc::downgrade(&limits), replica.clone());
    let reporter = Arc::downgrade(&store);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(REPORT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let (Some(limits), Some(store)) = (reporting.upgrade(), reporter.upgrade()) else {
                return;
            };
            for report in encode(&own, &limits.take_spent()) {
                if let Err(error) = store.report_rate_charges(report).await {
                    tracing::warn!(%error, "could not report rate limit charges to the other replicas");
                }
            }
        }
    });
    let absorbing = Arc::downgrade(&limits);
    tokio::spawn(async move {
        loop {
            let change = feed.recv().await;
            let Some(limits) = absorbing.upgrade() else { return };
            match change {
                Ok(StoreChange::RateCharges(report)) => {
                    for (class, key, count) in decode(&replica, &report) {
                        limits.absorb(class, &key, count);
                    }
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

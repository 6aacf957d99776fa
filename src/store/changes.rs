//! What a store tells the rest of agentos about itself: its kind, whether it answers, and the
//! changes other replicas sharing it commit, so waiting pollers, held approvals and cached
//! credentials on this replica learn about them.

use futures::future::BoxFuture;
use tokio::sync::broadcast;

use super::StoreError;

/// A change committed by some replica (this one included) to a store several replicas share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChange {
    /// An event was published on `topic` of `owner`.
    Event { owner: String, topic: String },
    /// An agent's credentials may have changed (disabled, deleted, a token revoked...).
    Agent(String),
    /// A browser session ended (its id hash).
    Session(String),
    /// An approval was decided or finished.
    Approval(String),
    /// Rate limit charges a replica reports (see `registry::limits_shared`).
    RateCharges(String),
    /// The feed was interrupted (the connection to the database dropped and came back): anything
    /// may have changed meanwhile, so listeners re-check what they wait for or cache.
    Resync,
}

pub trait StoreAdmin: Send + Sync {
    /// `sqlite` or `postgres`, for health and logs.
    fn backend(&self) -> &'static str;
    /// A trivial read, for health checks.
    fn check(&self) -> BoxFuture<'_, Result<(), StoreError>>;
    /// Changes other processes commit to this store, or `None` when no other process shares
    /// it in a way this one must hear about (the embedded SQLite file).
    fn changes(&self) -> Option<broadcast::Receiver<StoreChange>>;
    /// Records `proposed` as the value of the cluster-wide setting `name` unless one is recorded
    /// already, and returns the recorded one: replicas sharing the store compare their keys with
    /// it. A store no other process shares in that way (SQLite) keeps nothing and returns
    /// `proposed`.
    fn cluster_setting<'a>(&'a self, name: &'a str, proposed: Vec<u8>) -> BoxFuture<'a, Result<Vec<u8>, StoreError>>;
    /// Tells every process following [`StoreAdmin::changes`] (this one included) about rate limit
    /// charges, as [`StoreChange::RateCharges`]. A store without a change feed drops it.
    fn report_rate_charges(&self, report: String) -> BoxFuture<'_, Result<(), StoreError>>;
}

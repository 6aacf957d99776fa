//! Per-agent work queues with visibility timeouts: at-least-once delivery.

use super::{Migration, SqliteStore};

pub(super) const MIGRATIONS: &[Migration] = &[];

pub trait QueueStore: Send + Sync {}

impl QueueStore for SqliteStore {}

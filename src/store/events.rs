//! Per-agent event topics: published payloads in order, polled by cursor.

use super::{Migration, SqliteStore};

pub(super) const MIGRATIONS: &[Migration] = &[];

pub trait EventStore: Send + Sync {}

impl EventStore for SqliteStore {}

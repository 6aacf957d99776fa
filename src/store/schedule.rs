//! Schedules that fire tool calls, and the history of their runs.

use super::{Migration, SqliteStore};

pub(super) const MIGRATIONS: &[Migration] = &[];

pub trait ScheduleStore: Send + Sync {}

impl ScheduleStore for SqliteStore {}

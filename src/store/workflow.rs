//! Workflow runs: their steps, status and per-step results.

use super::{Migration, SqliteStore};

pub(super) const MIGRATIONS: &[Migration] = &[];

pub trait WorkflowStore: Send + Sync {}

impl WorkflowStore for SqliteStore {}

//! Per-agent virtual files: paths, contents and quotas, never the host filesystem.

use super::{Migration, SqliteStore};

pub(super) const MIGRATIONS: &[Migration] = &[];

pub trait FileStore: Send + Sync {}

impl FileStore for SqliteStore {}

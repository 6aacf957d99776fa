//! Per-agent knowledge: documents split into chunks, searchable with BM25.

use super::{Migration, SqliteStore};

pub(super) const MIGRATIONS: &[Migration] = &[];

pub trait KnowledgeStore: Send + Sync {}

impl KnowledgeStore for SqliteStore {}

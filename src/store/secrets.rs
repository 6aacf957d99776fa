//! Per-agent secrets, stored encrypted (the store never sees plaintext).

use super::{Migration, SqliteStore};

pub(super) const MIGRATIONS: &[Migration] = &[];

pub trait SecretStore: Send + Sync {}

impl SecretStore for SqliteStore {}

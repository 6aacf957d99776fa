//! Per-agent secrets, stored encrypted (the store never sees plaintext).

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::quota::{Family, within_quota};
use super::{Migration, SqliteStore, StoreError, now_ms};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    name: "secrets_1",
    sql: "CREATE TABLE secrets (
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        nonce BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (owner, name)
    ) WITHOUT ROWID;",
}];

/// A secret as stored: sealed, never plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub updated_at_ms: i64,
}

pub trait SecretStore: Send + Sync {
    /// Stores or replaces; returns whether the name was new.
    fn secret_put<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        nonce: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn secret_fetch<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SealedSecret>, StoreError>>;
    /// Names and last-update times, in name order.
    fn secret_names<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<(String, i64)>, StoreError>>;
    fn secret_remove<'a>(&'a self, owner: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// How many secrets the owner has.
    fn secret_count<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<usize, StoreError>>;
}

impl SecretStore for SqliteStore {
    fn secret_put<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        nonce: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (owner, name) = (owner.to_owned(), name.to_owned());
        let quota = self.quotas().secrets;
        async move {
            self.write(move |tx| {
                within_quota(tx, &owner, Family::Secrets, quota, |tx| {
                    let now = now_ms();
                    let existed = tx
                        .prepare_cached("SELECT 1 FROM secrets WHERE owner = ?1 AND name = ?2")?
                        .exists(params![owner, name])?;
                    tx.prepare_cached(
                        "INSERT INTO secrets (owner, name, nonce, ciphertext, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (owner, name) DO UPDATE SET nonce = excluded.nonce,
                    ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
                    )?
                    .execute(params![owner, name, nonce, ciphertext, now])?;
                    Ok(!existed)
                })
            })
            .await?
            .map_err(StoreError::from)
        }
        .boxed()
    }

    fn secret_fetch<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SealedSecret>, StoreError>> {
        let (owner, name) = (owner.to_owned(), name.to_owned());
        self.read(move |conn| {
            conn.prepare_cached("SELECT nonce, ciphertext, updated_at FROM secrets WHERE owner = ?1 AND name = ?2")?
                .query_row(params![owner, name], |row| {
                    Ok(SealedSecret {
                        nonce: row.get(0)?,
                        ciphertext: row.get(1)?,
                        updated_at_ms: row.get(2)?,
                    })
                })
                .optional()
        })
        .boxed()
    }

    fn secret_names<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<(String, i64)>, StoreError>> {
        let owner = owner.to_owned();
        self.read(move |conn| {
            conn.prepare_cached("SELECT name, updated_at FROM secrets WHERE owner = ?1 ORDER BY name")?
                .query_map(params![owner], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .boxed()
    }

    fn secret_remove<'a>(&'a self, owner: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (owner, name) = (owner.to_owned(), name.to_owned());
        self.write(move |tx| {
            let removed = tx
                .prepare_cached("DELETE FROM secrets WHERE owner = ?1 AND name = ?2")?
                .execute(params![owner, name])?;
            Ok(removed > 0)
        })
        .boxed()
    }

    fn secret_count<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        let owner = owner.to_owned();
        self.read(move |conn| {
            let count: i64 = conn
                .prepare_cached("SELECT COUNT(*) FROM secrets WHERE owner = ?1")?
                .query_row(params![owner], |row| row.get(0))?;
            Ok(usize::try_from(count).unwrap_or(0))
        })
        .boxed()
    }
}

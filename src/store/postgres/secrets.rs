//! Per-agent secrets on PostgreSQL: sealed nonce and ciphertext as BYTEA (the store never sees
//! plaintext), behind the same [`SecretStore`] trait as SQLite.

use futures::FutureExt;
use futures::future::BoxFuture;

use super::quota::QuotaCheck;
use super::{PgStore, owner_tx};
use crate::store::{Family, SealedSecret, SecretStore, StoreError, now_ms};

impl SecretStore for PgStore {
    fn secret_put<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
        nonce: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let mut client = self.client().await?;
            // The owner's lock makes the "was it new" read and the write one step, as SQLite's
            // single writer does.
            let tx = owner_tx(&mut client, owner).await?;
            let check = QuotaCheck::before(&tx, owner, Family::Secrets, self.quotas().secrets).await?;
            let exists = tx
                .prepare_cached("SELECT 1 FROM secrets WHERE owner = $1 AND name = $2")
                .await?;
            let existed = tx.query_opt(&exists, &[&owner, &name]).await?.is_some();
            let upsert = tx
                .prepare_cached(
                    "INSERT INTO secrets (owner, name, nonce, ciphertext, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $5)
                     ON CONFLICT (owner, name) DO UPDATE SET nonce = excluded.nonce,
                        ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
                )
                .await?;
            tx.execute(&upsert, &[&owner, &name, &nonce, &ciphertext, &now_ms()])
                .await?;
            if let Err(exceeded) = check.after(&tx).await? {
                // Dropping the transaction rolls the write back.
                return Err(exceeded.into());
            }
            tx.commit().await?;
            Ok(!existed)
        }
        .boxed()
    }

    fn secret_fetch<'a>(
        &'a self,
        owner: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<SealedSecret>, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT nonce, ciphertext, updated_at FROM secrets WHERE owner = $1 AND name = $2")
                .await?;
            Ok(client
                .query_opt(&statement, &[&owner, &name])
                .await?
                .map(|row| SealedSecret {
                    nonce: row.get(0),
                    ciphertext: row.get(1),
                    updated_at_ms: row.get(2),
                }))
        }
        .boxed()
    }

    fn secret_names<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<(String, i64)>, StoreError>> {
        async move {
            let client = self.client().await?;
            // `name` is COLLATE "C": bytewise order, as SQLite's.
            let statement = client
                .prepare_cached("SELECT name, updated_at FROM secrets WHERE owner = $1 ORDER BY name")
                .await?;
            Ok(client
                .query(&statement, &[&owner])
                .await?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        }
        .boxed()
    }

    fn secret_remove<'a>(&'a self, owner: &'a str, name: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let delete = tx
                .prepare_cached("DELETE FROM secrets WHERE owner = $1 AND name = $2")
                .await?;
            let removed = tx.execute(&delete, &[&owner, &name]).await?;
            tx.commit().await?;
            Ok(removed > 0)
        }
        .boxed()
    }

    fn secret_count<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<usize, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("SELECT count(*) FROM secrets WHERE owner = $1")
                .await?;
            let count: i64 = client.query_one(&statement, &[&owner]).await?.get(0);
            Ok(usize::try_from(count).unwrap_or(0))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::postgres::testing;
    use crate::store::{Quota, Quotas, StoreLimits, Usage};

    /// What `quota_usage` holds for the owner's secrets (read directly: `QuotaStore` also counts
    /// the other families' tables).
    async fn usage(store: &PgStore, owner: &str) -> Usage {
        let client = store.client().await.unwrap();
        let row = client
            .query_opt(
                "SELECT items, bytes FROM quota_usage WHERE owner = $1 AND family = 'secrets'",
                &[&owner],
            )
            .await
            .unwrap();
        let (items, bytes): (i64, i64) = row.map_or((0, 0), |row| (row.get(0), row.get(1)));
        Usage {
            items: items as u64,
            bytes: bytes as u64,
        }
    }

    /// The trigger-kept usage against a recount of the table.
    async fn usage_is_exact(store: &PgStore, owner: &str) {
        let client = store.client().await.unwrap();
        let row = client
            .query_one(
                "SELECT count(*), coalesce(sum(octet_length(name) + octet_length(nonce)
                    + octet_length(ciphertext)), 0)::BIGINT FROM secrets WHERE owner = $1",
                &[&owner],
            )
            .await
            .unwrap();
        let (items, bytes): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(
            usage(store, owner).await,
            Usage {
                items: items as u64,
                bytes: bytes as u64
            },
            "usage of {owner}"
        );
    }

    #[tokio::test]
    async fn secrets_round_trip_list_in_byte_order_and_stay_per_owner() {
        let Some(store) = testing::store().await else { return };
        assert!(
            store
                .secret_put("a", "b-key", vec![1; 12], vec![0, 255, 7])
                .await
                .unwrap()
        );
        assert!(!store.secret_put("a", "b-key", vec![2; 12], vec![9; 5]).await.unwrap());
        assert!(store.secret_put("a", "B", vec![3; 12], vec![1]).await.unwrap());
        assert!(store.secret_put("a", "é", vec![3; 12], vec![1]).await.unwrap());
        assert!(store.secret_put("b", "b-key", vec![4; 12], vec![2]).await.unwrap());
        let sealed = store.secret_fetch("a", "b-key").await.unwrap().unwrap();
        assert_eq!((sealed.nonce, sealed.ciphertext), (vec![2; 12], vec![9; 5]));
        assert!(store.secret_fetch("a", "missing").await.unwrap().is_none());
        let names: Vec<String> = store
            .secret_names("a")
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.0)
            .collect();
        // Bytewise: uppercase before lowercase, multi-byte UTF-8 last.
        assert_eq!(names, ["B", "b-key", "é"]);
        assert_eq!(store.secret_count("a").await.unwrap(), 3);
        assert_eq!(store.secret_count("b").await.unwrap(), 1);
        usage_is_exact(&store, "a").await;
        assert!(store.secret_remove("a", "b-key").await.unwrap());
        assert!(!store.secret_remove("a", "b-key").await.unwrap());
        assert_eq!(
            store.secret_fetch("b", "b-key").await.unwrap().unwrap().ciphertext,
            vec![2]
        );
        usage_is_exact(&store, "a").await;
        usage_is_exact(&store, "b").await;
    }

    #[tokio::test]
    async fn a_put_past_the_quota_is_refused_and_keeps_the_old_secret() {
        let limits = StoreLimits {
            quotas: Quotas {
                secrets: Quota {
                    max_items: 2,
                    max_bytes: 40,
                },
                ..Quotas::UNLIMITED
            },
            ..StoreLimits::default()
        };
        let Some(store) = testing::store_with(limits).await else {
            return;
        };
        store.secret_put("a", "one", vec![0; 12], vec![1; 10]).await.unwrap();
        store.secret_put("a", "two", vec![0; 4], vec![1]).await.unwrap();
        let third = store.secret_put("a", "three", vec![0; 1], vec![1]).await.unwrap_err();
        assert!(
            matches!(&third, StoreError::Refused(m) if m.contains("quotas.secrets_items")),
            "{third:?}"
        );
        let grow = store
            .secret_put("a", "one", vec![0; 12], vec![1; 30])
            .await
            .unwrap_err();
        assert!(
            matches!(&grow, StoreError::Refused(m) if m.contains("quotas.secrets_bytes")),
            "{grow:?}"
        );
        assert_eq!(
            store.secret_fetch("a", "one").await.unwrap().unwrap().ciphertext,
            vec![1; 10]
        );
        assert_eq!(store.secret_count("a").await.unwrap(), 2);
        usage_is_exact(&store, "a").await;
        // Shrinking is always allowed; another owner's quota is its own.
        store.secret_put("a", "one", vec![0; 12], vec![1; 2]).await.unwrap();
        store.secret_put("b", "three", vec![0; 1], vec![1]).await.unwrap();
        usage_is_exact(&store, "a").await;
    }

    #[tokio::test]
    async fn concurrent_puts_of_a_new_name_report_new_exactly_once() {
        let Some(store) = testing::store().await else { return };
        let store = Arc::new(store);
        let puts: Vec<_> = (0..8u8)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move { store.secret_put("a", "shared", vec![i; 12], vec![i]).await.unwrap() })
            })
            .collect();
        let mut new = 0;
        for put in puts {
            new += usize::from(put.await.unwrap());
        }
        assert_eq!(new, 1, "the owner's lock makes one put the creator");
        assert_eq!(store.secret_count("a").await.unwrap(), 1);
        usage_is_exact(&store, "a").await;
    }
}

//! Per-agent virtual files on PostgreSQL: one row per file (content as BYTEA, its size and
//! SHA-256), behind the same [`FileStore`] trait as SQLite. Sizes and the quota are checked in the
//! write's own transaction under the owner's lock, so concurrent writers, on any replica, can
//! never push an agent past its quota together.

use deadpool_postgres::{GenericClient, Transaction};
use futures::FutureExt;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio_postgres::Row;

use super::memory::before_nul;
use super::{PgStore, owner_tx, to_i64};
use crate::store::{
    FileLimits, FileMeta, FilePage, FileSlice, FileStore, FileWriteMode, FileWritten, StoreError, now_ms,
};

/// Sizes are stored as BIGINT; they are never negative.
fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn row_to_meta(row: &Row) -> FileMeta {
    FileMeta {
        path: row.get(0),
        bytes: to_u64(row.get(1)),
        created_at_ms: row.get(2),
        updated_at_ms: row.get(3),
        sha256: row.get(4),
    }
}

async fn usage(client: &impl GenericClient, owner: &str) -> Result<u64, StoreError> {
    let statement = client
        .prepare_cached("SELECT coalesce(sum(bytes), 0)::BIGINT FROM files WHERE owner = $1")
        .await?;
    Ok(to_u64(client.query_one(&statement, &[&owner]).await?.get(0)))
}

/// The write itself, in the owner's write transaction. `Ok(Err(message))` is a refusal: nothing
/// was changed. Mirrors the SQLite store's `write_in`, refusals word for word.
async fn write_in(
    tx: &Transaction<'_>,
    owner: &str,
    path: &str,
    data: Vec<u8>,
    mode: FileWriteMode,
    limits: FileLimits,
) -> Result<Result<FileWritten, String>, StoreError> {
    let existing = tx
        .prepare_cached("SELECT bytes FROM files WHERE owner = $1 AND path = $2")
        .await?;
    let existing: Option<u64> = tx
        .query_opt(&existing, &[&owner, &path])
        .await?
        .map(|row| to_u64(row.get(0)));
    let old = existing.unwrap_or(0);
    let added = data.len() as u64;
    let new_size = match mode {
        FileWriteMode::Replace => added,
        FileWriteMode::Append => old.saturating_add(added),
    };
    if new_size > limits.max_file_bytes {
        return Ok(Err(format!(
            "`{path}` would be {new_size} bytes; files.max_file_bytes allows {} bytes per file. \
             Write less, or split the content over several files",
            limits.max_file_bytes
        )));
    }
    let used = usage(tx, owner).await?;
    let after = used.saturating_sub(old).saturating_add(new_size);
    if after > limits.quota_bytes {
        let needed = after - used.min(after);
        return Ok(Err(format!(
            "files.quota_bytes is {} bytes and your files use {used} bytes; this write needs {needed} more \
             bytes ({} over). Delete files you no longer need (agentos.fs_delete) or write less",
            limits.quota_bytes,
            after - limits.quota_bytes
        )));
    }
    let now = now_ms();
    let size = i64::try_from(new_size).unwrap_or(i64::MAX);
    match (mode, existing) {
        (FileWriteMode::Append, Some(_)) if added > 0 => {
            // Appended and hashed in the server: the old content never crosses the wire.
            let append = tx
                .prepare_cached(
                    "UPDATE files SET content = content || $3, bytes = $4,
                        sha256 = encode(sha256(content || $3), 'hex'), updated_at = $5
                     WHERE owner = $1 AND path = $2",
                )
                .await?;
            tx.execute(&append, &[&owner, &path, &data, &size, &now]).await?;
        }
        (FileWriteMode::Append, Some(_)) => {
            // Appending nothing changes nothing.
            return Ok(Ok(FileWritten {
                created: false,
                bytes: old,
            }));
        }
        _ => {
            let upsert = tx
                .prepare_cached(
                    "INSERT INTO files (owner, path, bytes, sha256, created_at, updated_at, content)
                     VALUES ($1, $2, $3, $4, $5, $5, $6)
                     ON CONFLICT (owner, path) DO UPDATE SET bytes = excluded.bytes, sha256 = excluded.sha256,
                        updated_at = excluded.updated_at, content = excluded.content",
                )
                .await?;
            let sha256 = hex::encode(Sha256::digest(&data));
            tx.execute(&upsert, &[&owner, &path, &size, &sha256, &now, &data])
                .await?;
        }
    }
    Ok(Ok(FileWritten {
        created: existing.is_none(),
        bytes: new_size,
    }))
}

impl FileStore for PgStore {
    fn fs_write<'a>(
        &'a self,
        owner: &'a str,
        path: &'a str,
        data: Vec<u8>,
        mode: FileWriteMode,
        limits: FileLimits,
    ) -> BoxFuture<'a, Result<FileWritten, StoreError>> {
        async move {
            let mut client = self.client().await?;
            // The owner's lock: the size and quota read and the write are one step, as with
            // SQLite's single writer, whichever replica the other writers run on.
            let tx = owner_tx(&mut client, owner).await?;
            let written = write_in(&tx, owner, path, data, mode, limits)
                .await?
                .map_err(StoreError::Refused)?;
            tx.commit().await?;
            Ok(written)
        }
        .boxed()
    }

    fn fs_read<'a>(
        &'a self,
        owner: &'a str,
        path: &'a str,
        offset: u64,
        length: Option<u64>,
    ) -> BoxFuture<'a, Result<Option<FileSlice>, StoreError>> {
        // PostgreSQL counts from 1 and takes 32-bit positions: both ends are clamped to the file
        // (a BYTEA holds under 1 GiB), so an offset or length past the end reads as SQLite's
        // `substr` does, up to the end or nothing.
        let start = i64::try_from(offset).unwrap_or(i64::MAX).saturating_add(1);
        let length = length.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT path, bytes, created_at, updated_at, sha256,
                        substring(content FROM least($3::BIGINT, bytes + 1)::INT FOR least($4::BIGINT, bytes)::INT)
                     FROM files WHERE owner = $1 AND path = $2",
                )
                .await?;
            Ok(client
                .query_opt(&statement, &[&owner, &path, &start, &length])
                .await?
                .map(|row| FileSlice {
                    meta: row_to_meta(&row),
                    data: row.get(5),
                }))
        }
        .boxed()
    }

    fn fs_stat<'a>(&'a self, owner: &'a str, path: &'a str) -> BoxFuture<'a, Result<Option<FileMeta>, StoreError>> {
        async move {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT path, bytes, created_at, updated_at, sha256 FROM files WHERE owner = $1 AND path = $2",
                )
                .await?;
            Ok(client
                .query_opt(&statement, &[&owner, &path])
                .await?
                .map(|row| row_to_meta(&row)))
        }
        .boxed()
    }

    fn fs_list<'a>(
        &'a self,
        owner: &'a str,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<FilePage, StoreError>> {
        async move {
            // Paths compare bytewise (COLLATE "C"), so `prefix <= path < prefix + U+10FFFF`
            // selects exactly the paths starting with `prefix`, through the primary key index.
            // PostgreSQL text cannot hold NUL, so no stored path does (see `memory::before_nul`).
            if prefix.contains('\0') {
                return Ok(FilePage {
                    entries: Vec::new(),
                    next_after: None,
                });
            }
            let upper = format!("{prefix}\u{10FFFF}");
            let start = after.map(before_nul).unwrap_or_default();
            let fetch = to_i64(limit.saturating_add(1));
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "SELECT path, bytes, created_at, updated_at, sha256 FROM files
                     WHERE owner = $1 AND path >= $2 AND path < $3 AND path > $4
                     ORDER BY path LIMIT $5",
                )
                .await?;
            let mut entries: Vec<FileMeta> = client
                .query(&statement, &[&owner, &prefix, &upper, &start, &fetch])
                .await?
                .iter()
                .map(row_to_meta)
                .collect();
            let next_after = if entries.len() > limit {
                entries.truncate(limit);
                entries.last().map(|e| e.path.clone())
            } else {
                None
            };
            Ok(FilePage { entries, next_after })
        }
        .boxed()
    }

    fn fs_delete<'a>(&'a self, owner: &'a str, path: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let delete = tx
                .prepare_cached("DELETE FROM files WHERE owner = $1 AND path = $2")
                .await?;
            let removed = tx.execute(&delete, &[&owner, &path]).await?;
            tx.commit().await?;
            Ok(removed > 0)
        }
        .boxed()
    }

    fn fs_usage<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        async move { usage(&self.client().await?, owner).await }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::postgres::testing;

    const ROOMY: FileLimits = FileLimits {
        max_file_bytes: 1 << 20,
        quota_bytes: 1 << 20,
    };

    fn hex_sha256(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[tokio::test]
    async fn write_append_read_ranges_and_hash() {
        let Some(store) = testing::store().await else { return };
        let written = store
            .fs_write("a", "/f", b"hello".to_vec(), FileWriteMode::Replace, ROOMY)
            .await
            .unwrap();
        assert_eq!(
            written,
            FileWritten {
                created: true,
                bytes: 5
            }
        );
        let appended = store
            .fs_write("a", "/f", b" world".to_vec(), FileWriteMode::Append, ROOMY)
            .await
            .unwrap();
        assert_eq!(
            appended,
            FileWritten {
                created: false,
                bytes: 11
            }
        );
        let all = store.fs_read("a", "/f", 0, None).await.unwrap().unwrap();
        assert_eq!(all.data, b"hello world");
        assert_eq!(all.meta.sha256, hex_sha256(b"hello world"));
        assert_eq!(
            all.meta.sha256,
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert_eq!(all.meta.bytes, 11);
        let middle = store.fs_read("a", "/f", 6, Some(3)).await.unwrap().unwrap();
        assert_eq!(middle.data, b"wor");
        let tail = store.fs_read("a", "/f", 9, Some(100)).await.unwrap().unwrap();
        assert_eq!(tail.data, b"ld");
        let past = store.fs_read("a", "/f", 20, Some(3)).await.unwrap().unwrap();
        assert!(past.data.is_empty());
        let far = store
            .fs_read("a", "/f", u64::MAX, Some(u64::MAX))
            .await
            .unwrap()
            .unwrap();
        assert!(far.data.is_empty(), "offsets past 32 bits are clamped, not an error");
        let empty = store.fs_read("a", "/f", 2, Some(0)).await.unwrap().unwrap();
        assert!(empty.data.is_empty());
        // Appending to a missing file creates it; an empty file reads as empty.
        let fresh = store
            .fs_write("a", "/g", Vec::new(), FileWriteMode::Append, ROOMY)
            .await
            .unwrap();
        assert_eq!(
            fresh,
            FileWritten {
                created: true,
                bytes: 0
            }
        );
        assert!(
            store
                .fs_read("a", "/g", 0, None)
                .await
                .unwrap()
                .unwrap()
                .data
                .is_empty()
        );
        let nothing = store
            .fs_write("a", "/f", Vec::new(), FileWriteMode::Append, ROOMY)
            .await
            .unwrap();
        assert_eq!(
            nothing,
            FileWritten {
                created: false,
                bytes: 11
            }
        );
        assert_eq!(store.fs_usage("a").await.unwrap(), 11);
        let stat = store.fs_stat("a", "/f").await.unwrap().unwrap();
        assert_eq!(stat, all.meta);
        assert!(stat.created_at_ms <= stat.updated_at_ms);
        assert!(store.fs_read("a", "/missing", 0, None).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn owners_never_see_each_other() {
        let Some(store) = testing::store().await else { return };
        store
            .fs_write("a", "/x", b"A".to_vec(), FileWriteMode::Replace, ROOMY)
            .await
            .unwrap();
        assert!(store.fs_read("b", "/x", 0, None).await.unwrap().is_none());
        assert!(store.fs_stat("b", "/x").await.unwrap().is_none());
        assert!(store.fs_list("b", "/", None, 10).await.unwrap().entries.is_empty());
        assert!(!store.fs_delete("b", "/x").await.unwrap());
        let b = store
            .fs_write("b", "/x", b"BB".to_vec(), FileWriteMode::Replace, ROOMY)
            .await
            .unwrap();
        assert!(b.created, "b's /x is b's own file");
        assert_eq!(store.fs_read("a", "/x", 0, None).await.unwrap().unwrap().data, b"A");
        assert_eq!(store.fs_usage("a").await.unwrap(), 1);
        assert_eq!(store.fs_usage("b").await.unwrap(), 2);
    }

    #[tokio::test]
    async fn limits_are_refused_without_changing_anything() {
        let Some(store) = testing::store().await else { return };
        let limits = FileLimits {
            max_file_bytes: 6,
            quota_bytes: 10,
        };
        let too_big = store
            .fs_write("a", "/big", vec![0; 7], FileWriteMode::Replace, limits)
            .await
            .unwrap_err();
        assert!(
            matches!(&too_big, StoreError::Refused(m) if m.contains("files.max_file_bytes")),
            "{too_big}"
        );
        store
            .fs_write("a", "/one", vec![1; 6], FileWriteMode::Replace, limits)
            .await
            .unwrap();
        let over = store
            .fs_write("a", "/two", vec![2; 5], FileWriteMode::Replace, limits)
            .await
            .unwrap_err();
        let StoreError::Refused(message) = over else {
            panic!("{over}")
        };
        assert!(
            message.contains("files.quota_bytes is 10")
                && message.contains("use 6 bytes")
                && message.contains("needs 5"),
            "{message}"
        );
        assert!(store.fs_stat("a", "/two").await.unwrap().is_none());
        // Replacing a file counts only the difference.
        store
            .fs_write("a", "/one", vec![1; 2], FileWriteMode::Replace, limits)
            .await
            .unwrap();
        store
            .fs_write("a", "/two", vec![2; 5], FileWriteMode::Replace, limits)
            .await
            .unwrap();
        let append = store
            .fs_write("a", "/two", vec![2; 2], FileWriteMode::Append, limits)
            .await
            .unwrap_err();
        assert!(matches!(append, StoreError::Refused(m) if m.contains("would be 7 bytes")));
        assert_eq!(store.fs_usage("a").await.unwrap(), 7);
        assert_eq!(
            store.fs_read("a", "/two", 0, None).await.unwrap().unwrap().data,
            vec![2; 5]
        );
    }

    #[tokio::test]
    async fn concurrent_writers_cannot_overshoot_the_quota() {
        let Some(store) = testing::store().await else { return };
        let store = Arc::new(store);
        let limits = FileLimits {
            max_file_bytes: 100,
            quota_bytes: 250,
        };
        let writes = (0..10).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .fs_write("a", &format!("/f{i}"), vec![0; 100], FileWriteMode::Replace, limits)
                    .await
            })
        });
        let ok = futures::future::join_all(writes)
            .await
            .into_iter()
            .filter(|r| r.as_ref().unwrap().is_ok())
            .count();
        assert_eq!(ok, 2);
        assert_eq!(store.fs_usage("a").await.unwrap(), 200);
    }

    #[tokio::test]
    async fn concurrent_appends_are_never_lost() {
        let Some(store) = testing::store().await else { return };
        let store = Arc::new(store);
        let appends = (0..8u8).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .fs_write("a", "/log", vec![i; 3], FileWriteMode::Append, ROOMY)
                    .await
                    .unwrap()
            })
        });
        let created = futures::future::join_all(appends)
            .await
            .into_iter()
            .filter(|r| r.as_ref().unwrap().created)
            .count();
        assert_eq!(created, 1, "exactly one append created the file");
        let file = store.fs_read("a", "/log", 0, None).await.unwrap().unwrap();
        assert_eq!(file.data.len(), 24);
        assert_eq!(file.meta.bytes, 24);
        assert_eq!(
            file.meta.sha256,
            hex_sha256(&file.data),
            "hashed in the server, same as Rust"
        );
    }

    #[tokio::test]
    async fn listing_pages_through_a_prefix_in_path_order() {
        let Some(store) = testing::store().await else { return };
        for path in ["/p/3", "/p/1", "/p/2", "/q/1", "/p", "/p/B", "/p/a", "/p/é"] {
            store
                .fs_write("a", path, Vec::new(), FileWriteMode::Replace, ROOMY)
                .await
                .unwrap();
        }
        let first = store.fs_list("a", "/p/", None, 2).await.unwrap();
        let paths: Vec<_> = first.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/p/1", "/p/2"]);
        let second = store.fs_list("a", "/p/", first.next_after.as_deref(), 2).await.unwrap();
        let paths: Vec<_> = second.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["/p/3", "/p/B"]);
        let third = store
            .fs_list("a", "/p/", second.next_after.as_deref(), 2)
            .await
            .unwrap();
        let paths: Vec<_> = third.entries.iter().map(|e| e.path.as_str()).collect();
        // Bytewise order, whatever the database's locale.
        assert_eq!(paths, ["/p/a", "/p/é"]);
        assert_eq!(third.next_after, None);
        assert!(store.fs_list("a", "/p\0", None, 10).await.unwrap().entries.is_empty());
        let after_nul = store.fs_list("a", "/p/", Some("/p/B\0x"), 10).await.unwrap();
        assert_eq!(after_nul.entries[0].path, "/p/a", "a cursor is compared up to a NUL");
        assert!(store.fs_delete("a", "/p/2").await.unwrap());
        assert!(!store.fs_delete("a", "/p/2").await.unwrap());
        assert_eq!(store.fs_list("a", "/", None, 10).await.unwrap().entries.len(), 7);
    }
}

//! Per-agent virtual files: paths, contents and quotas, never the host filesystem.
//!
//! A file is one row: its whole content as a blob, its size and SHA-256. Quotas are checked
//! inside the write transaction, so concurrent writers (even two processes on one data
//! directory) can never push an agent past its quota together.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::types::ValueRef;
use rusqlite::{OptionalExtension, Transaction, params};
use sha2::{Digest, Sha256};

use super::{Migration, SqliteStore, StoreError, now_ms};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    name: "files_1",
    // `content` comes last so that listing and summing sizes never load the blobs.
    sql: "CREATE TABLE files (
        owner TEXT NOT NULL,
        path TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        content BLOB NOT NULL,
        PRIMARY KEY (owner, path)
    );
    CREATE INDEX files_usage ON files (owner, bytes);",
}];

/// What is known about a stored file, without its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub path: String,
    pub bytes: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// Lowercase hex SHA-256 of the whole content.
    pub sha256: String,
}

/// A byte range of a file, with the file's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSlice {
    pub meta: FileMeta,
    /// The requested bytes; shorter than asked when the file ends first.
    pub data: Vec<u8>,
}

/// Whether a write replaces the content or adds to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileWriteMode {
    Replace,
    Append,
}

/// The limits a write must respect, checked in its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimits {
    /// Largest size of one file, in bytes.
    pub max_file_bytes: u64,
    /// Largest total size of all of the owner's files, in bytes.
    pub quota_bytes: u64,
}

/// The outcome of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileWritten {
    /// True if the path held no file before.
    pub created: bool,
    /// The file's size after the write.
    pub bytes: u64,
}

/// A page of files in path order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePage {
    pub entries: Vec<FileMeta>,
    /// Present when more entries follow; pass it back as `after` to continue.
    pub next_after: Option<String>,
}

/// Per-agent virtual files. Every method is scoped to `owner`: no call can reach another
/// owner's files. Paths are taken as given (the caller normalizes them).
pub trait FileStore: Send + Sync {
    /// Creates, replaces or appends to a file within `limits`; a write past a limit is refused
    /// with [`StoreError::Refused`] and changes nothing. Resolves once the write is durable.
    fn fs_write<'a>(
        &'a self,
        owner: &'a str,
        path: &'a str,
        data: Vec<u8>,
        mode: FileWriteMode,
        limits: FileLimits,
    ) -> BoxFuture<'a, Result<FileWritten, StoreError>>;
    /// Reads `length` bytes (all the rest when `None`) from byte `offset`; `None` if there is no
    /// such file.
    fn fs_read<'a>(
        &'a self,
        owner: &'a str,
        path: &'a str,
        offset: u64,
        length: Option<u64>,
    ) -> BoxFuture<'a, Result<Option<FileSlice>, StoreError>>;
    fn fs_stat<'a>(&'a self, owner: &'a str, path: &'a str) -> BoxFuture<'a, Result<Option<FileMeta>, StoreError>>;
    /// Files whose path starts with `prefix`, in path order, after the path `after`.
    fn fs_list<'a>(
        &'a self,
        owner: &'a str,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<FilePage, StoreError>>;
    /// Returns whether a file was removed.
    fn fs_delete<'a>(&'a self, owner: &'a str, path: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Total size of the owner's files, in bytes.
    fn fs_usage<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;
}

fn row_to_meta(row: &rusqlite::Row<'_>) -> Result<FileMeta, rusqlite::Error> {
    Ok(FileMeta {
        path: row.get(0)?,
        bytes: get_u64(row, 1)?,
        created_at_ms: row.get(2)?,
        updated_at_ms: row.get(3)?,
        sha256: row.get(4)?,
    })
}

fn usage(conn: &rusqlite::Connection, owner: &str) -> Result<u64, rusqlite::Error> {
    conn.prepare_cached("SELECT COALESCE(SUM(bytes), 0) FROM files WHERE owner = ?1")?
        .query_row(params![owner], |row| get_u64(row, 0))
}

/// Sizes are stored as SQLite integers (i64); they are never negative.
fn get_u64(row: &rusqlite::Row<'_>, index: usize) -> Result<u64, rusqlite::Error> {
    Ok(u64::try_from(row.get::<_, i64>(index)?).unwrap_or(0))
}

fn hex_sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The write itself, inside the writer's transaction. `Ok(Err(message))` is a refusal: nothing
/// was changed.
fn write_in(
    tx: &Transaction<'_>,
    owner: &str,
    path: &str,
    data: Vec<u8>,
    mode: FileWriteMode,
    limits: FileLimits,
) -> Result<Result<FileWritten, String>, rusqlite::Error> {
    let existing: Option<u64> = tx
        .prepare_cached("SELECT bytes FROM files WHERE owner = ?1 AND path = ?2")?
        .query_row(params![owner, path], |row| get_u64(row, 0))
        .optional()?;
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
    let used = usage(tx, owner)?;
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
    let content = match (mode, existing) {
        (FileWriteMode::Append, Some(_)) if added > 0 => {
            let mut content: Vec<u8> = tx
                .prepare_cached("SELECT content FROM files WHERE owner = ?1 AND path = ?2")?
                .query_row(params![owner, path], |row| blob_or_text(row, 0))?;
            content.extend_from_slice(&data);
            content
        }
        (FileWriteMode::Append, Some(_)) => {
            // Appending nothing changes nothing.
            return Ok(Ok(FileWritten {
                created: false,
                bytes: old,
            }));
        }
        _ => data,
    };
    let now = now_ms();
    tx.prepare_cached(
        "INSERT INTO files (owner, path, bytes, sha256, created_at, updated_at, content)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)
         ON CONFLICT (owner, path) DO UPDATE SET bytes = excluded.bytes, sha256 = excluded.sha256,
            updated_at = excluded.updated_at, content = excluded.content",
    )?
    .execute(params![
        owner,
        path,
        i64::try_from(new_size).unwrap_or(i64::MAX),
        hex_sha256(&content),
        now,
        content
    ])?;
    Ok(Ok(FileWritten {
        created: existing.is_none(),
        bytes: new_size,
    }))
}

/// Content as bytes, whichever storage class SQLite hands back (an empty blob can come back as
/// empty text from `substr`).
fn blob_or_text(row: &rusqlite::Row<'_>, index: usize) -> Result<Vec<u8>, rusqlite::Error> {
    Ok(match row.get_ref(index)? {
        ValueRef::Blob(bytes) | ValueRef::Text(bytes) => bytes.to_vec(),
        _ => Vec::new(),
    })
}

impl FileStore for SqliteStore {
    fn fs_write<'a>(
        &'a self,
        owner: &'a str,
        path: &'a str,
        data: Vec<u8>,
        mode: FileWriteMode,
        limits: FileLimits,
    ) -> BoxFuture<'a, Result<FileWritten, StoreError>> {
        let (owner, path) = (owner.to_owned(), path.to_owned());
        async move {
            self.write(move |tx| write_in(tx, &owner, &path, data, mode, limits))
                .await?
                .map_err(StoreError::Refused)
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
        let (owner, path) = (owner.to_owned(), path.to_owned());
        // SQLite counts from 1; lengths past the end are cut at the end.
        let start = i64::try_from(offset).unwrap_or(i64::MAX).saturating_add(1);
        let length = length.map_or(i64::MAX, |l| i64::try_from(l).unwrap_or(i64::MAX));
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT path, bytes, created_at, updated_at, sha256, substr(content, ?3, ?4)
                 FROM files WHERE owner = ?1 AND path = ?2",
            )?
            .query_row(params![owner, path, start, length], |row| {
                Ok(FileSlice {
                    meta: row_to_meta(row)?,
                    data: blob_or_text(row, 5)?,
                })
            })
            .optional()
        })
        .boxed()
    }

    fn fs_stat<'a>(&'a self, owner: &'a str, path: &'a str) -> BoxFuture<'a, Result<Option<FileMeta>, StoreError>> {
        let (owner, path) = (owner.to_owned(), path.to_owned());
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT path, bytes, created_at, updated_at, sha256 FROM files WHERE owner = ?1 AND path = ?2",
            )?
            .query_row(params![owner, path], row_to_meta)
            .optional()
        })
        .boxed()
    }

    fn fs_list<'a>(
        &'a self,
        owner: &'a str,
        prefix: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<FilePage, StoreError>> {
        let (owner, prefix, after) = (owner.to_owned(), prefix.to_owned(), after.map(str::to_owned));
        self.read(move |conn| {
            // Paths compare bytewise, so `prefix <= path < prefix + U+10FFFF` selects exactly the
            // paths starting with `prefix`, through the primary key index.
            let upper = format!("{prefix}\u{10FFFF}");
            let start = after.unwrap_or_default();
            let fetch = i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX);
            let mut entries = conn
                .prepare_cached(
                    "SELECT path, bytes, created_at, updated_at, sha256 FROM files
                     WHERE owner = ?1 AND path >= ?2 AND path < ?3 AND path > ?4
                     ORDER BY path LIMIT ?5",
                )?
                .query_map(params![owner, prefix, upper, start, fetch], row_to_meta)?
                .collect::<Result<Vec<_>, _>>()?;
            let next_after = if entries.len() > limit {
                entries.truncate(limit);
                entries.last().map(|e| e.path.clone())
            } else {
                None
            };
            Ok(FilePage { entries, next_after })
        })
        .boxed()
    }

    fn fs_delete<'a>(&'a self, owner: &'a str, path: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (owner, path) = (owner.to_owned(), path.to_owned());
        self.write(move |tx| {
            let removed = tx
                .prepare_cached("DELETE FROM files WHERE owner = ?1 AND path = ?2")?
                .execute(params![owner, path])?;
            Ok(removed > 0)
        })
        .boxed()
    }

    fn fs_usage<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        let owner = owner.to_owned();
        self.read(move |conn| usage(conn, &owner)).boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::Synchronous;

    const ROOMY: FileLimits = FileLimits {
        max_file_bytes: 1 << 20,
        quota_bytes: 1 << 20,
    };

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn write_append_read_ranges_and_hash() {
        let (_dir, store) = open();
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
        let middle = store.fs_read("a", "/f", 6, Some(3)).await.unwrap().unwrap();
        assert_eq!(middle.data, b"wor");
        let past = store.fs_read("a", "/f", 20, Some(3)).await.unwrap().unwrap();
        assert!(past.data.is_empty());
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
        assert_eq!(store.fs_usage("a").await.unwrap(), 11);
    }

    #[tokio::test]
    async fn owners_never_see_each_other() {
        let (_dir, store) = open();
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
        let (_dir, store) = open();
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
    }

    #[tokio::test]
    async fn concurrent_writers_cannot_overshoot_the_quota() {
        let (_dir, store) = open();
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
    async fn listing_pages_through_a_prefix_in_path_order() {
        let (_dir, store) = open();
        for path in ["/p/3", "/p/1", "/p/2", "/q/1", "/p"] {
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
        assert_eq!(paths, ["/p/3"]);
        assert_eq!(second.next_after, None);
        assert!(store.fs_delete("a", "/p/2").await.unwrap());
        assert!(!store.fs_delete("a", "/p/2").await.unwrap());
        assert_eq!(store.fs_list("a", "/", None, 10).await.unwrap().entries.len(), 4);
    }
}

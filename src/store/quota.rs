//! Per-agent storage quotas: how many items and bytes each owner keeps in each family, kept
//! exact by triggers on the families' tables, and the check a write runs before it commits.
//!
//! The counts live in `quota_usage`, one row per owner and family, so checking a quota reads one
//! row however much an agent stores. Triggers keep the row in step with every statement that
//! touches the family's tables (writes, deletes, retention, expiry), so it cannot drift. Bytes
//! are the UTF-8 bytes of what the agent chose (keys, names, topics and values), not SQLite's
//! own overhead.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Migration, SqliteStore, StoreError};

pub(super) const MIGRATIONS: &[Migration] = &[Migration {
    name: "quota_1",
    // Knowledge chunks carry no owner: theirs is the document's, which exists while they do
    // (chunks are always deleted before their document, as the foreign key demands).
    sql: "CREATE TABLE quota_usage (
        owner TEXT NOT NULL,
        family TEXT NOT NULL,
        items INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (owner, family)
    ) WITHOUT ROWID;

    INSERT INTO quota_usage (owner, family, items, bytes)
        SELECT owner, 'memory', count(*), sum(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB)))
        FROM memory WHERE true GROUP BY owner;
    CREATE TRIGGER quota_memory_insert AFTER INSERT ON memory BEGIN
        INSERT INTO quota_usage (owner, family, items, bytes)
        VALUES (new.owner, 'memory', 1, length(CAST(new.key AS BLOB)) + length(CAST(new.value AS BLOB)))
        ON CONFLICT (owner, family) DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER quota_memory_update AFTER UPDATE OF key, value ON memory BEGIN
        UPDATE quota_usage SET bytes = bytes
            - length(CAST(old.key AS BLOB)) - length(CAST(old.value AS BLOB))
            + length(CAST(new.key AS BLOB)) + length(CAST(new.value AS BLOB))
        WHERE owner = new.owner AND family = 'memory';
    END;
    CREATE TRIGGER quota_memory_delete AFTER DELETE ON memory BEGIN
        UPDATE quota_usage SET items = items - 1,
            bytes = bytes - length(CAST(old.key AS BLOB)) - length(CAST(old.value AS BLOB))
        WHERE owner = old.owner AND family = 'memory';
    END;

    INSERT INTO quota_usage (owner, family, items, bytes)
        SELECT owner, 'events', count(*), sum(length(CAST(topic AS BLOB)) + length(CAST(payload AS BLOB)))
        FROM events WHERE true GROUP BY owner;
    CREATE TRIGGER quota_events_insert AFTER INSERT ON events BEGIN
        INSERT INTO quota_usage (owner, family, items, bytes)
        VALUES (new.owner, 'events', 1, length(CAST(new.topic AS BLOB)) + length(CAST(new.payload AS BLOB)))
        ON CONFLICT (owner, family) DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER quota_events_delete AFTER DELETE ON events BEGIN
        UPDATE quota_usage SET items = items - 1,
            bytes = bytes - length(CAST(old.topic AS BLOB)) - length(CAST(old.payload AS BLOB))
        WHERE owner = old.owner AND family = 'events';
    END;

    INSERT INTO quota_usage (owner, family, items, bytes)
        SELECT owner, 'queue', count(*), sum(length(CAST(queue AS BLOB)) + length(CAST(item AS BLOB)))
        FROM queue_items WHERE true GROUP BY owner;
    CREATE TRIGGER quota_queue_insert AFTER INSERT ON queue_items BEGIN
        INSERT INTO quota_usage (owner, family, items, bytes)
        VALUES (new.owner, 'queue', 1, length(CAST(new.queue AS BLOB)) + length(CAST(new.item AS BLOB)))
        ON CONFLICT (owner, family) DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER quota_queue_delete AFTER DELETE ON queue_items BEGIN
        UPDATE quota_usage SET items = items - 1,
            bytes = bytes - length(CAST(old.queue AS BLOB)) - length(CAST(old.item AS BLOB))
        WHERE owner = old.owner AND family = 'queue';
    END;

    INSERT INTO quota_usage (owner, family, items, bytes)
        SELECT owner, 'knowledge', count(*), sum(
            length(CAST(doc_id AS BLOB)) + coalesce(length(CAST(title AS BLOB)), 0)
            + coalesce(length(CAST(source AS BLOB)), 0) + length(CAST(metadata AS BLOB))
        )
        FROM knowledge_docs WHERE true GROUP BY owner;
    UPDATE quota_usage SET bytes = bytes + coalesce((
        SELECT sum(length(CAST(c.text AS BLOB))) FROM knowledge_chunks c JOIN knowledge_docs d ON d.id = c.doc
        WHERE d.owner = quota_usage.owner
    ), 0) WHERE family = 'knowledge';
    CREATE TRIGGER quota_knowledge_doc_insert AFTER INSERT ON knowledge_docs BEGIN
        INSERT INTO quota_usage (owner, family, items, bytes)
        VALUES (new.owner, 'knowledge', 1, length(CAST(new.doc_id AS BLOB))
            + coalesce(length(CAST(new.title AS BLOB)), 0) + coalesce(length(CAST(new.source AS BLOB)), 0)
            + length(CAST(new.metadata AS BLOB)))
        ON CONFLICT (owner, family) DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER quota_knowledge_doc_delete AFTER DELETE ON knowledge_docs BEGIN
        UPDATE quota_usage SET items = items - 1, bytes = bytes - length(CAST(old.doc_id AS BLOB))
            - coalesce(length(CAST(old.title AS BLOB)), 0) - coalesce(length(CAST(old.source AS BLOB)), 0)
            - length(CAST(old.metadata AS BLOB))
        WHERE owner = old.owner AND family = 'knowledge';
    END;
    CREATE TRIGGER quota_knowledge_chunk_insert AFTER INSERT ON knowledge_chunks BEGIN
        UPDATE quota_usage SET bytes = bytes + length(CAST(new.text AS BLOB))
        WHERE family = 'knowledge' AND owner = (SELECT owner FROM knowledge_docs WHERE id = new.doc);
    END;
    CREATE TRIGGER quota_knowledge_chunk_delete AFTER DELETE ON knowledge_chunks BEGIN
        UPDATE quota_usage SET bytes = bytes - length(CAST(old.text AS BLOB))
        WHERE family = 'knowledge' AND owner = (SELECT owner FROM knowledge_docs WHERE id = old.doc);
    END;

    INSERT INTO quota_usage (owner, family, items, bytes)
        SELECT owner, 'secrets', count(*), sum(length(CAST(name AS BLOB)) + length(nonce) + length(ciphertext))
        FROM secrets WHERE true GROUP BY owner;
    CREATE TRIGGER quota_secrets_insert AFTER INSERT ON secrets BEGIN
        INSERT INTO quota_usage (owner, family, items, bytes)
        VALUES (new.owner, 'secrets', 1, length(CAST(new.name AS BLOB)) + length(new.nonce) + length(new.ciphertext))
        ON CONFLICT (owner, family) DO UPDATE SET items = items + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER quota_secrets_update AFTER UPDATE OF nonce, ciphertext ON secrets BEGIN
        UPDATE quota_usage SET bytes = bytes - length(old.nonce) - length(old.ciphertext)
            + length(new.nonce) + length(new.ciphertext)
        WHERE owner = new.owner AND family = 'secrets';
    END;
    CREATE TRIGGER quota_secrets_delete AFTER DELETE ON secrets BEGIN
        UPDATE quota_usage SET items = items - 1,
            bytes = bytes - length(CAST(old.name AS BLOB)) - length(old.nonce) - length(old.ciphertext)
        WHERE owner = old.owner AND family = 'secrets';
    END;",
}];

/// A family whose storage counts against a per-agent quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Memory,
    Events,
    Queue,
    Knowledge,
    Secrets,
    Files,
}

impl Family {
    pub const ALL: [Family; 6] = [
        Family::Memory,
        Family::Events,
        Family::Queue,
        Family::Knowledge,
        Family::Secrets,
        Family::Files,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Family::Memory => "memory",
            Family::Events => "events",
            Family::Queue => "queue",
            Family::Knowledge => "knowledge",
            Family::Secrets => "secrets",
            Family::Files => "files",
        }
    }

    /// What an agent does to make room in this family.
    pub fn how_to_free(self) -> &'static str {
        match self {
            Family::Memory => "delete keys you no longer need with agentos.mem_delete (or set them to expire)",
            Family::Events => "clear topics you no longer need with agentos.events_clear",
            Family::Queue => "pop and acknowledge items (agentos.queue_pop, agentos.queue_ack)",
            Family::Knowledge => "remove documents you no longer need with agentos.knowledge_delete",
            Family::Secrets => "delete secrets you no longer need with agentos.secret_delete",
            Family::Files => "delete files you no longer need with agentos.fs_delete",
        }
    }
}

/// How much one agent may keep in one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max_items: u64,
    pub max_bytes: u64,
}

impl Quota {
    pub const UNLIMITED: Quota = Quota {
        max_items: u64::MAX,
        max_bytes: u64::MAX,
    };
}

/// The quotas the store enforces on its own writes. Files check theirs in their write (see
/// `files`), so they are not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub memory: Quota,
    pub events: Quota,
    pub queue: Quota,
    pub knowledge: Quota,
    pub secrets: Quota,
}

impl Quotas {
    pub const UNLIMITED: Quotas = Quotas {
        memory: Quota::UNLIMITED,
        events: Quota::UNLIMITED,
        queue: Quota::UNLIMITED,
        knowledge: Quota::UNLIMITED,
        secrets: Quota::UNLIMITED,
    };
}

/// What an agent keeps in a family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub items: u64,
    pub bytes: u64,
}

impl Usage {
    /// Usage as both databases store it (`i64` counts; a negative one, which no write makes,
    /// reads as none).
    pub fn from_stored(items: i64, bytes: i64) -> Self {
        Self {
            items: u64::try_from(items).unwrap_or(0),
            bytes: u64::try_from(bytes).unwrap_or(0),
        }
    }
}

/// A write refused because it would take its owner past a quota; nothing of it was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub family: Family,
    pub quota: Quota,
    pub before: Usage,
    pub after: Usage,
}

impl QuotaExceeded {
    /// The refusal as the agent reads it: which quota, by how much, and how to make room.
    pub fn message(&self) -> String {
        let family = self.family.as_str();
        let (items_over, bytes_over) = (
            self.after.items > self.quota.max_items,
            self.after.bytes > self.quota.max_bytes,
        );
        let what = match (items_over, bytes_over) {
            (true, true) => format!(
                "{} items and {} bytes (quotas `quotas.{family}_items` {} and `quotas.{family}_bytes` {})",
                self.after.items, self.after.bytes, self.quota.max_items, self.quota.max_bytes
            ),
            (true, false) => format!(
                "{} items (quota `quotas.{family}_items` {})",
                self.after.items, self.quota.max_items
            ),
            _ => format!(
                "{} bytes (quota `quotas.{family}_bytes` {})",
                self.after.bytes, self.quota.max_bytes
            ),
        };
        format!(
            "{family} quota reached: you keep {} items in {} bytes, and this write would make it {what}. \
             Nothing was written. To make room, {}; agentos.quota_status shows your usage. An operator \
             can raise the quota in the config",
            self.before.items,
            self.before.bytes,
            self.family.how_to_free()
        )
    }
}

impl From<QuotaExceeded> for StoreError {
    fn from(exceeded: QuotaExceeded) -> Self {
        StoreError::Refused(exceeded.message())
    }
}

/// Reports what each agent keeps, family by family.
pub trait QuotaStore: Send + Sync {
    /// The owner's usage in every family of [`Family::ALL`], in that order (zero where it keeps
    /// nothing).
    fn quota_usage<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<(Family, Usage)>, StoreError>>;
}

fn usage_in(conn: &rusqlite::Connection, owner: &str, family: Family) -> Result<Usage, rusqlite::Error> {
    let (items, bytes): (i64, i64) = if family == Family::Files {
        conn.prepare_cached("SELECT count(*), coalesce(sum(bytes), 0) FROM files WHERE owner = ?1")?
            .query_row(params![owner], |row| Ok((row.get(0)?, row.get(1)?)))?
    } else {
        conn.prepare_cached("SELECT items, bytes FROM quota_usage WHERE owner = ?1 AND family = ?2")?
            .query_row(params![owner, family.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?
            .unwrap_or((0, 0))
    };
    Ok(Usage::from_stored(items, bytes))
}

/// Runs `write` (one write of `owner`'s in `family`) and keeps it only if it leaves the owner
/// within `quota`, or if it does not grow what is already over it (so an agent over a lowered
/// quota can still shrink or replace what it keeps). A refused write is undone and nothing else
/// in the transaction is touched.
pub(super) fn within_quota<T>(
    tx: &Transaction<'_>,
    owner: &str,
    family: Family,
    quota: Quota,
    write: impl FnOnce(&Transaction<'_>) -> Result<T, rusqlite::Error>,
) -> Result<Result<T, QuotaExceeded>, rusqlite::Error> {
    if quota == Quota::UNLIMITED {
        return write(tx).map(Ok);
    }
    let before = usage_in(tx, owner, family)?;
    let run = |sql: &str| tx.prepare_cached(sql).and_then(|mut statement| statement.execute([]));
    run("SAVEPOINT quota")?;
    let value = write(tx)?;
    let after = usage_in(tx, owner, family)?;
    let grows_past = |before: u64, after: u64, max: u64| after > max && after > before;
    if grows_past(before.items, after.items, quota.max_items) || grows_past(before.bytes, after.bytes, quota.max_bytes)
    {
        run("ROLLBACK TO quota")?;
        run("RELEASE quota")?;
        return Ok(Err(QuotaExceeded {
            family,
            quota,
            before,
            after,
        }));
    }
    run("RELEASE quota")?;
    Ok(Ok(value))
}

impl QuotaStore for SqliteStore {
    fn quota_usage<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<(Family, Usage)>, StoreError>> {
        let owner = owner.to_owned();
        self.read(move |conn| {
            Family::ALL
                .iter()
                .map(|&family| usage_in(conn, &owner, family).map(|usage| (family, usage)))
                .collect()
        })
        .boxed()
    }
}

/// What the families' tables hold for `owner`, counted the slow way: the triggers must agree.
#[cfg(test)]
pub(super) fn recount(conn: &rusqlite::Connection, owner: &str, family: Family) -> Usage {
    let sql = match family {
        Family::Memory => {
            "SELECT count(*), coalesce(sum(length(CAST(key AS BLOB)) + length(CAST(value AS BLOB))), 0)
             FROM memory WHERE owner = ?1"
        }
        Family::Events => {
            "SELECT count(*), coalesce(sum(length(CAST(topic AS BLOB)) + length(CAST(payload AS BLOB))), 0)
             FROM events WHERE owner = ?1"
        }
        Family::Queue => {
            "SELECT count(*), coalesce(sum(length(CAST(queue AS BLOB)) + length(CAST(item AS BLOB))), 0)
             FROM queue_items WHERE owner = ?1"
        }
        Family::Knowledge => {
            "SELECT count(*), coalesce(sum(length(CAST(doc_id AS BLOB)) + coalesce(length(CAST(title AS BLOB)), 0)
                + coalesce(length(CAST(source AS BLOB)), 0) + length(CAST(metadata AS BLOB))
                + coalesce((SELECT sum(length(CAST(text AS BLOB))) FROM knowledge_chunks WHERE doc = d.id), 0)), 0)
             FROM knowledge_docs d WHERE owner = ?1"
        }
        Family::Secrets => {
            "SELECT count(*), coalesce(sum(length(CAST(name AS BLOB)) + length(nonce) + length(ciphertext)), 0)
             FROM secrets WHERE owner = ?1"
        }
        Family::Files => "SELECT count(*), coalesce(sum(bytes), 0) FROM files WHERE owner = ?1",
    };
    let (items, bytes): (i64, i64) = conn
        .query_row(sql, params![owner], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap();
    Usage {
        items: items as u64,
        bytes: bytes as u64,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::store::{
        EventStore, KnowledgeStore, MemoryStore, NewDocument, QueueStore, SecretStore, StoreLimits, Synchronous,
    };

    fn store_with(dir: &Path, quotas: Quotas) -> Arc<SqliteStore> {
        let limits = StoreLimits {
            quotas,
            ..StoreLimits::default()
        };
        Arc::new(SqliteStore::open_with(dir, Synchronous::Normal, limits).unwrap())
    }

    /// Every family's counted usage equals a recount of its tables, for each owner.
    async fn assert_exact(store: &SqliteStore, owners: &[&str]) {
        for &owner in owners {
            let counted = store.quota_usage(owner).await.unwrap();
            let owner_ = owner.to_owned();
            let recounted = store
                .read(move |conn| {
                    Ok(Family::ALL
                        .iter()
                        .map(|&family| (family, recount(conn, &owner_, family)))
                        .collect::<Vec<_>>())
                })
                .await
                .unwrap();
            assert_eq!(counted, recounted, "usage of {owner}");
        }
    }

    fn document(id: &str, chunks: &[&str]) -> NewDocument {
        NewDocument {
            id: id.into(),
            title: Some("Title é".into()),
            source: None,
            metadata: r#"{"k":"v"}"#.into(),
            chunks: chunks.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[tokio::test]
    async fn usage_follows_every_write_path_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let roomy = Quota {
            max_items: 1000,
            max_bytes: 1 << 20,
        };
        let store = store_with(
            dir.path(),
            Quotas {
                memory: roomy,
                events: roomy,
                queue: roomy,
                knowledge: roomy,
                secrets: roomy,
            },
        );
        let owners = ["a", "b"];
        store.mem_set("a", "k", "\"short\"".into(), None).await.unwrap();
        store
            .mem_set("a", "k", "\"a much longer value ü\"".into(), None)
            .await
            .unwrap();
        store.mem_set("a", "gone", "1".into(), Some(1)).await.unwrap();
        store.mem_set("b", "k", "2".into(), None).await.unwrap();
        assert_exact(&store, &owners).await;
        store.mem_purge_expired().await.unwrap();
        store.mem_delete("b", "k").await.unwrap();
        assert_exact(&store, &owners).await;

        for n in 0..5 {
            store.events_publish("a", "t", format!("{n}"), 3).await.unwrap();
        }
        store.events_publish("b", "t/ü", "\"x\"".into(), 3).await.unwrap();
        assert_exact(&store, &owners).await;
        assert_eq!(store.events_clear("a", "t", Some(4)).await.unwrap(), 2);
        assert_exact(&store, &owners).await;

        store.queue_push("a", "q", "\"one\"".into(), 0, 10).await.unwrap();
        store.queue_push("a", "q", "\"two\"".into(), 0, 10).await.unwrap();
        let leased = store.queue_pop("a", "q", 1, 60_000).await.unwrap();
        assert_exact(&store, &owners).await;
        store.queue_ack("a", "q", &leased[0].receipt).await.unwrap();
        assert_exact(&store, &owners).await;

        store
            .knowledge_put("a", document("d", &["first chunk", "second"]), 10)
            .await
            .unwrap();
        store.knowledge_put("b", document("d", &["theirs"]), 10).await.unwrap();
        store
            .knowledge_put("a", document("d", &["replaced, longer than before"]), 10)
            .await
            .unwrap();
        assert_exact(&store, &owners).await;
        store.knowledge_remove("a", "d").await.unwrap();
        assert_exact(&store, &owners).await;

        store.secret_put("a", "s", vec![0; 12], vec![1; 40]).await.unwrap();
        store.secret_put("a", "s", vec![0; 12], vec![1; 20]).await.unwrap();
        store.secret_put("b", "s", vec![0; 12], vec![1; 20]).await.unwrap();
        assert_exact(&store, &owners).await;
        store.secret_remove("a", "s").await.unwrap();
        assert_exact(&store, &owners).await;
    }

    #[tokio::test]
    async fn a_write_past_a_quota_is_refused_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let memory = Quota {
            max_items: 2,
            max_bytes: 40,
        };
        let quotas = Quotas {
            memory,
            ..Quotas::UNLIMITED
        };
        let store = store_with(dir.path(), quotas);
        store.mem_set("a", "k1", "\"0123456789\"".into(), None).await.unwrap();
        store.mem_set("a", "k2", "1".into(), None).await.unwrap();
        let third = store.mem_set("a", "k3", "1".into(), None).await.unwrap_err();
        let StoreError::Refused(message) = third else {
            panic!("{third:?}")
        };
        assert!(
            message.contains("quotas.memory_items") && message.contains("agentos.mem_delete"),
            "{message}"
        );
        // Growing an existing key past the bytes quota is refused too, and the old value stays.
        let grow = store
            .mem_set("a", "k1", format!("\"{}\"", "x".repeat(40)), None)
            .await
            .unwrap_err();
        assert!(
            matches!(&grow, StoreError::Refused(m) if m.contains("quotas.memory_bytes")),
            "{grow:?}"
        );
        assert_eq!(store.mem_get("a", "k1").await.unwrap().unwrap().value, "\"0123456789\"");
        // Another agent's quota is its own.
        store.mem_set("b", "k3", "1".into(), None).await.unwrap();
        // Deleting makes room at once.
        store.mem_delete("a", "k2").await.unwrap();
        store.mem_set("a", "k3", "1".into(), None).await.unwrap();
        assert_exact(&store, &["a", "b"]).await;
    }

    #[tokio::test]
    async fn over_a_lowered_quota_an_agent_may_still_shrink_what_it_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), Quotas::UNLIMITED);
        store
            .mem_set("a", "k", format!("\"{}\"", "x".repeat(100)), None)
            .await
            .unwrap();
        drop(store);
        let memory = Quota {
            max_items: 10,
            max_bytes: 50,
        };
        let store = store_with(
            dir.path(),
            Quotas {
                memory,
                ..Quotas::UNLIMITED
            },
        );
        store
            .mem_set("a", "k", format!("\"{}\"", "x".repeat(80)), None)
            .await
            .unwrap();
        let grow = store.mem_set("a", "k", format!("\"{}\"", "x".repeat(90)), None).await;
        assert!(matches!(grow, Err(StoreError::Refused(_))), "{grow:?}");
        let new_key = store.mem_set("a", "other", "1".into(), None).await;
        assert!(matches!(new_key, Err(StoreError::Refused(_))), "{new_key:?}");
        store.mem_set("a", "k", "1".into(), None).await.unwrap();
        store.mem_set("a", "other", "1".into(), None).await.unwrap();
    }
}

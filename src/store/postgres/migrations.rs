//! The PostgreSQL schema: the files in `migrations/postgres/`, applied in order, each once,
//! recorded in `schema_migrations`. A shipped file is never edited, only followed by a new one.

use deadpool_postgres::Object;

use crate::store::StoreError;

/// Every migration, in the order it applies. Names are the files' names without `.sql`.
const MIGRATIONS: &[(&str, &str)] = &[
    // First: every family's migration adds triggers that keep `quota_usage` exact.
    (
        "0000_quota",
        include_str!("../../../migrations/postgres/0000_quota.sql"),
    ),
    (
        "0001_memory",
        include_str!("../../../migrations/postgres/0001_memory.sql"),
    ),
    (
        "0002_files",
        include_str!("../../../migrations/postgres/0002_files.sql"),
    ),
    (
        "0003_events",
        include_str!("../../../migrations/postgres/0003_events.sql"),
    ),
    (
        "0004_queue",
        include_str!("../../../migrations/postgres/0004_queue.sql"),
    ),
    (
        "0005_schedules",
        include_str!("../../../migrations/postgres/0005_schedules.sql"),
    ),
    (
        "0006_workflows",
        include_str!("../../../migrations/postgres/0006_workflows.sql"),
    ),
    (
        "0007_secrets",
        include_str!("../../../migrations/postgres/0007_secrets.sql"),
    ),
    (
        "0008_knowledge",
        include_str!("../../../migrations/postgres/0008_knowledge.sql"),
    ),
    (
        "0009_identity",
        include_str!("../../../migrations/postgres/0009_identity.sql"),
    ),
    (
        "0010_audit",
        include_str!("../../../migrations/postgres/0010_audit.sql"),
    ),
    (
        "0011_approvals",
        include_str!("../../../migrations/postgres/0011_approvals.sql"),
    ),
    (
        "0012_traces",
        include_str!("../../../migrations/postgres/0012_traces.sql"),
    ),
    (
        "0013_skills",
        include_str!("../../../migrations/postgres/0013_skills.sql"),
    ),
    (
        "0014_cluster",
        include_str!("../../../migrations/postgres/0014_cluster.sql"),
    ),
    (
        "0015_memory_set",
        include_str!("../../../migrations/postgres/0015_memory_set.sql"),
    ),
];

/// The advisory lock replicas take while they migrate: the first applies, the others wait for it
/// and then find nothing left to do. An arbitrary constant ("agentos" in ASCII).
const MIGRATION_LOCK: i64 = 0x0061_6765_6e74_6f73;

/// Applies the migrations this database has not seen, under the migration lock.
pub(super) async fn apply(client: &mut Object) -> Result<(), StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let outcome = apply_locked(client).await;
    // A session lock outlives errors: release it either way, or the next replica waits forever.
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    outcome?;
    unlocked?;
    Ok(())
}

async fn apply_locked(client: &mut Object) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                name TEXT PRIMARY KEY,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let applied: Vec<String> = client
        .query("SELECT name FROM schema_migrations", &[])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if let Some(unknown) = applied
        .iter()
        .find(|name| !MIGRATIONS.iter().any(|(known, _)| known == name))
    {
        return Err(StoreError::Refused(format!(
            "the database was migrated by a newer agentos (it has migration `{unknown}`, which this \
             version does not know); run the newer version or restore a matching backup"
        )));
    }
    for (name, sql) in MIGRATIONS {
        if applied.iter().any(|done| done == name) {
            continue;
        }
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute("INSERT INTO schema_migrations (name) VALUES ($1)", &[name])
            .await?;
        tx.commit().await?;
        tracing::info!(migration = name, "applied a PostgreSQL migration");
    }
    Ok(())
}

//! Per-agent quotas on PostgreSQL: usage read from `quota_usage` (kept exact by each family's
//! triggers; files are counted from their table, as on SQLite), and the check a write runs.

use deadpool_postgres::{GenericClient, Transaction};
use futures::FutureExt;
use futures::future::BoxFuture;

use super::PgStore;
use crate::store::{Family, Quota, QuotaExceeded, QuotaStore, StoreError, Usage};

async fn usage_in(client: &impl GenericClient, owner: &str, family: Family) -> Result<Usage, StoreError> {
    let row = if family == Family::Files {
        let statement = client
            .prepare_cached("SELECT count(*), coalesce(sum(bytes), 0)::BIGINT FROM files WHERE owner = $1")
            .await?;
        client.query_opt(&statement, &[&owner]).await?
    } else {
        let statement = client
            .prepare_cached("SELECT items, bytes FROM quota_usage WHERE owner = $1 AND family = $2")
            .await?;
        client.query_opt(&statement, &[&owner, &family.as_str()]).await?
    };
    let (items, bytes): (i64, i64) = row.map_or((0, 0), |row| (row.get(0), row.get(1)));
    Ok(Usage::from_stored(items, bytes))
}

/// A quota check around one write: take it before the write (in the owner's write transaction,
/// see [`super::owner_tx`]), write, then ask [`QuotaCheck::after`]. When that answers
/// `Err(QuotaExceeded)` the caller returns it without committing, so nothing of the write stays.
/// A write that does not grow what is already over the quota is kept (an agent over a lowered
/// quota can still shrink or replace what it keeps), as on SQLite.
pub(crate) struct QuotaCheck {
    owner: String,
    family: Family,
    quota: Quota,
    before: Option<Usage>,
}

impl QuotaCheck {
    pub(crate) async fn before(
        tx: &Transaction<'_>,
        owner: &str,
        family: Family,
        quota: Quota,
    ) -> Result<Self, StoreError> {
        let before = if quota == Quota::UNLIMITED {
            None
        } else {
            Some(usage_in(tx, owner, family).await?)
        };
        Ok(Self {
            owner: owner.to_owned(),
            family,
            quota,
            before,
        })
    }

    pub(crate) async fn after(self, tx: &Transaction<'_>) -> Result<Result<(), QuotaExceeded>, StoreError> {
        let Some(before) = self.before else { return Ok(Ok(())) };
        let after = usage_in(tx, &self.owner, self.family).await?;
        let grows_past = |before: u64, after: u64, max: u64| after > max && after > before;
        if grows_past(before.items, after.items, self.quota.max_items)
            || grows_past(before.bytes, after.bytes, self.quota.max_bytes)
        {
            return Ok(Err(QuotaExceeded {
                family: self.family,
                quota: self.quota,
                before,
                after,
            }));
        }
        Ok(Ok(()))
    }
}

impl QuotaStore for PgStore {
    fn quota_usage<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<(Family, Usage)>, StoreError>> {
        async move {
            let client = self.client().await?;
            let mut usage = Vec::with_capacity(Family::ALL.len());
            for family in Family::ALL {
                usage.push((family, usage_in(&client, owner, family).await?));
            }
            Ok(usage)
        }
        .boxed()
    }
}

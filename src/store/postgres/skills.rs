//! The skills marketplace on PostgreSQL: the catalog, published versions and each agent's
//! installs, shared by every replica.
//!
//! A publish reads the latest version and then writes a newer one, so publishes of one slug take
//! a transaction lock on the slug: two replicas publishing the same skill at once run one after
//! the other (the second sees the first's version), as on SQLite's single writer. Installs are
//! an owner's writes and run in the owner's write transaction; the catalog's install counter is
//! bumped with a single `UPDATE`, which PostgreSQL serialises per row.

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_postgres::types::ToSql;

use super::{PgStore, owner_tx};
use crate::store::{
    NewSkillVersion, PublishRefusal, SkillInstall, SkillQuery, SkillSort, SkillStore, SkillSummary, SkillVersion,
    StoreError, now_ms,
};

/// The class key of the per-slug publish lock (a two-key advisory lock, apart from the one-key
/// owner locks): "skil" in ASCII; the second key is the slug's hash.
const PUBLISH_LOCK: i32 = 0x736b_696c;

const SUMMARY_COLUMNS: &str =
    "id, slug, name, author, category, description, tags, latest_version, installs, created_at, updated_at";

fn summary(row: &tokio_postgres::Row) -> SkillSummary {
    SkillSummary {
        id: row.get(0),
        slug: row.get(1),
        name: row.get(2),
        author: row.get(3),
        category: row.get(4),
        description: row.get(5),
        tags: row.get(6),
        latest_version: row.get(7),
        installs: u64::try_from(row.get::<_, i64>(8)).unwrap_or(0),
        created_at_ms: row.get(9),
        updated_at_ms: row.get(10),
    }
}

/// `%`, `_` and the escape itself match literally in a LIKE pattern.
fn like_pattern(word: &str) -> String {
    let mut pattern = String::from("%");
    for c in word.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The `WHERE` clause of a catalog query and its values. Case is folded as SQLite folds it
/// (ASCII letters only, `skills_ascii_lower`), so both stores match the same skills.
fn catalog_filter(query: &SkillQuery) -> (String, Vec<String>) {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    for word in &query.search {
        values.push(like_pattern(word));
        conditions.push(format!(
            "skills_ascii_lower(slug || ' ' || name || ' ' || description || ' ' || author || ' ' || tags) \
             LIKE ${} ESCAPE '\\'",
            values.len()
        ));
    }
    if let Some(category) = &query.category {
        values.push(category.to_lowercase());
        conditions.push(format!("skills_ascii_lower(category) = ${}", values.len()));
    }
    if let Some(author) = &query.author {
        values.push(author.to_lowercase());
        conditions.push(format!("skills_ascii_lower(author) = ${}", values.len()));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    (filter, values)
}

impl SkillStore for PgStore {
    fn skill_publish<'a>(
        &'a self,
        new: NewSkillVersion,
    ) -> BoxFuture<'a, Result<Result<SkillSummary, PublishRefusal>, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let lock = tx
                .prepare_cached("SELECT pg_advisory_xact_lock($1, hashtext($2))")
                .await?;
            tx.execute(&lock, &[&PUBLISH_LOCK, &new.slug]).await?;
            let latest = tx
                .prepare_cached("SELECT latest_version FROM skills WHERE slug = $1")
                .await?;
            if let Some(row) = tx.query_opt(&latest, &[&new.slug]).await? {
                let latest: String = row.get(0);
                if semver::Version::parse(&latest).is_ok_and(|latest| new.version <= latest) {
                    return Ok(Err(PublishRefusal::NotNewer { latest }));
                }
            }
            let now = now_ms();
            let version = new.version.to_string();
            let bytes = i64::try_from(new.bytes).unwrap_or(i64::MAX);
            let insert_version = tx
                .prepare_cached(
                    "INSERT INTO skill_versions (slug, version, manifest, sha256, bytes, published_by, published_at,
                        capabilities, signed_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .await?;
            tx.execute(
                &insert_version,
                &[
                    &new.slug,
                    &version,
                    &new.manifest,
                    &new.sha256,
                    &bytes,
                    &new.published_by,
                    &now,
                    &new.capabilities,
                    &new.signed_by,
                ],
            )
            .await?;
            let upsert = tx
                .prepare_cached(&format!(
                    "INSERT INTO skills (id, slug, name, author, category, description, tags, latest_version,
                        created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                     ON CONFLICT (slug) DO UPDATE SET name = excluded.name, author = excluded.author,
                        category = excluded.category, description = excluded.description, tags = excluded.tags,
                        latest_version = excluded.latest_version, updated_at = excluded.updated_at
                     RETURNING {SUMMARY_COLUMNS}"
                ))
                .await?;
            let row = tx
                .query_one(
                    &upsert,
                    &[
                        &new.id,
                        &new.slug,
                        &new.name,
                        &new.author,
                        &new.category,
                        &new.description,
                        &new.tags,
                        &version,
                        &now,
                    ],
                )
                .await?;
            let skill = summary(&row);
            tx.commit().await?;
            Ok(Ok(skill))
        }
        .boxed()
    }

    fn skills_list<'a>(&'a self, query: &'a SkillQuery) -> BoxFuture<'a, Result<(Vec<SkillSummary>, u64), StoreError>> {
        async move {
            let (filter, values) = catalog_filter(query);
            let values: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
            // NOCASE as SQLite has it: ASCII letters folded, then byte order ("C").
            let order = match query.sort {
                SkillSort::Popular => r#"installs DESC, skills_ascii_lower(name) COLLATE "C", slug COLLATE "C""#,
                SkillSort::Newest => r#"updated_at DESC, slug COLLATE "C""#,
                SkillSort::Name => r#"skills_ascii_lower(name) COLLATE "C", slug COLLATE "C""#,
            };
            let limit = i64::try_from(query.limit.max(1)).unwrap_or(i64::MAX);
            let offset = i64::try_from(query.page.max(1) - 1)
                .unwrap_or(i64::MAX)
                .saturating_mul(limit);
            let mut client = self.client().await?;
            // One snapshot for the count and the page, so they agree.
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let count = tx
                .prepare_cached(&format!("SELECT count(*) FROM skills {filter}"))
                .await?;
            let total: i64 = tx.query_one(&count, &values).await?.get(0);
            let page = tx
                .prepare_cached(&format!(
                    "SELECT {SUMMARY_COLUMNS} FROM skills {filter} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
                ))
                .await?;
            let rows = tx.query(&page, &values).await?;
            tx.commit().await?;
            Ok((rows.iter().map(summary).collect(), u64::try_from(total).unwrap_or(0)))
        }
        .boxed()
    }

    fn skill_find<'a>(&'a self, id_or_slug: &'a str) -> BoxFuture<'a, Result<Option<SkillSummary>, StoreError>> {
        async move {
            let client = self.client().await?;
            // An id and another skill's slug could both match: the id wins.
            let find = client
                .prepare_cached(&format!(
                    "SELECT {SUMMARY_COLUMNS} FROM skills WHERE id = $1 OR slug = $1 ORDER BY id = $1 DESC LIMIT 1"
                ))
                .await?;
            Ok(client.query_opt(&find, &[&id_or_slug]).await?.as_ref().map(summary))
        }
        .boxed()
    }

    fn skill_version<'a>(
        &'a self,
        slug: &'a str,
        version: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<SkillVersion>, StoreError>> {
        async move {
            let client = self.client().await?;
            let read = client
                .prepare_cached(
                    "SELECT v.slug, v.version, v.manifest, v.sha256, v.bytes, v.published_by, v.published_at,
                        v.capabilities, v.signed_by FROM skill_versions v JOIN skills s ON s.slug = v.slug
                     WHERE v.slug = $1 AND v.version = coalesce($2::TEXT, s.latest_version)",
                )
                .await?;
            Ok(client
                .query_opt(&read, &[&slug, &version])
                .await?
                .map(|row| SkillVersion {
                    slug: row.get(0),
                    version: row.get(1),
                    manifest: row.get(2),
                    sha256: row.get(3),
                    bytes: u64::try_from(row.get::<_, i64>(4)).unwrap_or(0),
                    published_by: row.get(5),
                    published_at_ms: row.get(6),
                    capabilities: row.get(7),
                    signed_by: row.get(8),
                }))
        }
        .boxed()
    }

    fn skill_install<'a>(
        &'a self,
        owner: &'a str,
        slug: &'a str,
        version: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(SkillInstall, bool), StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let existing = tx
                .prepare_cached("SELECT id, installed_at FROM skill_installs WHERE owner = $1 AND slug = $2")
                .await?;
            let (id, installed_at_ms, new) = match tx.query_opt(&existing, &[&owner, &slug]).await? {
                Some(row) => {
                    let repin = tx
                        .prepare_cached("UPDATE skill_installs SET version = $3 WHERE owner = $1 AND slug = $2")
                        .await?;
                    tx.execute(&repin, &[&owner, &slug, &version]).await?;
                    (row.get::<_, String>(0), row.get::<_, i64>(1), false)
                }
                None => {
                    let now = now_ms();
                    let insert = tx
                        .prepare_cached(
                            "INSERT INTO skill_installs (owner, slug, version, id, installed_at)
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .await?;
                    tx.execute(&insert, &[&owner, &slug, &version, &id, &now]).await?;
                    let count = tx
                        .prepare_cached("UPDATE skills SET installs = installs + 1 WHERE slug = $1")
                        .await?;
                    tx.execute(&count, &[&slug]).await?;
                    (id.to_owned(), now, true)
                }
            };
            tx.commit().await?;
            let install = SkillInstall {
                id,
                slug: slug.to_owned(),
                version: version.to_owned(),
                installed_at_ms,
            };
            Ok((install, new))
        }
        .boxed()
    }

    fn skill_uninstall<'a>(&'a self, owner: &'a str, slug: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        async move {
            let mut client = self.client().await?;
            let tx = owner_tx(&mut client, owner).await?;
            let remove = tx
                .prepare_cached("DELETE FROM skill_installs WHERE owner = $1 AND slug = $2")
                .await?;
            let removed = tx.execute(&remove, &[&owner, &slug]).await? > 0;
            if removed {
                let count = tx
                    .prepare_cached("UPDATE skills SET installs = greatest(installs - 1, 0) WHERE slug = $1")
                    .await?;
                tx.execute(&count, &[&slug]).await?;
            }
            tx.commit().await?;
            Ok(removed)
        }
        .boxed()
    }

    fn skills_installed<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<SkillInstall>, StoreError>> {
        async move {
            let client = self.client().await?;
            let read = client
                .prepare_cached(
                    r#"SELECT id, slug, version, installed_at FROM skill_installs WHERE owner = $1
                       ORDER BY slug COLLATE "C""#,
                )
                .await?;
            let rows = client.query(&read, &[&owner]).await?;
            Ok(rows
                .iter()
                .map(|row| SkillInstall {
                    id: row.get(0),
                    slug: row.get(1),
                    version: row.get(2),
                    installed_at_ms: row.get(3),
                })
                .collect())
        }
        .boxed()
    }

    fn skill_install_owners(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        async move {
            let client = self.client().await?;
            let read = client
                .prepare_cached(r#"SELECT DISTINCT owner COLLATE "C" FROM skill_installs ORDER BY 1"#)
                .await?;
            Ok(client.query(&read, &[]).await?.iter().map(|row| row.get(0)).collect())
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreLimits;
    use crate::store::postgres::testing;

    fn version(slug: &str, version: &str, category: &str, tags: &str) -> NewSkillVersion {
        NewSkillVersion {
            id: format!("id-{slug}"),
            slug: slug.into(),
            version: semver::Version::parse(version).unwrap(),
            name: format!("The {slug} skill"),
            author: if slug.starts_with('a') { "Ada" } else { "Bob" }.into(),
            category: category.into(),
            description: format!("Does {slug} things."),
            tags: tags.into(),
            manifest: "{}".into(),
            capabilities: "[]".into(),
            signed_by: None,
            sha256: format!("{slug}-{version}"),
            bytes: 10,
            published_by: "owner".into(),
        }
    }

    fn slugs(page: &[SkillSummary]) -> Vec<String> {
        page.iter().map(|s| s.slug.clone()).collect()
    }

    #[tokio::test]
    async fn versions_only_go_up_and_the_catalog_shows_the_latest() {
        let Some(store) = testing::store().await else { return };
        let first = store
            .skill_publish(version("alpha", "1.0.0", "web", "[]"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.id.as_str(), first.latest_version.as_str()),
            ("id-alpha", "1.0.0")
        );
        let mut second = version("alpha", "1.1.0", "web", "[]");
        second.id = "ignored".into();
        second.signed_by = Some("key-1".into());
        let second = store.skill_publish(second).await.unwrap().unwrap();
        assert_eq!(
            (second.id.as_str(), second.latest_version.as_str()),
            ("id-alpha", "1.1.0")
        );
        assert_eq!(second.created_at_ms, first.created_at_ms);
        for stale in ["1.1.0", "1.0.5"] {
            let refused = store.skill_publish(version("alpha", stale, "web", "[]")).await.unwrap();
            assert_eq!(refused, Err(PublishRefusal::NotNewer { latest: "1.1.0".into() }));
        }
        let latest = store.skill_version("alpha", None).await.unwrap().unwrap();
        assert_eq!(
            (latest.sha256.as_str(), latest.signed_by.as_deref()),
            ("alpha-1.1.0", Some("key-1"))
        );
        let pinned = store.skill_version("alpha", Some("1.0.0")).await.unwrap().unwrap();
        assert_eq!((pinned.sha256.as_str(), pinned.bytes), ("alpha-1.0.0", 10));
        assert!(store.skill_version("alpha", Some("9.9.9")).await.unwrap().is_none());
        assert!(store.skill_version("nope", None).await.unwrap().is_none());
        assert_eq!(store.skill_find("id-alpha").await.unwrap().unwrap().slug, "alpha");
        assert_eq!(store.skill_find("alpha").await.unwrap().unwrap().id, "id-alpha");
        assert_eq!(store.skill_find("nope").await.unwrap(), None);
    }

    #[tokio::test]
    async fn listing_filters_sorts_and_pages() {
        let Some(store) = testing::store().await else { return };
        for (slug, category, tags) in [
            ("alpha", "web", r#"["html"]"#),
            ("beta", "text", r#"["100%"]"#),
            ("apex", "web", "[]"),
            ("bravo", "data", r#"["csv"]"#),
        ] {
            store
                .skill_publish(version(slug, "1.0.0", category, tags))
                .await
                .unwrap()
                .unwrap();
        }
        store.skill_install("agent", "bravo", "1.0.0", "i1").await.unwrap();
        store.skill_install("other", "bravo", "1.0.0", "i2").await.unwrap();
        store.skill_install("agent", "beta", "1.0.0", "i3").await.unwrap();

        let all = SkillQuery {
            page: 1,
            limit: 10,
            ..Default::default()
        };
        let (page, total) = store.skills_list(&all).await.unwrap();
        assert_eq!(
            (slugs(&page), total),
            (vec!["bravo".into(), "beta".into(), "alpha".into(), "apex".into()], 4)
        );
        let by_name = SkillQuery {
            sort: SkillSort::Name,
            limit: 2,
            page: 2,
            ..all.clone()
        };
        let (page, total) = store.skills_list(&by_name).await.unwrap();
        assert_eq!((slugs(&page), total), (vec!["beta".into(), "bravo".into()], 4));
        let web = SkillQuery {
            category: Some("WEB".into()),
            ..all.clone()
        };
        assert_eq!(store.skills_list(&web).await.unwrap().1, 2);
        let searched = SkillQuery {
            search: vec!["HTML".into()],
            ..all.clone()
        };
        assert_eq!(slugs(&store.skills_list(&searched).await.unwrap().0), ["alpha"]);
        // LIKE wildcards in a search match themselves only.
        let percent = SkillQuery {
            search: vec!["%".into()],
            ..all.clone()
        };
        assert_eq!(slugs(&store.skills_list(&percent).await.unwrap().0), ["beta"]);
        let by_author = SkillQuery {
            author: Some("ada".into()),
            ..all.clone()
        };
        assert_eq!(store.skills_list(&by_author).await.unwrap().1, 2);
        let beyond = SkillQuery {
            page: 3,
            limit: 2,
            ..all
        };
        assert_eq!(store.skills_list(&beyond).await.unwrap(), (Vec::new(), 4));
    }

    /// Names sort and match as SQLite's NOCASE and lower() have them: ASCII letters folded,
    /// everything else compared byte for byte.
    #[tokio::test]
    async fn names_fold_ascii_case_only_as_on_sqlite() {
        let Some(store) = testing::store().await else { return };
        for (slug, name) in [
            ("s1", "zeta"),
            ("s2", "Beta"),
            ("s3", "alpha"),
            ("s4", "Élan"),
            ("s5", "éclair"),
        ] {
            let mut new = version(slug, "1.0.0", "misc", "[]");
            new.name = name.into();
            store.skill_publish(new).await.unwrap().unwrap();
        }
        let by_name = SkillQuery {
            sort: SkillSort::Name,
            page: 1,
            limit: 10,
            ..Default::default()
        };
        let names: Vec<String> = store
            .skills_list(&by_name)
            .await
            .unwrap()
            .0
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["alpha", "Beta", "zeta", "Élan", "éclair"]);
        let search = |word: &str| SkillQuery {
            search: vec![word.into()],
            ..by_name.clone()
        };
        assert_eq!(slugs(&store.skills_list(&search("BETA")).await.unwrap().0), ["s2"]);
        assert_eq!(slugs(&store.skills_list(&search("ÉCLAIR")).await.unwrap().0), ["s5"]);
        assert!(
            store.skills_list(&search("élan")).await.unwrap().0.is_empty(),
            "É is not folded"
        );
    }

    #[tokio::test]
    async fn installs_are_per_agent_pinned_and_counted() {
        let Some(store) = testing::store().await else { return };
        store
            .skill_publish(version("alpha", "1.0.0", "web", "[]"))
            .await
            .unwrap()
            .unwrap();
        store
            .skill_publish(version("alpha", "2.0.0", "web", "[]"))
            .await
            .unwrap()
            .unwrap();
        let (first, new) = store.skill_install("a", "alpha", "1.0.0", "i1").await.unwrap();
        assert!(new);
        let (moved, new) = store.skill_install("a", "alpha", "2.0.0", "i9").await.unwrap();
        assert!(!new);
        assert_eq!((moved.id.as_str(), moved.version.as_str()), ("i1", "2.0.0"));
        assert_eq!(moved.installed_at_ms, first.installed_at_ms);
        store.skill_install("b", "alpha", "1.0.0", "i2").await.unwrap();
        assert_eq!(store.skill_find("alpha").await.unwrap().unwrap().installs, 2);
        assert_eq!(store.skills_installed("a").await.unwrap(), [moved]);
        assert_eq!(store.skill_install_owners().await.unwrap(), ["a", "b"]);
        assert!(store.skill_uninstall("a", "alpha").await.unwrap());
        assert!(!store.skill_uninstall("a", "alpha").await.unwrap());
        assert!(store.skills_installed("a").await.unwrap().is_empty());
        assert_eq!(store.skills_installed("b").await.unwrap().len(), 1);
        assert_eq!(store.skill_find("alpha").await.unwrap().unwrap().installs, 1);
        assert_eq!(store.skill_install_owners().await.unwrap(), ["b"]);
    }

    /// Replicas publishing one slug at once run one after the other: of two publishes of the
    /// same version one wins and the other is refused, and the catalog ends at the highest
    /// version whichever commits first.
    #[tokio::test]
    async fn concurrent_publishes_of_one_slug_serialise() {
        let Some(url) = testing::fresh_database().await else {
            return;
        };
        let one = PgStore::connect(&url, 4, StoreLimits::default()).await.unwrap();
        let two = PgStore::connect(&url, 4, StoreLimits::default()).await.unwrap();
        for round in 0..10 {
            let slug = format!("s{round}");
            let (a, b) = tokio::join!(
                one.skill_publish(version(&slug, "1.0.0", "web", "[]")),
                two.skill_publish(version(&slug, "1.0.0", "web", "[]")),
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(u8::from(a.is_ok()) + u8::from(b.is_ok()), 1, "exactly one publish wins");
            let (low, high) = tokio::join!(
                one.skill_publish(version(&slug, "1.5.0", "web", "[]")),
                two.skill_publish(version(&slug, "2.0.0", "web", "[]")),
            );
            assert!(high.unwrap().is_ok());
            let low = low.unwrap();
            let latest = one.skill_find(&slug).await.unwrap().unwrap().latest_version;
            assert_eq!(latest, "2.0.0", "never a lower version over a higher one");
            if let Err(refusal) = low {
                assert_eq!(refusal, PublishRefusal::NotNewer { latest: "2.0.0".into() });
            }
        }
    }

    /// The same agent installing the same skill from two replicas at once: one install is new,
    /// the other moves its pin, and the counter counts one.
    #[tokio::test]
    async fn concurrent_installs_by_one_agent_count_once() {
        let Some(url) = testing::fresh_database().await else {
            return;
        };
        let one = PgStore::connect(&url, 4, StoreLimits::default()).await.unwrap();
        let two = PgStore::connect(&url, 4, StoreLimits::default()).await.unwrap();
        one.skill_publish(version("alpha", "1.0.0", "web", "[]"))
            .await
            .unwrap()
            .unwrap();
        for round in 0..10 {
            let owner = format!("agent{round}");
            let (a, b) = tokio::join!(
                one.skill_install(&owner, "alpha", "1.0.0", "i1"),
                two.skill_install(&owner, "alpha", "1.0.0", "i2"),
            );
            let ((a, a_new), (b, b_new)) = (a.unwrap(), b.unwrap());
            assert!(a_new != b_new, "exactly one install is new");
            assert_eq!(a.id, b.id, "both answer the one install");
        }
        assert_eq!(one.skill_find("alpha").await.unwrap().unwrap().installs, 10);
    }
}

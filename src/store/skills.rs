//! The skills marketplace: the catalog (one row per skill, its latest version's description),
//! every published version (its manifest and the digest of its component; the component itself
//! lives in a file named by that digest, outside the database) and each agent's installs.

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{OptionalExtension, params};

use super::{Migration, SqliteStore, StoreError, now_ms};

pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        name: "skills_1",
        sql: "CREATE TABLE skills (
        id TEXT PRIMARY KEY,
        slug TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        author TEXT NOT NULL,
        category TEXT NOT NULL,
        description TEXT NOT NULL,
        tags TEXT NOT NULL,
        latest_version TEXT NOT NULL,
        installs INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE skill_versions (
        slug TEXT NOT NULL,
        version TEXT NOT NULL,
        manifest TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        bytes INTEGER NOT NULL,
        published_by TEXT NOT NULL,
        published_at INTEGER NOT NULL,
        PRIMARY KEY (slug, version)
    ) WITHOUT ROWID;
    CREATE TABLE skill_installs (
        owner TEXT NOT NULL,
        slug TEXT NOT NULL,
        version TEXT NOT NULL,
        id TEXT NOT NULL,
        installed_at INTEGER NOT NULL,
        PRIMARY KEY (owner, slug)
    ) WITHOUT ROWID;",
    },
    Migration {
        name: "skills_2",
        // The tools a version offers (name, description, schemas), worked out from its component
        // when it is published, so listing an agent's tools never needs the component compiled.
        // And the publisher key that signed it, when one did.
        sql: "ALTER TABLE skill_versions ADD COLUMN capabilities TEXT NOT NULL DEFAULT '[]';
            ALTER TABLE skill_versions ADD COLUMN signed_by TEXT;",
    },
];

/// A version to publish; its component is already stored under `sha256`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSkillVersion {
    /// Used when the slug is new; an existing skill keeps its id.
    pub id: String,
    pub slug: String,
    pub version: semver::Version,
    pub name: String,
    pub author: String,
    pub category: String,
    pub description: String,
    /// JSON array of strings.
    pub tags: String,
    /// The manifest as JSON.
    pub manifest: String,
    /// The capabilities' tool specs as JSON (see `skills::CapabilitySpec`).
    pub capabilities: String,
    pub sha256: String,
    pub bytes: u64,
    pub published_by: String,
    /// The trusted key that signed it (`skills.trusted_keys`), if any.
    pub signed_by: Option<String>,
}

/// A skill as the marketplace lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillSummary {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub author: String,
    pub category: String,
    pub description: String,
    /// JSON array of strings.
    pub tags: String,
    pub latest_version: String,
    pub installs: u64,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillVersion {
    pub slug: String,
    pub version: String,
    pub manifest: String,
    /// The capabilities' tool specs as JSON (see `skills::CapabilitySpec`).
    pub capabilities: String,
    pub sha256: String,
    pub bytes: u64,
    pub published_by: String,
    pub published_at_ms: i64,
    pub signed_by: Option<String>,
}

/// An agent's install of a skill, pinned to a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillInstall {
    pub id: String,
    pub slug: String,
    pub version: String,
    pub installed_at_ms: i64,
}

/// How the marketplace listing is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SkillSort {
    /// Most installed first.
    #[default]
    Popular,
    /// Most recently published first.
    Newest,
    /// By name, A to Z.
    Name,
}

/// A page of the marketplace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SkillQuery {
    /// Words that must each appear in the slug, name, description, author or tags.
    pub search: Vec<String>,
    pub category: Option<String>,
    pub author: Option<String>,
    pub sort: SkillSort,
    /// From 1.
    pub page: u64,
    pub limit: u64,
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishRefusal {
    /// Versions of a slug only go up; this is the latest.
    NotNewer { latest: String },
}

pub trait SkillStore: Send + Sync {
    /// Records a version (and the skill, when its slug is new); the catalog shows the newest.
    fn skill_publish<'a>(
        &'a self,
        version: NewSkillVersion,
    ) -> BoxFuture<'a, Result<Result<SkillSummary, PublishRefusal>, StoreError>>;
    /// One page of the catalog, and how many skills match in all.
    fn skills_list<'a>(&'a self, query: &'a SkillQuery) -> BoxFuture<'a, Result<(Vec<SkillSummary>, u64), StoreError>>;
    /// A skill by its id or its slug.
    fn skill_find<'a>(&'a self, id_or_slug: &'a str) -> BoxFuture<'a, Result<Option<SkillSummary>, StoreError>>;
    /// A published version of a skill; the latest when `version` is `None`.
    fn skill_version<'a>(
        &'a self,
        slug: &'a str,
        version: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<SkillVersion>, StoreError>>;
    /// Installs (or moves the pin of) `slug` at `version` for `owner`; `id` is used when the
    /// install is new. Returns the install, and whether it is new.
    fn skill_install<'a>(
        &'a self,
        owner: &'a str,
        slug: &'a str,
        version: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(SkillInstall, bool), StoreError>>;
    /// Removes `owner`'s install of `slug`; false if there was none.
    fn skill_uninstall<'a>(&'a self, owner: &'a str, slug: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// `owner`'s installs, by slug.
    fn skills_installed<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<SkillInstall>, StoreError>>;
    /// Every agent that has at least one skill installed.
    fn skill_install_owners(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>>;
}

const SUMMARY_COLUMNS: &str =
    "id, slug, name, author, category, description, tags, latest_version, installs, created_at, updated_at";

fn summary(row: &rusqlite::Row<'_>) -> Result<SkillSummary, rusqlite::Error> {
    Ok(SkillSummary {
        id: row.get(0)?,
        slug: row.get(1)?,
        name: row.get(2)?,
        author: row.get(3)?,
        category: row.get(4)?,
        description: row.get(5)?,
        tags: row.get(6)?,
        latest_version: row.get(7)?,
        installs: u64::try_from(row.get::<_, i64>(8)?).unwrap_or(0),
        created_at_ms: row.get(9)?,
        updated_at_ms: row.get(10)?,
    })
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

impl SkillStore for SqliteStore {
    fn skill_publish<'a>(
        &'a self,
        new: NewSkillVersion,
    ) -> BoxFuture<'a, Result<Result<SkillSummary, PublishRefusal>, StoreError>> {
        self.write(move |tx| {
            let latest: Option<String> = tx
                .prepare_cached("SELECT latest_version FROM skills WHERE slug = ?1")?
                .query_row(params![new.slug], |row| row.get(0))
                .optional()?;
            if let Some(latest) = latest
                && semver::Version::parse(&latest).is_ok_and(|latest| new.version <= latest)
            {
                return Ok(Err(PublishRefusal::NotNewer { latest }));
            }
            let now = now_ms();
            let version = new.version.to_string();
            tx.prepare_cached(
                "INSERT INTO skill_versions (slug, version, manifest, sha256, bytes, published_by, published_at,
                    capabilities, signed_by) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                new.slug,
                version,
                new.manifest,
                new.sha256,
                i64::try_from(new.bytes).unwrap_or(i64::MAX),
                new.published_by,
                now,
                new.capabilities,
                new.signed_by
            ])?;
            tx.prepare_cached(
                "INSERT INTO skills (id, slug, name, author, category, description, tags, latest_version, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
                 ON CONFLICT (slug) DO UPDATE SET name = excluded.name, author = excluded.author,
                    category = excluded.category, description = excluded.description, tags = excluded.tags,
                    latest_version = excluded.latest_version, updated_at = excluded.updated_at",
            )?
            .execute(params![
                new.id,
                new.slug,
                new.name,
                new.author,
                new.category,
                new.description,
                new.tags,
                version,
                now
            ])?;
            let skill = tx
                .prepare_cached(&format!("SELECT {SUMMARY_COLUMNS} FROM skills WHERE slug = ?1"))?
                .query_row(params![new.slug], summary)?;
            Ok(Ok(skill))
        })
        .boxed()
    }

    fn skills_list<'a>(&'a self, query: &'a SkillQuery) -> BoxFuture<'a, Result<(Vec<SkillSummary>, u64), StoreError>> {
        let query = query.clone();
        self.read(move |conn| {
            let mut conditions = Vec::new();
            let mut values: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            for word in &query.search {
                values.push(Box::new(like_pattern(word)));
                let n = values.len();
                conditions.push(format!(
                    "lower(slug || ' ' || name || ' ' || description || ' ' || author || ' ' || tags) LIKE ?{n} ESCAPE '\\'"
                ));
            }
            if let Some(category) = &query.category {
                values.push(Box::new(category.to_lowercase()));
                conditions.push(format!("lower(category) = ?{}", values.len()));
            }
            if let Some(author) = &query.author {
                values.push(Box::new(author.to_lowercase()));
                conditions.push(format!("lower(author) = ?{}", values.len()));
            }
            let filter = if conditions.is_empty() {
                String::new()
            } else {
                format!("WHERE {}", conditions.join(" AND "))
            };
            let order = match query.sort {
                SkillSort::Popular => "installs DESC, name COLLATE NOCASE, slug",
                SkillSort::Newest => "updated_at DESC, slug",
                SkillSort::Name => "name COLLATE NOCASE, slug",
            };
            let params = rusqlite::params_from_iter(values.iter().map(|v| v.as_ref()));
            let total: i64 = conn.query_row(&format!("SELECT count(*) FROM skills {filter}"), params, |row| row.get(0))?;
            let limit = i64::try_from(query.limit.max(1)).unwrap_or(i64::MAX);
            let offset = i64::try_from(query.page.max(1) - 1).unwrap_or(i64::MAX).saturating_mul(limit);
            let sql = format!("SELECT {SUMMARY_COLUMNS} FROM skills {filter} ORDER BY {order} LIMIT {limit} OFFSET {offset}");
            let params = rusqlite::params_from_iter(values.iter().map(|v| v.as_ref()));
            let page = conn.prepare(&sql)?.query_map(params, summary)?.collect::<Result<Vec<_>, _>>()?;
            Ok((page, u64::try_from(total).unwrap_or(0)))
        })
        .boxed()
    }

    fn skill_find<'a>(&'a self, id_or_slug: &'a str) -> BoxFuture<'a, Result<Option<SkillSummary>, StoreError>> {
        let key = id_or_slug.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {SUMMARY_COLUMNS} FROM skills WHERE id = ?1 OR slug = ?1"
            ))?
            .query_row(params![key], summary)
            .optional()
        })
        .boxed()
    }

    fn skill_version<'a>(
        &'a self,
        slug: &'a str,
        version: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Option<SkillVersion>, StoreError>> {
        let (slug, version) = (slug.to_owned(), version.map(str::to_owned));
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT v.slug, v.version, v.manifest, v.sha256, v.bytes, v.published_by, v.published_at,
                    v.capabilities, v.signed_by FROM skill_versions v JOIN skills s ON s.slug = v.slug
                 WHERE v.slug = ?1 AND v.version = coalesce(?2, s.latest_version)",
            )?
            .query_row(params![slug, version], |row| {
                Ok(SkillVersion {
                    slug: row.get(0)?,
                    version: row.get(1)?,
                    manifest: row.get(2)?,
                    sha256: row.get(3)?,
                    bytes: u64::try_from(row.get::<_, i64>(4)?).unwrap_or(0),
                    published_by: row.get(5)?,
                    published_at_ms: row.get(6)?,
                    capabilities: row.get(7)?,
                    signed_by: row.get(8)?,
                })
            })
            .optional()
        })
        .boxed()
    }

    fn skill_install<'a>(
        &'a self,
        owner: &'a str,
        slug: &'a str,
        version: &'a str,
        id: &'a str,
    ) -> BoxFuture<'a, Result<(SkillInstall, bool), StoreError>> {
        let (owner, slug, version, id) = (owner.to_owned(), slug.to_owned(), version.to_owned(), id.to_owned());
        self.write(move |tx| {
            let existing: Option<(String, i64)> = tx
                .prepare_cached("SELECT id, installed_at FROM skill_installs WHERE owner = ?1 AND slug = ?2")?
                .query_row(params![owner, slug], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let (id, installed_at_ms, new) = match existing {
                Some((id, at)) => {
                    tx.prepare_cached("UPDATE skill_installs SET version = ?3 WHERE owner = ?1 AND slug = ?2")?
                        .execute(params![owner, slug, version])?;
                    (id, at, false)
                }
                None => {
                    let now = now_ms();
                    tx.prepare_cached(
                        "INSERT INTO skill_installs (owner, slug, version, id, installed_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )?
                    .execute(params![owner, slug, version, id, now])?;
                    tx.prepare_cached("UPDATE skills SET installs = installs + 1 WHERE slug = ?1")?
                        .execute(params![slug])?;
                    (id, now, true)
                }
            };
            Ok((
                SkillInstall {
                    id,
                    slug,
                    version,
                    installed_at_ms,
                },
                new,
            ))
        })
        .boxed()
    }

    fn skill_uninstall<'a>(&'a self, owner: &'a str, slug: &'a str) -> BoxFuture<'a, Result<bool, StoreError>> {
        let (owner, slug) = (owner.to_owned(), slug.to_owned());
        self.write(move |tx| {
            let removed = tx
                .prepare_cached("DELETE FROM skill_installs WHERE owner = ?1 AND slug = ?2")?
                .execute(params![owner, slug])?;
            if removed > 0 {
                tx.prepare_cached("UPDATE skills SET installs = max(installs - 1, 0) WHERE slug = ?1")?
                    .execute(params![slug])?;
            }
            Ok(removed > 0)
        })
        .boxed()
    }

    fn skills_installed<'a>(&'a self, owner: &'a str) -> BoxFuture<'a, Result<Vec<SkillInstall>, StoreError>> {
        let owner = owner.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT id, slug, version, installed_at FROM skill_installs WHERE owner = ?1 ORDER BY slug",
            )?
            .query_map(params![owner], |row| {
                Ok(SkillInstall {
                    id: row.get(0)?,
                    slug: row.get(1)?,
                    version: row.get(2)?,
                    installed_at_ms: row.get(3)?,
                })
            })?
            .collect()
        })
        .boxed()
    }

    fn skill_install_owners(&self) -> BoxFuture<'_, Result<Vec<String>, StoreError>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT DISTINCT owner FROM skill_installs ORDER BY owner")?
                .query_map([], |row| row.get(0))?
                .collect()
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Synchronous;

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

    #[tokio::test]
    async fn versions_only_go_up_and_the_catalog_shows_the_latest() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
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
        let second = store.skill_publish(second).await.unwrap().unwrap();
        assert_eq!(
            (second.id.as_str(), second.latest_version.as_str()),
            ("id-alpha", "1.1.0")
        );
        for stale in ["1.1.0", "1.0.5"] {
            let refused = store.skill_publish(version("alpha", stale, "web", "[]")).await.unwrap();
            assert_eq!(refused, Err(PublishRefusal::NotNewer { latest: "1.1.0".into() }));
        }
        let latest = store.skill_version("alpha", None).await.unwrap().unwrap();
        assert_eq!(latest.sha256, "alpha-1.1.0");
        let pinned = store.skill_version("alpha", Some("1.0.0")).await.unwrap().unwrap();
        assert_eq!(pinned.sha256, "alpha-1.0.0");
        assert!(store.skill_version("alpha", Some("9.9.9")).await.unwrap().is_none());
        assert_eq!(store.skill_find("id-alpha").await.unwrap().unwrap().slug, "alpha");
        assert_eq!(store.skill_find("alpha").await.unwrap().unwrap().id, "id-alpha");
    }

    #[tokio::test]
    async fn listing_filters_sorts_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
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
        let slugs = |page: &[SkillSummary]| page.iter().map(|s| s.slug.clone()).collect::<Vec<_>>();

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
            ..all
        };
        assert_eq!(store.skills_list(&by_author).await.unwrap().1, 2);
    }

    #[tokio::test]
    async fn installs_are_per_agent_pinned_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal).unwrap();
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
        assert!(store.skill_uninstall("a", "alpha").await.unwrap());
        assert!(!store.skill_uninstall("a", "alpha").await.unwrap());
        assert!(store.skills_installed("a").await.unwrap().is_empty());
        assert_eq!(store.skills_installed("b").await.unwrap().len(), 1);
        assert_eq!(store.skill_find("alpha").await.unwrap().unwrap().installs, 1);
    }
}

-- agentos PostgreSQL schema: skills. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- The skills marketplace (mirrors SQLite's skills_1 and skills_2): the catalog, one row per skill
-- with its latest version's description; every published version (its manifest, the tools it
-- offers and the digest of its component, which lives in a file named by that digest); and each
-- agent's installs, pinned to a version.
CREATE TABLE skills (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    author TEXT NOT NULL,
    category TEXT NOT NULL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    latest_version TEXT NOT NULL,
    installs BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE skill_versions (
    slug TEXT NOT NULL,
    version TEXT NOT NULL,
    manifest TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    published_by TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    -- The tools a version offers (name, description, schemas), worked out when it is published.
    capabilities TEXT NOT NULL DEFAULT '[]',
    -- The publisher key that signed it, when one did.
    signed_by TEXT,
    PRIMARY KEY (slug, version)
);
CREATE TABLE skill_installs (
    owner TEXT NOT NULL,
    slug TEXT NOT NULL,
    version TEXT NOT NULL,
    id TEXT NOT NULL,
    installed_at BIGINT NOT NULL,
    PRIMARY KEY (owner, slug)
);

-- SQLite's lower() and NOCASE fold ASCII letters only; the catalog's search, filters and name
-- order fold exactly those, so both stores match and sort the same names.
CREATE FUNCTION skills_ascii_lower(value TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT translate(value, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz') $$;

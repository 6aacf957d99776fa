-- agentos PostgreSQL schema: per-agent storage quotas. Applied once, in file order, by
-- src/store/postgres/migrations.rs.
--
-- One row per owner and family, kept exact by triggers that each family's own migration
-- creates on its tables (so a family's triggers live beside its table). Bytes count the UTF-8
-- bytes of what the agent chose (keys, names, topics, values), as on SQLite.
CREATE TABLE quota_usage (
    owner TEXT NOT NULL,
    family TEXT NOT NULL,
    items BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    PRIMARY KEY (owner, family)
);

-- Adds (or, with negative numbers, removes) items and bytes from an owner's usage of a family.
-- Families' triggers call it.
CREATE FUNCTION quota_add(p_owner TEXT, p_family TEXT, p_items BIGINT, p_bytes BIGINT) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO quota_usage (owner, family, items, bytes) VALUES (p_owner, p_family, p_items, p_bytes)
    ON CONFLICT (owner, family) DO UPDATE
        SET items = quota_usage.items + excluded.items, bytes = quota_usage.bytes + excluded.bytes;
$$;

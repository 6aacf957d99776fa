-- agentos PostgreSQL schema: memory. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- Per-agent key-value memory. Keys compare bytewise (COLLATE "C"), as SQLite's BINARY collation
-- does, so listing order and the prefix ranges `mem_list` scans are the same whatever the
-- database's locale. `id` gives rows the creation order SQLite's rowid gives (ties in search
-- scores go to the older row).
--
-- `search_terms` only narrows searches: it holds the row's tokens as FTS5's unicode61 tokenizer
-- makes them (computed by agentos, src/store/postgres/memory/search.rs) plus an owner lexeme, so
-- the GIN index finds the caller's candidate rows; the exact matching and the BM25 score are
-- computed by agentos from the rows' text, as on SQLite.
CREATE TABLE memory (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    expires_at BIGINT,
    search_terms TSVECTOR NOT NULL,
    UNIQUE (owner, key)
);
CREATE INDEX memory_search ON memory USING gin (search_terms);
-- The purge finds expired rows without reading the others.
CREATE INDEX memory_expiry ON memory (expires_at) WHERE expires_at IS NOT NULL;

-- Each owner's row count and indexed length in characters (key + value), which BM25 needs:
-- kept exact by the trigger below, so a search reads one row instead of summing every value.
CREATE TABLE memory_search_stats (
    owner TEXT COLLATE "C" PRIMARY KEY,
    entries BIGINT NOT NULL,
    characters BIGINT NOT NULL
);

-- Keeps quota_usage (items; UTF-8 bytes of key and value, as SQLite counts) and
-- memory_search_stats (entries; characters, as SQLite's length()) exact on every write.
CREATE FUNCTION memory_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM quota_add(OLD.owner, 'memory', -1, -(octet_length(OLD.key) + octet_length(OLD.value)));
        UPDATE memory_search_stats SET entries = entries - 1,
            characters = characters - char_length(OLD.key) - char_length(OLD.value)
        WHERE owner = OLD.owner;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM quota_add(NEW.owner, 'memory', 1, octet_length(NEW.key) + octet_length(NEW.value));
        INSERT INTO memory_search_stats (owner, entries, characters)
        VALUES (NEW.owner, 1, char_length(NEW.key) + char_length(NEW.value))
        ON CONFLICT (owner) DO UPDATE SET entries = memory_search_stats.entries + 1,
            characters = memory_search_stats.characters + excluded.characters;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER memory_track AFTER INSERT OR UPDATE OR DELETE ON memory
    FOR EACH ROW EXECUTE FUNCTION memory_track();

-- agentos PostgreSQL schema: knowledge. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- Per-agent documents split into chunks (mirrors SQLite's knowledge_1 and knowledge_2), searched
-- with PostgreSQL full-text search and scored by BM25 from the owner's chunks alone (see
-- src/store/ranking.rs): the index only finds matches, the score comes from the owner's own
-- statistics row.
CREATE TABLE knowledge_docs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    title TEXT,
    source TEXT,
    metadata TEXT NOT NULL,
    chunks BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (owner, doc_id)
);

-- `tsv` indexes the text as SQLite's unicode61 tokenizer splits it: every run of letters and
-- digits is one word (the text's other characters become spaces first, so the parser never
-- sees an e-mail, URL or hyphenated compound), lowercased by the `simple` configuration, which
-- neither stems nor drops stop words.
CREATE TABLE knowledge_chunks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc BIGINT NOT NULL REFERENCES knowledge_docs (id),
    seq BIGINT NOT NULL,
    text TEXT NOT NULL,
    tsv TSVECTOR NOT NULL GENERATED ALWAYS AS (
        to_tsvector('simple'::regconfig, regexp_replace(text, '[^[:alnum:]]+', ' ', 'g'))
    ) STORED
);
CREATE INDEX knowledge_chunks_doc ON knowledge_chunks (doc);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);

-- Each owner's chunk count and total length in characters: BM25's N and average length.
CREATE TABLE knowledge_search_stats (
    owner TEXT PRIMARY KEY,
    chunks BIGINT NOT NULL,
    characters BIGINT NOT NULL
);

-- Chunks carry no owner: theirs is the document's, which exists while they do (a document's
-- chunks are always deleted before it, as the foreign key demands, and AFTER ROW triggers run at
-- the end of the deleting statement, while the document is still there).
CREATE FUNCTION knowledge_chunk_counts() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    chunk knowledge_chunks;
    sign BIGINT;
    doc_owner TEXT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        chunk := NEW;
        sign := 1;
    ELSE
        chunk := OLD;
        sign := -1;
    END IF;
    SELECT owner INTO doc_owner FROM knowledge_docs WHERE id = chunk.doc;
    INSERT INTO knowledge_search_stats (owner, chunks, characters)
        VALUES (doc_owner, sign, sign * char_length(chunk.text))
        ON CONFLICT (owner) DO UPDATE SET chunks = knowledge_search_stats.chunks + excluded.chunks,
            characters = knowledge_search_stats.characters + excluded.characters;
    -- Quota: a chunk adds its text's UTF-8 bytes, as SQLite's quota_knowledge_chunk_* triggers.
    PERFORM quota_add(doc_owner, 'knowledge', 0, sign * octet_length(chunk.text));
    RETURN NULL;
END;
$$;
CREATE TRIGGER knowledge_chunk_counts AFTER INSERT OR DELETE ON knowledge_chunks
    FOR EACH ROW EXECUTE FUNCTION knowledge_chunk_counts();

-- Quota: a document is one item of the UTF-8 bytes of its id, title, source and metadata, as
-- SQLite's quota_knowledge_doc_* triggers count it (documents are never updated in place).
CREATE FUNCTION knowledge_doc_quota() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM quota_add(NEW.owner, 'knowledge', 1, octet_length(NEW.doc_id)
            + coalesce(octet_length(NEW.title), 0) + coalesce(octet_length(NEW.source), 0)
            + octet_length(NEW.metadata));
    ELSE
        PERFORM quota_add(OLD.owner, 'knowledge', -1, -(octet_length(OLD.doc_id)
            + coalesce(octet_length(OLD.title), 0) + coalesce(octet_length(OLD.source), 0)
            + octet_length(OLD.metadata)));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER knowledge_doc_quota AFTER INSERT OR DELETE ON knowledge_docs
    FOR EACH ROW EXECUTE FUNCTION knowledge_doc_quota();

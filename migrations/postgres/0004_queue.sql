-- agentos PostgreSQL schema: queue. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- Mirrors the SQLite tables after queue_1 and queue_2 (src/store/queue.rs). `id` keeps the pop
-- order of items that became visible at the same millisecond and never leaves the store; the id
-- an agent sees is `seq`, numbered per owner by `queue_sequences`.
CREATE TABLE queue_items (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner TEXT NOT NULL,
    queue TEXT NOT NULL,
    item TEXT NOT NULL,
    enqueued_at BIGINT NOT NULL,
    visible_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- The receipt of the item's current lease; NULL until first popped.
    lease TEXT,
    seq BIGINT NOT NULL DEFAULT 0
);
-- Pops take the items visible longest first.
CREATE INDEX queue_items_ready ON queue_items (owner, queue, visible_at, id);
-- Acks find the item from the receipt's id part.
CREATE UNIQUE INDEX queue_items_seq ON queue_items (owner, seq);

-- Items per queue, so the size limit is one row read.
CREATE TABLE queues (
    owner TEXT NOT NULL,
    queue TEXT NOT NULL,
    items BIGINT NOT NULL,
    PRIMARY KEY (owner, queue)
);

CREATE TABLE queue_sequences (
    owner TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

-- Quota usage, counted as SQLite's quota_queue_* triggers do: one item per queued item, the
-- UTF-8 bytes of its queue name and item. Leasing changes neither, so updates need no trigger.
CREATE FUNCTION queue_quota_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM quota_add(NEW.owner, 'queue', 1, octet_length(NEW.queue) + octet_length(NEW.item));
    RETURN NULL;
END;
$$;
CREATE TRIGGER queue_quota_insert AFTER INSERT ON queue_items
    FOR EACH ROW EXECUTE FUNCTION queue_quota_insert();

-- Per statement, each owner's usage updated once; owners in a fixed order so concurrent
-- statements lock usage rows alike.
CREATE FUNCTION queue_quota_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM quota_add(gone.owner, 'queue', -count(*), -sum(octet_length(gone.queue) + octet_length(gone.item)))
        FROM gone GROUP BY gone.owner ORDER BY gone.owner;
    RETURN NULL;
END;
$$;
CREATE TRIGGER queue_quota_delete AFTER DELETE ON queue_items
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION queue_quota_delete();

-- agentos PostgreSQL schema: events. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- Mirrors the SQLite tables after events_1 and events_2 (src/store/events.rs): `seq` orders every
-- agent's events and never leaves the store; `topic_seq` numbers an owner's topic (1, 2, 3, ...)
-- from the counter `event_topics.last_seq`, bumped inside the publishing transaction.
CREATE TABLE events (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    published_at BIGINT NOT NULL,
    topic_seq BIGINT NOT NULL DEFAULT 0
);
-- Polls, retention and clears all walk one topic in `topic_seq` order.
CREATE UNIQUE INDEX events_by_topic ON events (owner, topic, topic_seq);

CREATE TABLE event_topics (
    owner TEXT NOT NULL,
    topic TEXT NOT NULL,
    -- How many events the topic holds, so retention needs no count over the topic.
    events BIGINT NOT NULL,
    -- The highest topic_seq retention or a clear dropped (0 if none).
    trimmed_through BIGINT NOT NULL DEFAULT 0,
    last_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (owner, topic)
);

-- Quota usage, counted as SQLite's quota_events_* triggers do: one item per event, the UTF-8
-- bytes of its topic and payload.
CREATE FUNCTION events_quota_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM quota_add(NEW.owner, 'events', 1, octet_length(NEW.topic) + octet_length(NEW.payload));
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_quota_insert AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION events_quota_insert();

-- Per statement, so retention dropping many events updates each owner's usage once. Owners in a
-- fixed order, so two statements touching the same owners lock their usage rows alike.
CREATE FUNCTION events_quota_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM quota_add(gone.owner, 'events', -count(*), -sum(octet_length(gone.topic) + octet_length(gone.payload)))
        FROM gone GROUP BY gone.owner ORDER BY gone.owner;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_quota_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION events_quota_delete();

-- agentos PostgreSQL schema: one round trip per memory write. Applied once, in file order, by
-- src/store/postgres/migrations.rs.
--
-- `mem_set` was seven statements (begin, owner lock, quota read, liveness read, upsert, quota
-- read, commit), each write its own transaction. agentos now gathers the writes waiting at one
-- moment into one call of `memory_set_many` outside a transaction block: one round trip and one
-- commit for the lot (src/store/postgres/memory/batch.rs), which is what bounds memory writes
-- per second on a busy server.

-- An update of a row that keeps its owner changes usage by the difference: one quota row update
-- and one statistics update instead of two of each.
CREATE OR REPLACE FUNCTION memory_track() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.owner = NEW.owner THEN
        PERFORM quota_add(NEW.owner, 'memory', 0,
            octet_length(NEW.key) + octet_length(NEW.value) - octet_length(OLD.key) - octet_length(OLD.value));
        UPDATE memory_search_stats
        SET characters = characters + char_length(NEW.key) + char_length(NEW.value)
            - char_length(OLD.key) - char_length(OLD.value)
        WHERE owner = NEW.owner;
        RETURN NULL;
    END IF;
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

-- Sets `p_key` in `p_owner`'s memory unless that would take the owner past a quota, under the
-- owner's write lock (the one src/store/postgres.rs `owner_tx` takes, so it queues with every
-- other write to the owner's items). `created`: no live entry had the key (an expired one counts
-- as absent). `written`: false when the quota refused the write, which then changed nothing;
-- the usage figures say why. As everywhere, a write that does not grow what is already over a
-- (lowered) quota is allowed. Usage counts expired rows until they are purged, as on SQLite.
CREATE FUNCTION memory_set(
    p_owner TEXT, p_key TEXT, p_value TEXT, p_now BIGINT, p_expires_at BIGINT,
    p_lexemes TEXT[], p_max_items BIGINT, p_max_bytes BIGINT,
    OUT created BOOLEAN, OUT written BOOLEAN,
    OUT before_items BIGINT, OUT before_bytes BIGINT, OUT after_items BIGINT, OUT after_bytes BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    old_bytes BIGINT;
    old_expires_at BIGINT;
    new_bytes BIGINT := octet_length(p_key) + octet_length(p_value);
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(p_owner, 0));
    SELECT items, bytes INTO before_items, before_bytes
    FROM quota_usage WHERE owner = p_owner AND family = 'memory';
    before_items := coalesce(before_items, 0);
    before_bytes := coalesce(before_bytes, 0);
    SELECT octet_length(key) + octet_length(value), expires_at INTO old_bytes, old_expires_at
    FROM memory WHERE owner = p_owner AND key = p_key;
    IF FOUND THEN
        created := old_expires_at IS NOT NULL AND old_expires_at <= p_now;
        after_items := before_items;
        after_bytes := before_bytes - old_bytes + new_bytes;
    ELSE
        created := TRUE;
        after_items := before_items + 1;
        after_bytes := before_bytes + new_bytes;
    END IF;
    IF (after_items > p_max_items AND after_items > before_items)
        OR (after_bytes > p_max_bytes AND after_bytes > before_bytes) THEN
        written := FALSE;
        RETURN;
    END IF;
    INSERT INTO memory (owner, key, value, updated_at, expires_at, search_terms)
    VALUES (p_owner, p_key, p_value, p_now, p_expires_at, array_to_tsvector(p_lexemes))
    ON CONFLICT (owner, key) DO UPDATE SET value = excluded.value,
        updated_at = excluded.updated_at, expires_at = excluded.expires_at,
        search_terms = excluded.search_terms;
    written := TRUE;
END;
$$;

-- `memory_set` for many writes in one transaction, answering a row per write (`idx`, from 1, is
-- its place in the arrays). `p_lexemes` holds every write's lexemes one after another,
-- `p_lexeme_counts` how many are each one's. Writes take their owners' locks in the order of the
-- lock keys (a write's place breaks ties, so two writes of one key apply in order): two batches
-- on two replicas then never wait for each other in a cycle.
CREATE FUNCTION memory_set_many(
    p_owners TEXT[], p_keys TEXT[], p_values TEXT[], p_now BIGINT, p_expires_at BIGINT[],
    p_lexeme_counts INT[], p_lexemes TEXT[], p_max_items BIGINT, p_max_bytes BIGINT)
RETURNS TABLE (idx INT, created BOOLEAN, written BOOLEAN, before_items BIGINT, before_bytes BIGINT,
    after_items BIGINT, after_bytes BIGINT)
LANGUAGE plpgsql AS $$
DECLARE
    starts INT[];
    next_start INT := 1;
    i INT;
    outcome RECORD;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_owners, 1), 0) LOOP
        starts[i] := next_start;
        next_start := next_start + p_lexeme_counts[i];
    END LOOP;
    FOR i IN SELECT w.ord FROM unnest(p_owners) WITH ORDINALITY AS w (owner_id, ord)
             ORDER BY hashtextextended(w.owner_id, 0), w.ord LOOP
        SELECT * INTO outcome FROM memory_set(p_owners[i], p_keys[i], p_values[i], p_now, p_expires_at[i],
            p_lexemes[starts[i] : starts[i] + p_lexeme_counts[i] - 1], p_max_items, p_max_bytes);
        idx := i;
        created := outcome.created;
        written := outcome.written;
        before_items := outcome.before_items;
        before_bytes := outcome.before_bytes;
        after_items := outcome.after_items;
        after_bytes := outcome.after_bytes;
        RETURN NEXT;
    END LOOP;
END;
$$;

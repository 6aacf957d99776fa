-- agentos PostgreSQL schema: identity. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- The tables mirror the SQLite store's (src/store/identity.rs). Ids that listings page through
-- or that other tables reference are `COLLATE "C"` so `id > cursor ORDER BY id` compares bytes,
-- as SQLite's BINARY collation does, whatever the database's default collation is.
CREATE TABLE agents (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    owner_email TEXT,
    account_id TEXT,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    -- JSON arrays of strings, kept as text so they round-trip byte for byte.
    allowed_domains TEXT NOT NULL,
    allowed_tools TEXT NOT NULL,
    tokens_valid_after BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- An operator's listing: its account's agents in id order.
CREATE INDEX agents_account ON agents (account_id, id);

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    agent_id TEXT COLLATE "C" NOT NULL REFERENCES agents (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE tokens (
    jti TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX tokens_expiry ON tokens (expires_at);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
-- Creating a session drops that account's expired ones.
CREATE INDEX sessions_account ON sessions (account_id, expires_at);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX password_resets_account ON password_resets (account_id);
-- Creating a reset token and pruning drop the expired ones.
CREATE INDEX password_resets_expiry ON password_resets (expires_at);

-- Cross-replica cache invalidation. Replicas cache an agent's credentials (its row, its token
-- revocations, its browser sessions) and LISTEN on `agentos_identity`; every write that could
-- make cached credentials wrong notifies, inside its transaction, so the message goes out
-- exactly when (and only if) the write commits. Triggers rather than calls in each write, so no
-- write path (present or future) can forget: the payload is the agent id, or `session:` and the
-- session's id hash for a deleted session.

-- Any change to an agent row: created, disabled, re-roled, tools changed, tokens invalidated,
-- deleted.
CREATE FUNCTION identity_notify_agent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('agentos_identity', OLD.id);
    END IF;
    -- Notifications with the same payload in one transaction are sent once.
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('agentos_identity', NEW.id);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER agents_notify AFTER INSERT OR UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION identity_notify_agent();

-- A token recorded revoked, or revoked later.
CREATE FUNCTION identity_notify_token() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agentos_identity', NEW.agent_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER tokens_notify AFTER INSERT OR UPDATE ON tokens
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL) EXECUTE FUNCTION identity_notify_token();

-- A session deleted (signed out, a password reset, expired and dropped).
CREATE FUNCTION identity_notify_session() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agentos_identity', 'session:' || OLD.id_hash);
    RETURN NULL;
END;
$$;
CREATE TRIGGER sessions_notify AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION identity_notify_session();

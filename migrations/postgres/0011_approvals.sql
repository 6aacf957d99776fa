-- agentos PostgreSQL schema: approvals. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- Mirrors the SQLite table (src/store/approvals.rs) after all its migrations. `id` is
-- `COLLATE "C"` so the listing's tie-break orders bytes, as SQLite's BINARY collation does.
CREATE TABLE approvals (
    id TEXT COLLATE "C" PRIMARY KEY,
    agent_id TEXT NOT NULL,
    account_id TEXT,
    caller TEXT NOT NULL,
    tool TEXT NOT NULL,
    input TEXT NOT NULL,
    preview TEXT NOT NULL,
    request_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT,
    decided_by TEXT,
    note TEXT,
    result TEXT,
    finished_at BIGINT,
    sealed_input BYTEA
);
CREATE INDEX approvals_status ON approvals (status, expires_at);
CREATE INDEX approvals_agent ON approvals (agent_id, created_at);
CREATE INDEX approvals_account ON approvals (account_id, created_at) WHERE account_id IS NOT NULL;
-- The newest-first listing over everyone's approvals.
CREATE INDEX approvals_created ON approvals (created_at DESC, id);

-- A call waiting for its approval may wait on another replica than the one that decides, runs
-- or expires it: every status change (approved, denied, expired, completed, failed) notifies
-- `agentos_approvals` with the approval's id, inside the changing transaction, so waiters
-- anywhere re-read it as soon as the change commits. A trigger, so no status write can forget.
CREATE FUNCTION approvals_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('agentos_approvals', NEW.id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER approvals_notify AFTER UPDATE OF status ON approvals
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION approvals_notify();

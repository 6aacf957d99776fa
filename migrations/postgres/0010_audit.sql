-- agentos PostgreSQL schema: audit. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- The audit trail of tool calls (mirrors SQLite's `audit_log` after audit_1 and audit_2) and the
-- per-agent activity counters. `seq` is an identity: never reused after a purge, so a page cursor
-- stays valid. Appends take a transaction lock (see src/store/postgres/audit.rs) so that `seq`
-- order is also commit order, which keeps `seq < cursor` paging exact while replicas write.
CREATE TABLE audit_log (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    account_id TEXT,
    tool TEXT NOT NULL,
    origin TEXT,
    input_digest TEXT NOT NULL,
    outcome TEXT NOT NULL,
    latency_us BIGINT NOT NULL,
    error TEXT,
    -- The skill a call was made through (`<slug>@<version>`), for host calls of skills.
    skill TEXT
);
CREATE INDEX audit_log_agent ON audit_log (agent_id, seq);
CREATE INDEX audit_log_account ON audit_log (account_id, seq) WHERE account_id IS NOT NULL;
CREATE INDEX audit_log_time ON audit_log (time_ms);

CREATE TABLE agent_activity (
    agent_id TEXT PRIMARY KEY,
    total_calls BIGINT NOT NULL,
    last_active_at BIGINT NOT NULL
);

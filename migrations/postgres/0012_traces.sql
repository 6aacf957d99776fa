-- agentos PostgreSQL schema: traces. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- One row per trace, its spans kept beside the summary as one JSON array (mirrors SQLite's
-- `traces`). `seq` orders traces as they were written (newest first in lists; retention by count
-- deletes a contiguous range); appends take a transaction lock (see
-- src/store/postgres/traces.rs) so that `seq` order is also commit order.
CREATE TABLE traces (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trace_id TEXT NOT NULL UNIQUE,
    started_ms BIGINT NOT NULL,
    duration_us BIGINT NOT NULL,
    root TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    account_id TEXT,
    tool TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    request_id TEXT NOT NULL,
    spans TEXT NOT NULL
);
CREATE INDEX traces_agent ON traces (agent_id, seq);
-- Operators read their account's traces; retention deletes by age.
CREATE INDEX traces_account ON traces (account_id, seq) WHERE account_id IS NOT NULL;
CREATE INDEX traces_started ON traces (started_ms);

-- agentos PostgreSQL schema: schedules. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- Mirrors the SQLite tables after schedule_1 and schedule_2 (src/store/schedule.rs). Flags SQLite
-- keeps as 0/1 integers are BOOLEAN here. Ids sort bytewise (COLLATE "C"), as SQLite's BINARY
-- collation does, whatever the database's default collation, so lists come out in the same order.
CREATE TABLE schedules (
    id TEXT COLLATE "C" PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT,
    tool TEXT NOT NULL,
    -- As shown (sensitive values redacted); the real input, when it differs, is sealed_input.
    input TEXT NOT NULL,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    -- JSON arrays of the creator's patterns.
    allowed_tools TEXT NOT NULL,
    allowed_domains TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    next_run_at BIGINT,
    last_run_at BIGINT,
    last_outcome TEXT,
    runs BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    sealed_input BYTEA
);
CREATE INDEX schedules_by_owner ON schedules (owner, created_at);
-- The scheduler's queries: the earliest due enabled schedules.
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE enabled;

CREATE TABLE schedule_runs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id TEXT COLLATE "C" NOT NULL REFERENCES schedules (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    scheduled_at BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    missed BIGINT NOT NULL,
    error TEXT,
    result TEXT,
    result_truncated BOOLEAN NOT NULL
);
CREATE INDEX schedule_runs_by_schedule ON schedule_runs (schedule_id, seq);

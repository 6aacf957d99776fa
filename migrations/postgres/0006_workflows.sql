-- agentos PostgreSQL schema: workflows. Applied once, in file order, by src/store/postgres/migrations.rs.
--
-- Mirrors the SQLite tables of workflow_1 (src/store/workflow.rs). Flags SQLite keeps as 0/1
-- integers are BOOLEAN here. Run ids sort bytewise (COLLATE "C"), as SQLite's BINARY collation
-- does, so lists and retention order runs created at the same millisecond alike.
CREATE TABLE workflow_runs (
    id TEXT COLLATE "C" PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    background BOOLEAN NOT NULL,
    -- The process executing the run, so recovery can tell a dead process's runs.
    instance TEXT NOT NULL,
    error TEXT,
    created_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX workflow_runs_by_owner ON workflow_runs (owner, created_at);
CREATE INDEX workflow_runs_running ON workflow_runs (instance) WHERE status = 'running';

CREATE TABLE workflow_steps (
    run_id TEXT COLLATE "C" NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    idx BIGINT NOT NULL,
    step_id TEXT NOT NULL,
    tool TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    result_truncated BOOLEAN NOT NULL DEFAULT false,
    error TEXT,
    started_at BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (run_id, idx)
);

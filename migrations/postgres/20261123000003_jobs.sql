-- Background jobs. A row is the job: its state and progress survive a restart. `owner` and
-- `lease_until` mark the process running it; a lease that runs out means that process died.
-- `input` holds an import's upload so any process can run the job.
CREATE TABLE jobs (
    id               TEXT PRIMARY KEY NOT NULL,
    workspace        TEXT NOT NULL,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed',
                                                    'cancelled', 'timed_out', 'interrupted')),
    params           TEXT NOT NULL,
    input            BYTEA,
    actor            TEXT NOT NULL,
    restartable      BOOLEAN NOT NULL DEFAULT FALSE,
    done             BIGINT NOT NULL DEFAULT 0,
    total            BIGINT NOT NULL DEFAULT 0,
    message          TEXT NOT NULL DEFAULT '',
    error            TEXT,
    result           TEXT,
    result_path      TEXT,
    result_type      TEXT,
    result_name      TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    owner            TEXT,
    lease_until      TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL,
    started_at       TIMESTAMPTZ,
    finished_at      TIMESTAMPTZ
);
CREATE INDEX jobs_queue ON jobs (state, created_at);
CREATE INDEX jobs_workspace ON jobs (workspace, created_at);

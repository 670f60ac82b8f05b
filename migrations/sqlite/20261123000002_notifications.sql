-- The notification outbox: rows written in the same transaction as the task change they are
-- about, delivered later by the dispatcher. `lease_until` marks a row an attempt has claimed;
-- an attempt that dies with its process leaves a lease that simply runs out.
CREATE TABLE notifications (
    id              TEXT PRIMARY KEY NOT NULL,
    workspace       TEXT NOT NULL,
    channel         TEXT NOT NULL CHECK (channel IN ('webhook', 'email')),
    target          TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    task_id         TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    delivered_at    TEXT,
    lease_until     TEXT
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_workspace ON notifications (workspace, created_at);

CREATE TABLE notification_attempts (
    notification_id TEXT NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    attempt         INTEGER NOT NULL,
    started_at      TEXT NOT NULL,
    finished_at     TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    status_code     INTEGER,
    error           TEXT,
    PRIMARY KEY (notification_id, attempt)
);

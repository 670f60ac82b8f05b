-- Tasks, and the per-workspace event log that every change appends to in its own transaction.
CREATE TABLE tasks (
    id             TEXT PRIMARY KEY NOT NULL,
    workspace      TEXT NOT NULL,
    title          TEXT NOT NULL,
    description    TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL CHECK (status IN ('pending', 'in_progress', 'completed')),
    assignee       TEXT,
    assignee_email TEXT,
    due_date       TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    created_by     TEXT,
    updated_by     TEXT,
    version        BIGINT NOT NULL
);
CREATE INDEX tasks_workspace_created ON tasks (workspace, created_at, id);
CREATE INDEX tasks_workspace_status ON tasks (workspace, status);
CREATE INDEX tasks_workspace_assignee ON tasks (workspace, assignee);

CREATE TABLE workspace_seqs (
    workspace TEXT PRIMARY KEY NOT NULL,
    last_seq  BIGINT NOT NULL
);

CREATE TABLE task_events (
    workspace TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    kind      TEXT NOT NULL,
    task_id   TEXT NOT NULL,
    at        TIMESTAMPTZ NOT NULL,
    task      TEXT NOT NULL,
    previous  TEXT,
    PRIMARY KEY (workspace, seq)
);
CREATE INDEX task_events_at ON task_events (at);

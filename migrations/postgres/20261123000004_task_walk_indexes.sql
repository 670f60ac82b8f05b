-- Jobs walk a workspace's tasks in id order, optionally filtered by status or assignee
-- (keyset paging: `id > $last ORDER BY id`). These indexes let each page start where the last
-- one ended instead of sorting every matching task again.
CREATE INDEX tasks_workspace_id ON tasks (workspace, id);
DROP INDEX tasks_workspace_status;
CREATE INDEX tasks_workspace_status ON tasks (workspace, status, id);
DROP INDEX tasks_workspace_assignee;
CREATE INDEX tasks_workspace_assignee ON tasks (workspace, assignee, id);

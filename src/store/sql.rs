//! The SQL both backends run. It is written once, with `$n` placeholders that SQLite and
//! Postgres both accept, and stamped out per backend by [`impl_sql_store!`] so each backend is
//! a concrete, separately compiled implementation of [`Store`](super::Store).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::error::{Error, Result};
use crate::domain::event::{EventKind, TaskEvent};
use crate::domain::query::TaskQuery;
use crate::domain::task::{Task, TaskStatus};

/// Columns of `tasks` in the order [`TaskRow`] reads them.
pub(super) const TASK_COLUMNS: &str = "id, workspace, title, description, status, assignee, assignee_email, \
     due_date, created_at, updated_at, created_by, updated_by, version";

pub(super) const INSERT_TASK: &str = "INSERT INTO tasks (id, workspace, title, description, status, assignee, \
     assignee_email, due_date, created_at, updated_at, created_by, updated_by, version) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

pub(super) const UPDATE_TASK: &str = "UPDATE tasks SET title = $3, description = $4, status = $5, \
     assignee = $6, assignee_email = $7, due_date = $8, updated_at = $9, updated_by = $10, version = $11 \
     WHERE workspace = $1 AND id = $2 AND version = $12";

pub(super) const DELETE_TASK: &str =
    "DELETE FROM tasks WHERE workspace = $1 AND id = $2 AND version = $3";

/// Takes the next sequence number of a workspace. The row stays locked until commit, so
/// writers of one workspace commit in sequence order and a rollback gives the number back.
pub(super) const NEXT_SEQ: &str = "INSERT INTO workspace_seqs (workspace, last_seq) VALUES ($1, 1) \
     ON CONFLICT (workspace) DO UPDATE SET last_seq = workspace_seqs.last_seq + 1 RETURNING last_seq";

/// Takes `$2` sequence numbers at once for a batch; returns the last one.
pub(super) const NEXT_SEQS: &str = "INSERT INTO workspace_seqs (workspace, last_seq) VALUES ($1, $2) \
     ON CONFLICT (workspace) DO UPDATE SET last_seq = workspace_seqs.last_seq + $2 RETURNING last_seq";

/// Parameters [`INSERT_EVENT`] binds; statements sent with it number theirs from the next.
pub(super) const EVENT_PARAMS: usize = 7;

pub(super) const INSERT_EVENT: &str = "INSERT INTO task_events (workspace, seq, kind, task_id, at, task, previous) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";

pub(super) const EVENTS_AFTER: &str = "SELECT workspace, seq, kind, at, task, previous FROM task_events \
     WHERE workspace = $1 AND seq > $2 ORDER BY seq LIMIT $3";

pub(super) const LOG_BOUNDS: &str = "SELECT (SELECT MIN(seq) FROM task_events WHERE workspace = $1), \
     COALESCE((SELECT last_seq FROM workspace_seqs WHERE workspace = $1), 0)";

pub(super) const PRUNE_BY_AGE: &str = "DELETE FROM task_events WHERE at < $1";

pub(super) const PRUNE_BY_COUNT: &str = "DELETE FROM task_events WHERE seq <= \
     (SELECT last_seq FROM workspace_seqs w WHERE w.workspace = task_events.workspace) - $1";

/// A `tasks` row as both drivers decode it.
pub(super) type TaskRow = (
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<String>,
    Option<String>,
    i64,
);

/// A `task_events` row as both drivers decode it.
pub(super) type EventRow = (String, i64, String, DateTime<Utc>, String, Option<String>);

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::internal(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("corrupt row in database: {what}"),
    ))
}

pub(super) fn task_from_row(row: TaskRow) -> Result<Task> {
    let (
        id,
        workspace,
        title,
        description,
        status,
        assignee,
        assignee_email,
        due_date,
        created_at,
        updated_at,
        created_by,
        updated_by,
        version,
    ) = row;
    Ok(Task {
        id: Uuid::parse_str(&id).map_err(|e| corrupt(format_args!("task id {id:?}: {e}")))?,
        workspace,
        title,
        description,
        status: status
            .parse::<TaskStatus>()
            .map_err(|_| corrupt(format_args!("task status {status:?}")))?,
        assignee,
        assignee_email,
        due_date,
        created_at,
        updated_at,
        created_by,
        updated_by,
        version,
    })
}

pub(super) fn event_from_row(row: EventRow) -> Result<TaskEvent> {
    let (workspace, seq, kind, at, task, previous) = row;
    let decode = |json: &str| -> Result<Task> {
        let mut t: Task = serde_json::from_str(json)
            .map_err(|e| corrupt(format_args!("event {seq} payload: {e}")))?;
        t.workspace.clone_from(&workspace);
        Ok(t)
    };
    Ok(TaskEvent {
        kind: EventKind::parse(&kind)
            .ok_or_else(|| corrupt(format_args!("event kind {kind:?}")))?,
        task: decode(&task)?,
        previous: previous.as_deref().map(decode).transpose()?,
        workspace: workspace.clone(),
        seq,
        at,
    })
}

/// Escapes `%`, `_` and `\` so user text matches literally inside `LIKE … ESCAPE '\'`. Case
/// is left alone: the backend's case-insensitive operator does the folding.
pub(super) fn like_pattern(q: &str) -> String {
    let mut out = String::with_capacity(q.len() + 2);
    out.push('%');
    for c in q.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// `ORDER BY` text from whitelisted columns only, ending with `id` so pages are stable.
pub(super) fn order_by(query: &TaskQuery) -> String {
    let mut parts: Vec<String> = query
        .sort
        .iter()
        .map(|k| {
            format!(
                "{} {} NULLS LAST",
                k.field.column(),
                if k.descending { "DESC" } else { "ASC" }
            )
        })
        .collect();
    parts.push("id ASC".to_owned());
    format!(" ORDER BY {}", parts.join(", "))
}

/// Implements [`Store`](super::Store) for a backend struct that has `reader()` and `writer()`
/// pools of database type `$db`. `one_trip` says the backend runs several statements sent as
/// one (SQLite does; a Postgres prepared statement cannot), so a change's event and its
/// notifications are written in one round trip to the database.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty, $name:literal, lock = $lock:literal, like = $like:literal, one_trip = $one_trip:literal) => {
        impl $store {
            fn push_filter(
                qb: &mut sqlx::QueryBuilder<$db>,
                workspace: &str,
                filter: &crate::domain::query::TaskFilter,
            ) {
                qb.push(" WHERE workspace = ")
                    .push_bind(workspace.to_owned());
                if let Some(status) = filter.status {
                    qb.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(assignee) = &filter.assignee {
                    qb.push(" AND assignee = ").push_bind(assignee.clone());
                }
                if let Some(q) = &filter.q {
                    let pattern = crate::store::sql::like_pattern(q);
                    qb.push(concat!(" AND (title ", $like, " "))
                        .push_bind(pattern.clone())
                        .push(concat!(" ESCAPE '\\' OR description ", $like, " "))
                        .push_bind(pattern)
                        .push(" ESCAPE '\\')");
                }
            }

            /// Appends the change's event to the log and writes the notifications `plan` asks
            /// for with it.
            async fn append_event(
                tx: &mut sqlx::Transaction<'_, $db>,
                kind: crate::domain::event::EventKind,
                task: &crate::domain::task::Task,
                previous: Option<&crate::domain::task::Task>,
                plan: crate::store::PlanOutbox<'_>,
            ) -> crate::domain::error::Result<crate::domain::event::TaskEvent> {
                use crate::store::sql::*;
                let (seq,): (i64,) = sqlx::query_as(NEXT_SEQ)
                    .bind(&task.workspace)
                    .fetch_one(&mut **tx)
                    .await?;
                let at = crate::domain::task::now();
                let task_json =
                    serde_json::to_string(task).map_err(crate::domain::error::Error::internal)?;
                let previous_json = previous
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(crate::domain::error::Error::internal)?;
                let event = crate::domain::event::TaskEvent {
                    workspace: task.workspace.clone(),
                    seq,
                    kind,
                    at,
                    task: task.clone(),
                    previous: previous.cloned(),
                };
                let rows = plan(&event);
                let together = $one_trip && !rows.is_empty();
                let sql: std::borrow::Cow<'static, str> = if together {
                    format!(
                        "{INSERT_EVENT}; {}",
                        crate::store::outbox::insert_notifications_sql(
                            rows.len(),
                            EVENT_PARAMS + 1,
                        )
                    )
                    .into()
                } else {
                    INSERT_EVENT.into()
                };
                let query = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(&task.workspace)
                    .bind(seq)
                    .bind(kind.as_str())
                    .bind(task.id.to_string())
                    .bind(at)
                    .bind(task_json)
                    .bind(previous_json);
                if together {
                    Self::bind_notifications(query, &rows)
                        .execute(&mut **tx)
                        .await?;
                } else {
                    query.execute(&mut **tx).await?;
                    Self::insert_notifications(tx, &rows).await?;
                }
                Ok(event)
            }

            /// Applies one change inside `tx`; `None` when its task does not exist.
            async fn apply(
                tx: &mut sqlx::Transaction<'_, $db>,
                change: crate::store::Change<'_>,
                plan: crate::store::PlanOutbox<'_>,
            ) -> crate::domain::error::Result<Option<crate::domain::event::TaskEvent>> {
                use crate::domain::event::EventKind;
                use crate::store::Change;
                use crate::store::sql::*;
                let event = match change {
                    Change::Create(t) => {
                        sqlx::query(INSERT_TASK)
                            .bind(t.id.to_string())
                            .bind(&t.workspace)
                            .bind(&t.title)
                            .bind(&t.description)
                            .bind(t.status.as_str())
                            .bind(&t.assignee)
                            .bind(&t.assignee_email)
                            .bind(&t.due_date)
                            .bind(t.created_at)
                            .bind(t.updated_at)
                            .bind(&t.created_by)
                            .bind(&t.updated_by)
                            .bind(t.version)
                            .execute(&mut **tx)
                            .await?;
                        Self::append_event(tx, EventKind::Created, &t, None, plan).await?
                    }
                    Change::Update {
                        workspace,
                        id,
                        decide,
                    } => {
                        let Some(previous) = Self::read_for_write(tx, workspace, id).await? else {
                            return Ok(None);
                        };
                        let next = decide(&previous)?;
                        sqlx::query(UPDATE_TASK)
                            .bind(&next.workspace)
                            .bind(next.id.to_string())
                            .bind(&next.title)
                            .bind(&next.description)
                            .bind(next.status.as_str())
                            .bind(&next.assignee)
                            .bind(&next.assignee_email)
                            .bind(&next.due_date)
                            .bind(next.updated_at)
                            .bind(&next.updated_by)
                            .bind(next.version)
                            .bind(previous.version)
                            .execute(&mut **tx)
                            .await?;
                        Self::append_event(tx, EventKind::Updated, &next, Some(&previous), plan)
                            .await?
                    }
                    Change::Delete {
                        workspace,
                        id,
                        decide,
                    } => {
                        let Some(current) = Self::read_for_write(tx, workspace, id).await? else {
                            return Ok(None);
                        };
                        let task = decide(&current)?;
                        sqlx::query(DELETE_TASK)
                            .bind(&task.workspace)
                            .bind(task.id.to_string())
                            .bind(task.version)
                            .execute(&mut **tx)
                            .await?;
                        Self::append_event(tx, EventKind::Deleted, &task, Some(&current), plan)
                            .await?
                    }
                };
                Ok(Some(event))
            }

            /// Reads a task inside the write transaction, locking its row where the backend
            /// needs that to keep concurrent writers from interleaving.
            async fn read_for_write(
                tx: &mut sqlx::Transaction<'_, $db>,
                workspace: &str,
                id: uuid::Uuid,
            ) -> crate::domain::error::Result<Option<crate::domain::task::Task>> {
                use crate::store::sql::*;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE workspace = $1 AND id = $2{}",
                    $lock
                ));
                let row: Option<TaskRow> = sqlx::query_as(sql)
                    .bind(workspace)
                    .bind(id.to_string())
                    .fetch_optional(&mut **tx)
                    .await?;
                row.map(task_from_row).transpose()
            }
        }

        #[async_trait::async_trait]
        impl crate::store::Store for $store {
            fn backend(&self) -> &'static str {
                $name
            }

            async fn ping(&self) -> crate::domain::error::Result<()> {
                sqlx::query("SELECT 1").execute(self.reader()).await?;
                Ok(())
            }

            async fn list_tasks(
                &self,
                workspace: &str,
                query: &crate::domain::query::TaskQuery,
            ) -> crate::domain::error::Result<crate::store::TaskPage> {
                use crate::store::sql::*;
                let mut count = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*) FROM tasks");
                Self::push_filter(&mut count, workspace, &query.filter);
                let (total,): (i64,) = count.build_query_as().fetch_one(self.reader()).await?;

                let mut page =
                    sqlx::QueryBuilder::<$db>::new(format!("SELECT {TASK_COLUMNS} FROM tasks"));
                Self::push_filter(&mut page, workspace, &query.filter);
                page.push(order_by(query));
                page.push(" LIMIT ").push_bind(query.limit);
                page.push(" OFFSET ").push_bind(query.offset);
                let rows: Vec<TaskRow> = page.build_query_as().fetch_all(self.reader()).await?;
                let tasks = rows
                    .into_iter()
                    .map(task_from_row)
                    .collect::<crate::domain::error::Result<_>>()?;
                Ok(crate::store::TaskPage { tasks, total })
            }

            async fn get_task(
                &self,
                workspace: &str,
                id: uuid::Uuid,
            ) -> crate::domain::error::Result<Option<crate::domain::task::Task>> {
                use crate::store::sql::*;
                let sql = sqlx::AssertSqlSafe(format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE workspace = $1 AND id = $2"
                ));
                let row: Option<TaskRow> = sqlx::query_as(sql)
                    .bind(workspace)
                    .bind(id.to_string())
                    .fetch_optional(self.reader())
                    .await?;
                row.map(task_from_row).transpose()
            }

            fn outbox(&self) -> &dyn crate::store::outbox::Outbox {
                self
            }

            async fn commit(
                &self,
                change: crate::store::Change<'_>,
                plan: crate::store::PlanOutbox<'_>,
            ) -> crate::domain::error::Result<Option<crate::domain::event::TaskEvent>> {
                let mut tx = self.writer().begin().await?;
                let Some(event) = Self::apply(&mut tx, change, plan).await? else {
                    return Ok(None);
                };
                tx.commit().await?;
                Ok(Some(event))
            }

            async fn commit_batch(
                &self,
                changes: Vec<crate::store::Change<'_>>,
                plan: crate::store::PlanOutbox<'_>,
            ) -> crate::domain::error::Result<Vec<Option<crate::domain::event::TaskEvent>>> {
                let mut tx = self.writer().begin().await?;
                let mut events = Vec::with_capacity(changes.len());
                for change in changes {
                    events.push(Self::apply(&mut tx, change, plan).await?);
                }
                tx.commit().await?;
                Ok(events)
            }

            async fn update_many(
                &self,
                workspace: &str,
                ids: &[uuid::Uuid],
                decide: crate::store::Decide<'_>,
            ) -> crate::domain::error::Result<Vec<crate::domain::event::TaskEvent>> {
                use crate::domain::event::{EventKind, TaskEvent};
                use crate::store::sql::*;
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut tx = self.writer().begin().await?;
                // One round trip per step instead of four per task: read (and lock) the rows,
                // take their sequence numbers, write them, append their events.
                let mut read = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {TASK_COLUMNS} FROM tasks WHERE workspace = "
                ));
                read.push_bind(workspace.to_owned()).push(" AND id IN (");
                let mut list = read.separated(", ");
                for id in ids {
                    list.push_bind(id.to_string());
                }
                read.push(") ORDER BY id").push($lock);
                let rows: Vec<TaskRow> = read.build_query_as().fetch_all(&mut *tx).await?;
                let mut pairs = Vec::with_capacity(rows.len());
                for row in rows {
                    let previous = task_from_row(row)?;
                    let next = decide(&previous)?;
                    pairs.push((previous, next));
                }
                if pairs.is_empty() {
                    return Ok(Vec::new());
                }
                let count = pairs.len() as i64;
                let (last,): (i64,) = sqlx::query_as(NEXT_SEQS)
                    .bind(workspace)
                    .bind(count)
                    .fetch_one(&mut *tx)
                    .await?;
                let mut update = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE tasks SET title = v.column2, description = v.column3, \
                     status = v.column4, assignee = v.column5, assignee_email = v.column6, \
                     due_date = v.column7, updated_at = v.column8, updated_by = v.column9, \
                     version = v.column10 FROM (",
                );
                update.push_values(pairs.iter(), |mut row, (_, next)| {
                    row.push_bind(next.id.to_string())
                        .push_bind(next.title.clone())
                        .push_bind(next.description.clone())
                        .push_bind(next.status.as_str())
                        .push_bind(next.assignee.clone())
                        .push_bind(next.assignee_email.clone())
                        .push_bind(next.due_date.clone())
                        .push_bind(next.updated_at)
                        .push_bind(next.updated_by.clone())
                        .push_bind(next.version);
                });
                // `push_values` writes `VALUES (…), (…)`: a table both databases accept in FROM.
                // Joining on the primary key alone (the rows were read from this workspace in
                // this transaction) keeps SQLite on the id index instead of a workspace scan.
                update.push(") AS v WHERE tasks.id = v.column1");
                update.build().execute(&mut *tx).await?;
                let at = crate::domain::task::now();
                let first = last - count + 1;
                let mut events = Vec::with_capacity(pairs.len());
                let mut insert = sqlx::QueryBuilder::<$db>::new(
                    "INSERT INTO task_events (workspace, seq, kind, task_id, at, task, previous) ",
                );
                let mut encoded = Vec::with_capacity(pairs.len());
                for (previous, next) in &pairs {
                    encoded.push((
                        serde_json::to_string(next)
                            .map_err(crate::domain::error::Error::internal)?,
                        serde_json::to_string(previous)
                            .map_err(crate::domain::error::Error::internal)?,
                    ));
                }
                insert.push_values(
                    pairs.iter().zip(&encoded).enumerate(),
                    |mut row, (i, ((_, next), (task, prev)))| {
                        row.push_bind(workspace.to_owned())
                            .push_bind(first + i as i64)
                            .push_bind(EventKind::Updated.as_str())
                            .push_bind(next.id.to_string())
                            .push_bind(at)
                            .push_bind(task.clone())
                            .push_bind(prev.clone());
                    },
                );
                insert.build().execute(&mut *tx).await?;
                tx.commit().await?;
                for (i, (previous, next)) in pairs.into_iter().enumerate() {
                    events.push(TaskEvent {
                        workspace: workspace.to_owned(),
                        seq: first + i as i64,
                        kind: EventKind::Updated,
                        at,
                        task: next,
                        previous: Some(previous),
                    });
                }
                Ok(events)
            }

            async fn tasks_after(
                &self,
                workspace: &str,
                filter: &crate::domain::query::TaskFilter,
                after: Option<uuid::Uuid>,
                limit: i64,
            ) -> crate::domain::error::Result<Vec<crate::domain::task::Task>> {
                use crate::store::sql::*;
                let mut page =
                    sqlx::QueryBuilder::<$db>::new(format!("SELECT {TASK_COLUMNS} FROM tasks"));
                Self::push_filter(&mut page, workspace, filter);
                if let Some(after) = after {
                    page.push(" AND id > ").push_bind(after.to_string());
                }
                page.push(" ORDER BY id LIMIT ").push_bind(limit);
                let rows: Vec<TaskRow> = page.build_query_as().fetch_all(self.reader()).await?;
                rows.into_iter().map(task_from_row).collect()
            }

            async fn existing_ids(
                &self,
                ids: &[uuid::Uuid],
            ) -> crate::domain::error::Result<Vec<uuid::Uuid>> {
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut qb = sqlx::QueryBuilder::<$db>::new("SELECT id FROM tasks WHERE id IN (");
                let mut list = qb.separated(", ");
                for id in ids {
                    list.push_bind(id.to_string());
                }
                qb.push(")");
                let rows: Vec<(String,)> = qb.build_query_as().fetch_all(self.writer()).await?;
                Ok(rows
                    .into_iter()
                    .filter_map(|(id,)| uuid::Uuid::parse_str(&id).ok())
                    .collect())
            }

            fn jobs(&self) -> &dyn crate::store::jobs::JobStore {
                self
            }

            async fn events_after(
                &self,
                workspace: &str,
                after: i64,
                limit: i64,
            ) -> crate::domain::error::Result<Vec<crate::domain::event::TaskEvent>> {
                use crate::store::sql::*;
                let rows: Vec<EventRow> = sqlx::query_as(EVENTS_AFTER)
                    .bind(workspace)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map(event_from_row).collect()
            }

            async fn log_bounds(
                &self,
                workspace: &str,
            ) -> crate::domain::error::Result<(Option<i64>, i64)> {
                Ok(sqlx::query_as(crate::store::sql::LOG_BOUNDS)
                    .bind(workspace)
                    .fetch_one(self.reader())
                    .await?)
            }

            async fn prune_events(
                &self,
                cutoff: Option<chrono::DateTime<chrono::Utc>>,
                keep: i64,
            ) -> crate::domain::error::Result<u64> {
                let by_age = match cutoff {
                    Some(cutoff) => sqlx::query(crate::store::sql::PRUNE_BY_AGE)
                        .bind(cutoff)
                        .execute(self.writer())
                        .await?
                        .rows_affected(),
                    None => 0,
                };
                let by_count = sqlx::query(crate::store::sql::PRUNE_BY_COUNT)
                    .bind(keep)
                    .execute(self.writer())
                    .await?;
                Ok(by_age + by_count.rows_affected())
            }

            async fn event_heads(&self) -> crate::domain::error::Result<Vec<(String, i64)>> {
                Ok(
                    sqlx::query_as("SELECT workspace, last_seq FROM workspace_seqs")
                        .fetch_all(self.reader())
                        .await?,
                )
            }

            async fn close(&self) {
                self.writer().close().await;
                self.reader().close().await;
            }
        }
    };
}

pub(super) use impl_sql_store;

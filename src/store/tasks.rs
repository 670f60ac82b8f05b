//! The `tasks` table: reading and listing tasks, and applying a change (create, update,
//! delete) in the transaction that also appends its event (`events.rs`) and writes its
//! notifications (`outbox.rs`).

use chrono::{DateTime, Utc};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Transaction,
    Type,
};
use uuid::Uuid;

use super::dialect::Dialect;
use super::sql::{SqlStore, corrupt};
use super::{Change, Decide, PlanOutbox, TaskPage};
use crate::domain::error::Result;
use crate::domain::event::{EventKind, TaskEvent};
use crate::domain::query::{TaskFilter, TaskQuery};
use crate::domain::task::{Task, TaskStatus};

/// Columns of `tasks` in the order [`TaskRow`] reads them.
const TASK_COLUMNS: &str = "id, workspace, title, description, status, assignee, \
     assignee_email, due_date, created_at, updated_at, created_by, updated_by, version";

const INSERT_TASK: &str = "INSERT INTO tasks (id, workspace, title, description, status, \
     assignee, assignee_email, due_date, created_at, updated_at, created_by, updated_by, \
     version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

const UPDATE_TASK: &str = "UPDATE tasks SET title = $3, description = $4, status = $5, \
     assignee = $6, assignee_email = $7, due_date = $8, updated_at = $9, updated_by = $10, \
     version = $11 WHERE workspace = $1 AND id = $2 AND version = $12";

const DELETE_TASK: &str = "DELETE FROM tasks WHERE workspace = $1 AND id = $2 AND version = $3";

/// A `tasks` row as both drivers decode it.
type TaskRow = (
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

fn task_from_row(row: TaskRow) -> Result<Task> {
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

/// Escapes `%`, `_` and `\` so user text matches literally inside `LIKE … ESCAPE '\'`. Case
/// is left alone: the backend's case-insensitive operator does the folding.
fn like_pattern(q: &str) -> String {
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
fn order_by(query: &TaskQuery) -> String {
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

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    str: Type<DB>,
    for<'q> &'q str: Encode<'q, DB>,
    String: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<String>: for<'q> Encode<'q, DB>,
    i64: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    DateTime<Utc>: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
{
    /// Tasks of a workspace matching a query, and how many match before paging.
    pub(super) async fn list_tasks(&self, workspace: &str, query: &TaskQuery) -> Result<TaskPage> {
        let mut count = QueryBuilder::<DB>::new("SELECT COUNT(*) FROM tasks");
        Self::push_filter(&mut count, workspace, &query.filter);
        let (total,): (i64,) = count.build_query_as().fetch_one(&self.reader).await?;

        let mut page = QueryBuilder::<DB>::new(format!("SELECT {TASK_COLUMNS} FROM tasks"));
        Self::push_filter(&mut page, workspace, &query.filter);
        page.push(order_by(query));
        page.push(" LIMIT ").push_bind(query.limit);
        page.push(" OFFSET ").push_bind(query.offset);
        let rows: Vec<TaskRow> = page.build_query_as().fetch_all(&self.reader).await?;
        let tasks = rows.into_iter().map(task_from_row).collect::<Result<_>>()?;
        Ok(TaskPage { tasks, total })
    }

    /// One task of a workspace.
    pub(super) async fn get_task(&self, workspace: &str, id: Uuid) -> Result<Option<Task>> {
        let sql = AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE workspace = $1 AND id = $2"
        ));
        let row: Option<TaskRow> = sqlx::query_as(sql)
            .bind(workspace)
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        row.map(task_from_row).transpose()
    }

    /// Commits one change with its event and notifications.
    pub(super) async fn commit(
        &self,
        change: Change<'_>,
        plan: PlanOutbox<'_>,
    ) -> Result<Option<TaskEvent>> {
        let mut tx = self.writer.begin().await?;
        let Some(event) = Self::apply(&mut tx, change, plan).await? else {
            return Ok(None);
        };
        tx.commit().await?;
        Ok(Some(event))
    }

    /// Commits several changes in one transaction.
    pub(super) async fn commit_batch(
        &self,
        changes: Vec<Change<'_>>,
        plan: PlanOutbox<'_>,
    ) -> Result<Vec<Option<TaskEvent>>> {
        let mut tx = self.writer.begin().await?;
        let mut events = Vec::with_capacity(changes.len());
        for change in changes {
            events.push(Self::apply(&mut tx, change, plan).await?);
        }
        tx.commit().await?;
        Ok(events)
    }

    /// Updates the existing tasks among `ids` in one transaction and one round trip per step
    /// instead of four per task: read (and lock) the rows, take their sequence numbers, write
    /// them, append their events.
    pub(super) async fn update_many(
        &self,
        workspace: &str,
        ids: &[Uuid],
        decide: Decide<'_>,
    ) -> Result<Vec<TaskEvent>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.writer.begin().await?;
        let mut read = QueryBuilder::<DB>::new(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE workspace = "
        ));
        read.push_bind(workspace.to_owned()).push(" AND id IN (");
        let mut list = read.separated(", ");
        for id in ids {
            list.push_bind(id.to_string());
        }
        read.push(") ORDER BY id").push(DB::LOCK_ROWS);
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
        let first = Self::take_seqs(&mut tx, workspace, pairs.len()).await?;
        let mut update = QueryBuilder::<DB>::new(
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
        // Joining on the primary key alone (the rows were read from this workspace in this
        // transaction) keeps SQLite on the id index instead of a workspace scan.
        update.push(") AS v WHERE tasks.id = v.column1");
        update.build().execute(&mut *tx).await?;
        let events = Self::append_updates(&mut tx, workspace, first, pairs).await?;
        tx.commit().await?;
        Ok(events)
    }

    /// Up to `limit` matching tasks with ids after `after`, in id order.
    pub(super) async fn tasks_after(
        &self,
        workspace: &str,
        filter: &TaskFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Task>> {
        let mut page = QueryBuilder::<DB>::new(format!("SELECT {TASK_COLUMNS} FROM tasks"));
        Self::push_filter(&mut page, workspace, filter);
        if let Some(after) = after {
            page.push(" AND id > ").push_bind(after.to_string());
        }
        page.push(" ORDER BY id LIMIT ").push_bind(limit);
        let rows: Vec<TaskRow> = page.build_query_as().fetch_all(&self.reader).await?;
        rows.into_iter().map(task_from_row).collect()
    }

    /// Which of `ids` name an existing task, in any workspace.
    pub(super) async fn existing_ids(&self, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<DB>::new("SELECT id FROM tasks WHERE id IN (");
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(id.to_string());
        }
        qb.push(")");
        let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&self.writer).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id,)| Uuid::parse_str(&id).ok())
            .collect())
    }

    fn push_filter(qb: &mut QueryBuilder<DB>, workspace: &str, filter: &TaskFilter) {
        qb.push(" WHERE workspace = ")
            .push_bind(workspace.to_owned());
        if let Some(status) = filter.status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(assignee) = &filter.assignee {
            qb.push(" AND assignee = ").push_bind(assignee.clone());
        }
        if let Some(q) = &filter.q {
            let pattern = like_pattern(q);
            qb.push(" AND (title ")
                .push(DB::LIKE)
                .push(" ")
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\' OR description ")
                .push(DB::LIKE)
                .push(" ")
                .push_bind(pattern)
                .push(" ESCAPE '\\')");
        }
    }

    /// Applies one change inside `tx`; `None` when its task does not exist.
    async fn apply(
        tx: &mut Transaction<'_, DB>,
        change: Change<'_>,
        plan: PlanOutbox<'_>,
    ) -> Result<Option<TaskEvent>> {
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
                Self::append_event(tx, EventKind::Updated, &next, Some(&previous), plan).await?
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
                Self::append_event(tx, EventKind::Deleted, &task, Some(&current), plan).await?
            }
        };
        Ok(Some(event))
    }

    /// Reads a task inside the write transaction, locking its row where the backend needs
    /// that to keep concurrent writers from interleaving.
    async fn read_for_write(
        tx: &mut Transaction<'_, DB>,
        workspace: &str,
        id: Uuid,
    ) -> Result<Option<Task>> {
        let sql = AssertSqlSafe(format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE workspace = $1 AND id = $2{}",
            DB::LOCK_ROWS
        ));
        let row: Option<TaskRow> = sqlx::query_as(sql)
            .bind(workspace)
            .bind(id.to_string())
            .fetch_optional(&mut **tx)
            .await?;
        row.map(task_from_row).transpose()
    }
}

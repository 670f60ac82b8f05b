//! The event log (`task_events`): every committed change, numbered per workspace by the
//! gapless sequence in `workspace_seqs`. A change appends its event in its own transaction
//! (`tasks.rs`); replay reads the log back, and retention prunes it.

use chrono::{DateTime, Utc};
use sqlx::{
    AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Transaction,
    Type,
};

use super::PlanOutbox;
use super::dialect::Dialect;
use super::outbox::insert_notifications_sql;
use super::sql::{SqlStore, corrupt};
use crate::domain::error::{Error, Result};
use crate::domain::event::{EventKind, TaskEvent};
use crate::domain::task::{Task, now};

/// Takes the next sequence number of a workspace. The row stays locked until commit, so
/// writers of one workspace commit in sequence order and a rollback gives the number back.
const NEXT_SEQ: &str = "INSERT INTO workspace_seqs (workspace, last_seq) VALUES ($1, 1) \
     ON CONFLICT (workspace) DO UPDATE SET last_seq = workspace_seqs.last_seq + 1 \
     RETURNING last_seq";

/// Takes `$2` sequence numbers at once for a batch; returns the last one.
const NEXT_SEQS: &str = "INSERT INTO workspace_seqs (workspace, last_seq) VALUES ($1, $2) \
     ON CONFLICT (workspace) DO UPDATE SET last_seq = workspace_seqs.last_seq + $2 \
     RETURNING last_seq";

/// Parameters [`INSERT_EVENT`] binds; statements sent with it number theirs from the next.
const EVENT_PARAMS: usize = 7;

const INSERT_EVENT: &str = "INSERT INTO task_events (workspace, seq, kind, task_id, at, task, \
     previous) VALUES ($1, $2, $3, $4, $5, $6, $7)";

const EVENTS_AFTER: &str = "SELECT workspace, seq, kind, at, task, previous FROM task_events \
     WHERE workspace = $1 AND seq > $2 ORDER BY seq LIMIT $3";

const LOG_BOUNDS: &str = "SELECT (SELECT MIN(seq) FROM task_events WHERE workspace = $1), \
     COALESCE((SELECT last_seq FROM workspace_seqs WHERE workspace = $1), 0)";

const PRUNE_BY_AGE: &str = "DELETE FROM task_events WHERE at < $1";

const PRUNE_BY_COUNT: &str = "DELETE FROM task_events WHERE seq <= \
     (SELECT last_seq FROM workspace_seqs w WHERE w.workspace = task_events.workspace) - $1";

/// A `task_events` row as both drivers decode it.
type EventRow = (String, i64, String, DateTime<Utc>, String, Option<String>);

fn event_from_row(row: EventRow) -> Result<TaskEvent> {
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
    /// Appends a change's event to the log inside its transaction, and writes the
    /// notifications `plan` makes of it: in the same round trip where the backend allows.
    pub(super) async fn append_event(
        tx: &mut Transaction<'_, DB>,
        kind: EventKind,
        task: &Task,
        previous: Option<&Task>,
        plan: PlanOutbox<'_>,
    ) -> Result<TaskEvent> {
        let (seq,): (i64,) = sqlx::query_as(NEXT_SEQ)
            .bind(&task.workspace)
            .fetch_one(&mut **tx)
            .await?;
        let at = now();
        let task_json = serde_json::to_string(task).map_err(Error::internal)?;
        let previous_json = previous
            .map(serde_json::to_string)
            .transpose()
            .map_err(Error::internal)?;
        let event = TaskEvent {
            workspace: task.workspace.clone(),
            seq,
            kind,
            at,
            task: task.clone(),
            previous: previous.cloned(),
        };
        let rows = plan(&event);
        let together = DB::ONE_TRIP && !rows.is_empty();
        let sql: std::borrow::Cow<'static, str> = if together {
            format!(
                "{INSERT_EVENT}; {}",
                insert_notifications_sql(rows.len(), EVENT_PARAMS + 1)
            )
            .into()
        } else {
            INSERT_EVENT.into()
        };
        let query = sqlx::query(AssertSqlSafe(sql))
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

    /// Takes `count` sequence numbers of a workspace at once; returns the first.
    pub(super) async fn take_seqs(
        tx: &mut Transaction<'_, DB>,
        workspace: &str,
        count: usize,
    ) -> Result<i64> {
        let count = count as i64;
        let (last,): (i64,) = sqlx::query_as(NEXT_SEQS)
            .bind(workspace)
            .bind(count)
            .fetch_one(&mut **tx)
            .await?;
        Ok(last - count + 1)
    }

    /// Appends the events of a batch of updates (previous and next task of each) in one
    /// statement, numbered from `first` (taken with [`take_seqs`](Self::take_seqs)).
    pub(super) async fn append_updates(
        tx: &mut Transaction<'_, DB>,
        workspace: &str,
        first: i64,
        pairs: Vec<(Task, Task)>,
    ) -> Result<Vec<TaskEvent>> {
        let at = now();
        let mut insert = QueryBuilder::<DB>::new(
            "INSERT INTO task_events (workspace, seq, kind, task_id, at, task, previous) ",
        );
        let mut encoded = Vec::with_capacity(pairs.len());
        for (previous, next) in &pairs {
            encoded.push((
                serde_json::to_string(next).map_err(Error::internal)?,
                serde_json::to_string(previous).map_err(Error::internal)?,
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
        insert.build().execute(&mut **tx).await?;
        Ok(pairs
            .into_iter()
            .enumerate()
            .map(|(i, (previous, next))| TaskEvent {
                workspace: workspace.to_owned(),
                seq: first + i as i64,
                kind: EventKind::Updated,
                at,
                task: next,
                previous: Some(previous),
            })
            .collect())
    }

    /// Logged events of a workspace with `seq > after`, oldest first, at most `limit`.
    pub(super) async fn events_after(
        &self,
        workspace: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<TaskEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(EVENTS_AFTER)
            .bind(workspace)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(event_from_row).collect()
    }

    /// Oldest retained and latest `seq` of a workspace.
    pub(super) async fn log_bounds(&self, workspace: &str) -> Result<(Option<i64>, i64)> {
        Ok(sqlx::query_as(LOG_BOUNDS)
            .bind(workspace)
            .fetch_one(&self.reader)
            .await?)
    }

    /// Deletes events older than `cutoff` and all but the last `keep` of each workspace.
    pub(super) async fn prune_events(
        &self,
        cutoff: Option<DateTime<Utc>>,
        keep: i64,
    ) -> Result<u64> {
        let by_age = match cutoff {
            Some(cutoff) => {
                let done = sqlx::query(PRUNE_BY_AGE)
                    .bind(cutoff)
                    .execute(&self.writer)
                    .await?;
                DB::rows_affected(&done)
            }
            None => 0,
        };
        let by_count = sqlx::query(PRUNE_BY_COUNT)
            .bind(keep)
            .execute(&self.writer)
            .await?;
        Ok(by_age + DB::rows_affected(&by_count))
    }

    /// The last `seq` of every workspace that has events.
    pub(super) async fn event_heads(&self) -> Result<Vec<(String, i64)>> {
        Ok(
            sqlx::query_as("SELECT workspace, last_seq FROM workspace_seqs")
                .fetch_all(&self.reader)
                .await?,
        )
    }
}

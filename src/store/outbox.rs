//! The notification outbox in the database: rows are inserted by `commit` in the change's own
//! transaction; the dispatcher claims due rows under a lease, sends them with no transaction
//! open, and settles each attempt. The same code serves both backends; claims skip rows
//! another process has locked where the backend has several (`Dialect::SKIP_LOCKED` in
//! `dialect.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::query::Query;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Transaction,
    Type,
};
use uuid::Uuid;

use super::dialect::Dialect;
use super::sql::SqlStore;
use crate::domain::error::{Error, Result};
use crate::domain::notification::{Attempt, Channel, NewNotification, Notification, Status};

/// What a manual retry did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeued {
    /// Queued for an attempt now.
    Yes,
    /// Already delivered; nothing to retry.
    AlreadyDelivered,
    /// No such notification in the workspace.
    NotFound,
}

/// How an attempt ended, to be recorded.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The notification.
    pub id: Uuid,
    /// The attempt number the claim gave it; a settlement for an older attempt is ignored.
    pub attempt: Attempt,
    /// The new status.
    pub status: Status,
    /// When to try again (for `failed`).
    pub next_attempt_at: DateTime<Utc>,
}

/// Outbox operations of a store.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Leases up to `limit` due notifications until `lease_until` and counts an attempt for
    /// each. Rows another attempt holds a live lease on are skipped.
    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Notification>>;
    /// Records an attempt's outcome and releases the lease.
    async fn settle(&self, settlement: &Settlement) -> Result<()>;
    /// When the earliest pending or failed notification is due, if any.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>>;
    /// A workspace's notifications, newest first, optionally filtered.
    async fn list_notifications(
        &self,
        workspace: &str,
        status: Option<Status>,
        task_id: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Notification>>;
    /// One notification of a workspace with its attempts, oldest first.
    async fn get_notification(
        &self,
        workspace: &str,
        id: Uuid,
    ) -> Result<Option<(Notification, Vec<Attempt>)>>;
    /// Queues a notification for an attempt now (one more, even if it was dead).
    async fn requeue(&self, workspace: &str, id: Uuid, now: DateTime<Utc>) -> Result<Requeued>;
    /// Number of notifications per status.
    async fn backlog(&self) -> Result<Vec<(Status, i64)>>;
    /// Deletes `delivered` and `dead` notifications settled before `cutoff`, with their
    /// attempts; returns how many went.
    async fn prune_settled(&self, cutoff: DateTime<Utc>) -> Result<u64>;
    /// Writes notifications that belong to no single change (a job's summary).
    async fn enqueue(&self, rows: &[NewNotification]) -> Result<()>;
}

/// Columns of a notification row, in [`NotificationRow`] order.
const NOTIFICATION_COLUMNS: &str = "id, workspace, channel, target, event_type, \
     task_id, payload, status, attempts, last_error, created_at, next_attempt_at, delivered_at";

/// Parameters each row of [`insert_notifications_sql`] binds.
const NOTIFICATION_PARAMS: usize = 8;

/// One `INSERT` of `rows` notification rows whose parameters start at `$first`, so a change's
/// rows cost one statement however many webhooks there are, and can follow another statement
/// in the same round trip.
pub(super) fn insert_notifications_sql(rows: usize, first: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO notifications (id, workspace, channel, target, event_type, task_id, \
         payload, status, attempts, created_at, next_attempt_at) VALUES ",
    );
    for row in 0..rows {
        let p = first + row * NOTIFICATION_PARAMS;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, 'pending', 0, ${}, ${})",
            p,
            p + 1,
            p + 2,
            p + 3,
            p + 4,
            p + 5,
            p + 6,
            p + 7,
            p + 7
        ));
    }
    sql
}

const SETTLE: &str = "UPDATE notifications SET status = $1, last_error = $2, \
     next_attempt_at = $3, delivered_at = $4, lease_until = NULL \
     WHERE id = $5 AND attempts = $6";

const INSERT_ATTEMPT: &str = "INSERT INTO notification_attempts (notification_id, \
     attempt, started_at, finished_at, outcome, status_code, error) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (notification_id, attempt) DO NOTHING";

/// A leased row is due when its lease runs out, not before: counting it earlier would make an
/// idle dispatcher poll while attempts are in flight. The earliest unleased row comes first in
/// `notifications_open_due`; leased rows (in flight, or left by a crashed process) are few.
const NEXT_DUE: &str = "SELECT MIN(due) FROM (\
     SELECT * FROM (SELECT next_attempt_at AS due FROM notifications \
        WHERE status IN ('pending', 'failed') AND lease_until IS NULL \
        ORDER BY next_attempt_at LIMIT 1) AS unleased \
     UNION ALL \
     SELECT CASE WHEN lease_until > next_attempt_at THEN lease_until ELSE next_attempt_at END \
        FROM notifications WHERE lease_until IS NOT NULL AND status IN ('pending', 'failed')\
     ) AS due_times";

const ATTEMPTS_OF: &str = "SELECT attempt, started_at, finished_at, outcome, \
     status_code, error FROM notification_attempts WHERE notification_id = $1 ORDER BY attempt";

const REQUEUE: &str = "UPDATE notifications SET status = 'pending', \
     next_attempt_at = $1 WHERE workspace = $2 AND id = $3 AND status <> 'delivered'";

const STATUS_OF: &str = "SELECT status FROM notifications WHERE workspace = $1 AND id = $2";

/// Rows deleted per statement when pruning, so one pass never holds the (SQLite) writer for
/// long however large the backlog of old rows is.
const PRUNE_BATCH: i64 = 5000;

/// One batch of settled notifications older than `$1`. A dead row's `next_attempt_at` is the
/// time of its last attempt.
const PRUNE_SETTLED: &str = "DELETE FROM notifications WHERE id IN (\
     SELECT id FROM notifications WHERE status = 'delivered' AND delivered_at < $1 \
     UNION ALL \
     SELECT id FROM notifications WHERE status = 'dead' AND next_attempt_at < $1 \
     LIMIT $2)";

const BACKLOG: &str = "SELECT status, COUNT(*) FROM notifications GROUP BY status";

/// A notification row as both backends return it.
type NotificationRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

/// An attempt row.
type AttemptRow = (
    i64,
    DateTime<Utc>,
    DateTime<Utc>,
    String,
    Option<i64>,
    Option<String>,
);

fn corrupt(what: &str, value: &str) -> Error {
    Error::Internal(format!("stored notification has an unknown {what}: {value:?}").into())
}

fn notification_from_row(row: NotificationRow) -> Result<Notification> {
    let (
        id,
        workspace,
        channel,
        target,
        event_type,
        task_id,
        payload,
        status,
        attempts,
        last_error,
        created_at,
        next_attempt_at,
        delivered_at,
    ) = row;
    Ok(Notification {
        id: Uuid::parse_str(&id).map_err(|_| corrupt("id", &id))?,
        workspace,
        channel: Channel::parse(&channel).ok_or_else(|| corrupt("channel", &channel))?,
        target,
        event_type,
        task_id: Uuid::parse_str(&task_id).map_err(|_| corrupt("task id", &task_id))?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        attempts,
        last_error,
        created_at,
        next_attempt_at,
        delivered_at,
        payload,
    })
}

fn attempt_from_row(row: AttemptRow) -> Attempt {
    let (attempt, started_at, finished_at, outcome, status_code, error) = row;
    Attempt {
        attempt,
        started_at,
        finished_at,
        outcome,
        status_code,
        error,
    }
}

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    str: Type<DB>,
    for<'q> &'q str: Encode<'q, DB>,
    String: Type<DB> + for<'q> Encode<'q, DB>,
    DateTime<Utc>: Type<DB> + for<'q> Encode<'q, DB>,
{
    /// Writes notifications in the transaction of the change that made them.
    pub(super) async fn insert_notifications(
        tx: &mut Transaction<'_, DB>,
        rows: &[NewNotification],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = insert_notifications_sql(rows.len(), 1);
        let query = Self::bind_notifications(sqlx::query(AssertSqlSafe(sql)), rows);
        query.execute(&mut **tx).await?;
        Ok(())
    }

    /// Binds `rows` in the order of [`insert_notifications_sql`].
    pub(super) fn bind_notifications<'q>(
        mut query: Query<'q, DB, DB::Arguments>,
        rows: &'q [NewNotification],
    ) -> Query<'q, DB, DB::Arguments> {
        for n in rows {
            query = query
                .bind(n.id.to_string())
                .bind(&n.workspace)
                .bind(n.channel.as_str())
                .bind(&n.target)
                .bind(n.event_type)
                .bind(n.task_id.to_string())
                .bind(&n.payload)
                .bind(n.created_at);
        }
        query
    }
}

#[async_trait]
impl<DB> Outbox for SqlStore<DB>
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
    Option<i64>: for<'q> Encode<'q, DB>,
    DateTime<Utc>: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<DateTime<Utc>>: for<'q> Encode<'q, DB>,
{
    async fn enqueue(&self, rows: &[NewNotification]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        Self::insert_notifications(&mut tx, rows).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        let sql = AssertSqlSafe(format!(
            "UPDATE notifications SET attempts = attempts + 1, lease_until = $1 \
             WHERE id IN (SELECT id FROM notifications \
                WHERE status IN ('pending', 'failed') AND next_attempt_at <= $2 \
                AND (lease_until IS NULL OR lease_until <= $2) \
                ORDER BY next_attempt_at LIMIT $3{}) \
             RETURNING {NOTIFICATION_COLUMNS}",
            DB::SKIP_LOCKED
        ));
        let rows: Vec<NotificationRow> = sqlx::query_as(sql)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.writer)
            .await?;
        rows.into_iter().map(notification_from_row).collect()
    }

    async fn settle(&self, s: &Settlement) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let delivered_at = (s.status == Status::Delivered).then_some(s.attempt.finished_at);
        let updated = sqlx::query(SETTLE)
            .bind(s.status.as_str())
            .bind(&s.attempt.error)
            .bind(s.next_attempt_at)
            .bind(delivered_at)
            .bind(s.id.to_string())
            .bind(s.attempt.attempt)
            .execute(&mut *tx)
            .await?;
        if DB::rows_affected(&updated) == 1 {
            sqlx::query(INSERT_ATTEMPT)
                .bind(s.id.to_string())
                .bind(s.attempt.attempt)
                .bind(s.attempt.started_at)
                .bind(s.attempt.finished_at)
                .bind(&s.attempt.outcome)
                .bind(s.attempt.status_code)
                .bind(&s.attempt.error)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>> {
        let (due,): (Option<DateTime<Utc>>,) =
            sqlx::query_as(NEXT_DUE).fetch_one(&self.reader).await?;
        Ok(due)
    }

    async fn list_notifications(
        &self,
        workspace: &str,
        status: Option<Status>,
        task_id: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        let mut qb = QueryBuilder::<DB>::new(format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE workspace = "
        ));
        qb.push_bind(workspace.to_owned());
        if let Some(status) = status {
            qb.push(" AND status = ").push_bind(status.as_str());
        }
        if let Some(task_id) = task_id {
            qb.push(" AND task_id = ").push_bind(task_id.to_string());
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(limit);
        let rows: Vec<NotificationRow> = qb.build_query_as().fetch_all(&self.reader).await?;
        rows.into_iter().map(notification_from_row).collect()
    }

    async fn get_notification(
        &self,
        workspace: &str,
        id: Uuid,
    ) -> Result<Option<(Notification, Vec<Attempt>)>> {
        let sql = AssertSqlSafe(format!(
            "SELECT {NOTIFICATION_COLUMNS} FROM notifications WHERE workspace = $1 AND id = $2"
        ));
        let row: Option<NotificationRow> = sqlx::query_as(sql)
            .bind(workspace)
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let attempts: Vec<AttemptRow> = sqlx::query_as(ATTEMPTS_OF)
            .bind(id.to_string())
            .fetch_all(&self.reader)
            .await?;
        Ok(Some((
            notification_from_row(row)?,
            attempts.into_iter().map(attempt_from_row).collect(),
        )))
    }

    async fn requeue(&self, workspace: &str, id: Uuid, now: DateTime<Utc>) -> Result<Requeued> {
        let updated = sqlx::query(REQUEUE)
            .bind(now)
            .bind(workspace)
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        if DB::rows_affected(&updated) == 1 {
            return Ok(Requeued::Yes);
        }
        let status: Option<(String,)> = sqlx::query_as(STATUS_OF)
            .bind(workspace)
            .bind(id.to_string())
            .fetch_optional(&self.writer)
            .await?;
        Ok(match status {
            Some(_) => Requeued::AlreadyDelivered,
            None => Requeued::NotFound,
        })
    }

    async fn prune_settled(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let mut pruned = 0;
        loop {
            let done = sqlx::query(PRUNE_SETTLED)
                .bind(cutoff)
                .bind(PRUNE_BATCH)
                .execute(&self.writer)
                .await?;
            let gone = DB::rows_affected(&done);
            pruned += gone;
            if gone < PRUNE_BATCH as u64 {
                return Ok(pruned);
            }
            // Let the writes queued behind this batch go first.
            tokio::task::yield_now().await;
        }
    }

    async fn backlog(&self) -> Result<Vec<(Status, i64)>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(BACKLOG).fetch_all(&self.reader).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(s, n)| Status::parse(&s).map(|s| (s, n)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_rows_number_their_parameters_from_the_given_one() {
        let sql = insert_notifications_sql(2, 8);
        assert!(sql.starts_with("INSERT INTO notifications (id, workspace,"));
        assert!(sql.ends_with(
            "VALUES ($8, $9, $10, $11, $12, $13, $14, 'pending', 0, $15, $15), \
             ($16, $17, $18, $19, $20, $21, $22, 'pending', 0, $23, $23)"
        ));
        assert!(
            insert_notifications_sql(1, 1)
                .ends_with("($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, $8)")
        );
    }
}

//! Jobs in the database: submitted as `queued`, claimed by a worker under a lease it renews
//! while it runs, settled in a final state. A lease that runs out means the worker's process
//! died; recovery turns such jobs `interrupted` (or `queued` again when their kind is safe to
//! rerun). The same code serves both backends; claims skip rows another process has locked
//! where the backend has several (`Dialect::SKIP_LOCKED` in `dialect.rs`).
//!
//! A job's result file is stored in `job_results`, in parts of [`RESULT_PART`] bytes, while
//! its worker still holds the job; the row that records it as succeeded names the file's
//! type, name and size, and only then is it served. Every process on the database can serve
//! it, and it goes when the job row does.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, IntoArguments, QueryBuilder, Type,
};
use uuid::Uuid;

use super::dialect::Dialect;
use super::sql::SqlStore;

use crate::domain::error::{Error, Result};
use crate::jobs::model::{
    JobFailure, JobFilter, JobRecord, JobState, NewJob, Outcome, Progress, ResultFile,
};

/// Bytes per stored part of a result file: one part is what storing or serving a file holds
/// in memory, and storing one holds SQLite's single writer about as long as a job's write
/// batch does (a few ms), so a large export never stalls other writers for long.
pub const RESULT_PART: usize = 256 * 1024;

/// What a cancel request did.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// It was queued and is now `cancelled`.
    Cancelled(JobRecord),
    /// It is running; its worker will stop it at the next checkpoint.
    Requested(JobRecord),
    /// It had already finished.
    AlreadyFinal(JobRecord),
    /// No such job in the workspace.
    NotFound,
}

/// A job a worker has claimed, with what it needs to run it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The job, now `running`.
    pub record: JobRecord,
    /// Who submitted it (JSON `user`, `name`, `email`).
    pub actor: Value,
    /// Its upload, if any.
    pub input: Option<Vec<u8>>,
}

/// Job operations of a store.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new `queued` job.
    async fn insert_job(&self, job: &NewJob) -> Result<JobRecord>;
    /// One job; `workspace` = None looks in every workspace (workers, cleanup).
    async fn get_job(&self, workspace: Option<&str>, id: Uuid) -> Result<Option<JobRecord>>;
    /// A workspace's jobs, newest first.
    async fn list_jobs(&self, workspace: &str, filter: &JobFilter) -> Result<Vec<JobRecord>>;
    /// Takes the oldest queued job for `owner` until `lease_until`, if there is one.
    async fn claim_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ClaimedJob>>;
    /// Records progress and renews the lease. Returns whether a cancel was requested, or
    /// None when `owner` no longer holds the job (it was recovered elsewhere).
    async fn heartbeat(
        &self,
        id: Uuid,
        owner: &str,
        progress: &Progress,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<bool>>;
    /// Settles a run; `Queued` puts the job back in the queue. `file` describes the result
    /// file whose parts were stored with [`put_result_part`](Self::put_result_part); from
    /// now on it is served. None when `owner` no longer holds the job.
    async fn finish_job(
        &self,
        id: Uuid,
        owner: &str,
        outcome: &Outcome,
        file: Option<&ResultFile>,
        now: DateTime<Utc>,
    ) -> Result<Option<JobRecord>>;
    /// Removes whatever parts of a result file a running job has stored (an earlier run cut
    /// short may have left some), if `owner` holds the job.
    async fn clear_result(&self, id: Uuid, owner: &str) -> Result<()>;
    /// Stores part `part` (from 0) of a running job's result file; false, storing nothing,
    /// when `owner` no longer holds the job.
    async fn put_result_part(&self, id: Uuid, owner: &str, part: i64, bytes: &[u8])
    -> Result<bool>;
    /// Cancels a queued job at once, or asks a running one to stop.
    async fn cancel_job(
        &self,
        workspace: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome>;
    /// Running jobs whose process is gone: `interrupted`, or `queued` again when restartable.
    /// Returns them as they are now.
    async fn recover_jobs(&self, orphans: Orphans) -> Result<Vec<JobRecord>>;
    /// Deletes final jobs that finished before `cutoff`, with their result files; returns
    /// how many went.
    async fn delete_finished_jobs(&self, cutoff: DateTime<Utc>) -> Result<u64>;
    /// Part `part` (from 0) of a job's result file; None past its last part.
    async fn result_part(&self, id: Uuid, part: i64) -> Result<Option<Vec<u8>>>;
}

/// Which running jobs recovery takes as orphaned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphans {
    /// Every running job: the database has one process, and it has just started.
    All,
    /// Jobs whose lease ran out before this instant (their process stopped renewing it).
    ExpiredBefore(DateTime<Utc>),
}

/// Columns of `jobs` in the order [`JobRow`] reads them.
const JOB_COLUMNS: &str = "id, workspace, kind, state, params, error, result, done, \
     total, message, created_at, started_at, finished_at, cancel_requested, result_type, \
     result_name, result_size";

const INSERT_JOB: &str = "INSERT INTO jobs (id, workspace, kind, state, params, \
     input, actor, restartable, created_at) VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $8)";

const HEARTBEAT: &str = "UPDATE jobs SET done = $1, total = $2, message = $3, \
     lease_until = $4 WHERE id = $5 AND owner = $6 AND state = 'running' RETURNING cancel_requested";

const CANCEL_QUEUED: &str = "UPDATE jobs SET state = 'cancelled', finished_at = $1, \
     error = $2 WHERE workspace = $3 AND id = $4 AND state = 'queued'";

/// Only the worker holding the job stores parts, so a run that lost its claim cannot mix
/// its parts into the next run's file.
const INSERT_RESULT_PART: &str = "INSERT INTO job_results (job_id, part, bytes) \
     SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM jobs WHERE id = $1 AND owner = $4 \
     AND state = 'running')";

const CLEAR_RESULT: &str = "DELETE FROM job_results WHERE job_id = $1 AND EXISTS \
     (SELECT 1 FROM jobs WHERE id = $1 AND owner = $2 AND state = 'running')";

const RESULT_PART_SQL: &str = "SELECT bytes FROM job_results WHERE job_id = $1 AND part = $2";

const CANCEL_RUNNING: &str = "UPDATE jobs SET cancel_requested = TRUE \
     WHERE workspace = $1 AND id = $2 AND state = 'running'";

/// A `jobs` row as both drivers decode it.
#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    workspace: String,
    kind: String,
    state: String,
    params: String,
    error: Option<String>,
    result: Option<String>,
    done: i64,
    total: i64,
    message: String,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    cancel_requested: bool,
    result_type: Option<String>,
    result_name: Option<String>,
    result_size: Option<i64>,
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::internal(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("corrupt job row in database: {what}"),
    ))
}

fn job_from_row(row: JobRow) -> Result<JobRecord> {
    let json = |what: &str, text: &str| -> Result<Value> {
        serde_json::from_str(text).map_err(|e| corrupt(format_args!("{what}: {e}")))
    };
    let error = row
        .error
        .as_deref()
        .map(|text| {
            serde_json::from_str::<JobFailure>(text)
                .map_err(|e| corrupt(format_args!("error: {e}")))
        })
        .transpose()?;
    let result_file = match (row.result_type, row.result_name, row.result_size) {
        (Some(content_type), Some(filename), Some(size)) => Some(ResultFile {
            content_type,
            filename,
            size,
        }),
        _ => None,
    };
    Ok(JobRecord {
        id: Uuid::parse_str(&row.id).map_err(|e| corrupt(format_args!("id {:?}: {e}", row.id)))?,
        workspace: row.workspace,
        kind: row.kind,
        state: JobState::parse("state", &row.state)
            .map_err(|_| corrupt(format_args!("state {:?}", row.state)))?,
        progress: Progress {
            done: row.done,
            total: row.total,
            message: row.message,
        },
        params: json("params", &row.params)?,
        error,
        result: row
            .result
            .as_deref()
            .map(|r| json("result", r))
            .transpose()?,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        cancel_requested: row.cancel_requested,
        result_file,
    })
}

/// The `error` column text of a failure.
fn failure_text(failure: Option<&JobFailure>) -> Result<Option<String>> {
    failure
        .map(serde_json::to_string)
        .transpose()
        .map_err(Error::internal)
}

/// Why a job ended without finishing, for the jobs recovery marks.
fn interrupted_failure() -> String {
    serde_json::json!({
        "code": "interrupted",
        "message": "the server stopped while this job was running",
    })
    .to_string()
}

/// Why a queued job ended.
fn cancelled_failure() -> String {
    serde_json::json!({"code": "cancelled", "message": "cancelled before it started"}).to_string()
}

#[async_trait]
impl<DB> JobStore for SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'s> &'s str: ColumnIndex<DB::Row>,
    str: Type<DB>,
    for<'q> &'q str: Encode<'q, DB>,
    String: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<String>: for<'q> Encode<'q, DB>,
    i64: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<i64>: for<'q> Encode<'q, DB>,
    bool: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    DateTime<Utc>: Type<DB> + for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB>,
    Option<DateTime<Utc>>: for<'q> Encode<'q, DB>,
    [u8]: Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB>,
    for<'q> Option<&'q [u8]>: Encode<'q, DB>,
    Vec<u8>: Type<DB> + for<'r> Decode<'r, DB>,
{
    async fn insert_job(&self, job: &NewJob) -> Result<JobRecord> {
        sqlx::query(INSERT_JOB)
            .bind(job.id.to_string())
            .bind(&job.workspace)
            .bind(&job.kind)
            .bind(job.params.to_string())
            .bind(job.input.as_deref())
            .bind(job.actor.to_string())
            .bind(job.restartable)
            .bind(job.created_at)
            .execute(&self.writer)
            .await?;
        self.get_job(None, job.id).await?.ok_or_else(|| {
            Error::internal(std::io::Error::other(
                "a job just inserted could not be read back",
            ))
        })
    }

    async fn get_job(&self, workspace: Option<&str>, id: Uuid) -> Result<Option<JobRecord>> {
        // Read through the writer so a client sees its own job right after submitting.
        let sql = AssertSqlSafe(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"));
        let row: Option<JobRow> = sqlx::query_as(sql)
            .bind(id.to_string())
            .fetch_optional(&self.writer)
            .await?;
        let job = row.map(job_from_row).transpose()?;
        Ok(job.filter(|j| workspace.is_none_or(|ws| j.workspace == ws)))
    }

    async fn list_jobs(&self, workspace: &str, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        let mut qb =
            QueryBuilder::<DB>::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE workspace = "));
        qb.push_bind(workspace.to_owned());
        if let Some(state) = filter.state {
            qb.push(" AND state = ").push_bind(state.as_str());
        }
        if let Some(kind) = &filter.kind {
            qb.push(" AND kind = ").push_bind(kind.clone());
        }
        qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(filter.limit);
        let rows: Vec<JobRow> = qb.build_query_as().fetch_all(&self.reader).await?;
        rows.into_iter().map(job_from_row).collect()
    }

    async fn claim_job(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<ClaimedJob>> {
        let sql = AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'running', owner = $1, lease_until = $2, \
             started_at = $3 WHERE id = (SELECT id FROM jobs WHERE state = 'queued' \
             ORDER BY created_at, id LIMIT 1{}) AND state = 'queued' \
             RETURNING {JOB_COLUMNS}",
            DB::SKIP_LOCKED
        ));
        let row: Option<JobRow> = sqlx::query_as(sql)
            .bind(owner)
            .bind(lease_until)
            .bind(now)
            .fetch_optional(&self.writer)
            .await?;
        let Some(record) = row.map(job_from_row).transpose()? else {
            return Ok(None);
        };
        let (actor, input): (String, Option<Vec<u8>>) =
            sqlx::query_as("SELECT actor, input FROM jobs WHERE id = $1")
                .bind(record.id.to_string())
                .fetch_one(&self.writer)
                .await?;
        let actor = serde_json::from_str(&actor).unwrap_or(Value::Null);
        Ok(Some(ClaimedJob {
            record,
            actor,
            input,
        }))
    }

    async fn heartbeat(
        &self,
        id: Uuid,
        owner: &str,
        progress: &Progress,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<bool>> {
        let row: Option<(bool,)> = sqlx::query_as(HEARTBEAT)
            .bind(progress.done)
            .bind(progress.total)
            .bind(&progress.message)
            .bind(lease_until)
            .bind(id.to_string())
            .bind(owner)
            .fetch_optional(&self.writer)
            .await?;
        Ok(row.map(|(cancel,)| cancel))
    }

    async fn finish_job(
        &self,
        id: Uuid,
        owner: &str,
        outcome: &Outcome,
        file: Option<&ResultFile>,
        now: DateTime<Utc>,
    ) -> Result<Option<JobRecord>> {
        let requeue = outcome.state == JobState::Queued;
        let sql = AssertSqlSafe(format!(
            "UPDATE jobs SET state = $1, error = $2, result = $3, result_size = $4, \
             result_type = $5, result_name = $6, done = $7, total = $8, message = $9, \
             finished_at = $10, started_at = CASE WHEN $11 THEN NULL ELSE started_at END, \
             input = CASE WHEN $11 THEN input ELSE NULL END, \
             owner = NULL, lease_until = NULL, cancel_requested = FALSE \
             WHERE id = $12 AND owner = $13 AND state = 'running' RETURNING {JOB_COLUMNS}"
        ));
        let row: Option<JobRow> = sqlx::query_as(sql)
            .bind(outcome.state.as_str())
            .bind(failure_text(outcome.error.as_ref())?)
            .bind(outcome.result.as_ref().map(|r| r.to_string()))
            .bind(file.map(|f| f.size))
            .bind(file.map(|f| f.content_type.clone()))
            .bind(file.map(|f| f.filename.clone()))
            .bind(outcome.progress.done)
            .bind(outcome.progress.total)
            .bind(&outcome.progress.message)
            .bind((!requeue).then_some(now))
            .bind(requeue)
            .bind(id.to_string())
            .bind(owner)
            .fetch_optional(&self.writer)
            .await?;
        row.map(job_from_row).transpose()
    }

    async fn clear_result(&self, id: Uuid, owner: &str) -> Result<()> {
        sqlx::query(CLEAR_RESULT)
            .bind(id.to_string())
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn put_result_part(
        &self,
        id: Uuid,
        owner: &str,
        part: i64,
        bytes: &[u8],
    ) -> Result<bool> {
        let stored = sqlx::query(INSERT_RESULT_PART)
            .bind(id.to_string())
            .bind(part)
            .bind(bytes)
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(DB::rows_affected(&stored) == 1)
    }

    async fn cancel_job(
        &self,
        workspace: &str,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome> {
        let queued = sqlx::query(CANCEL_QUEUED)
            .bind(now)
            .bind(cancelled_failure())
            .bind(workspace)
            .bind(id.to_string())
            .execute(&self.writer)
            .await?;
        let cancelled = DB::rows_affected(&queued) == 1;
        let requested = !cancelled && {
            let running = sqlx::query(CANCEL_RUNNING)
                .bind(workspace)
                .bind(id.to_string())
                .execute(&self.writer)
                .await?;
            DB::rows_affected(&running) == 1
        };
        let Some(job) = self.get_job(Some(workspace), id).await? else {
            return Ok(CancelOutcome::NotFound);
        };
        Ok(if cancelled {
            CancelOutcome::Cancelled(job)
        } else if requested {
            CancelOutcome::Requested(job)
        } else {
            CancelOutcome::AlreadyFinal(job)
        })
    }

    async fn recover_jobs(&self, orphans: Orphans) -> Result<Vec<JobRecord>> {
        // No time comparison for `All`: compared as text on SQLite, a far-future bound such
        // as `DateTime::MAX_UTC` (`+262142-…`) sorts before every real date.
        let (expired, cutoff) = match orphans {
            Orphans::All => ("", None),
            Orphans::ExpiredBefore(t) => (" AND lease_until < $3", Some(t)),
        };
        let sql = AssertSqlSafe(format!(
            "UPDATE jobs SET \
               state = CASE WHEN restartable THEN 'queued' ELSE 'interrupted' END, \
               error = CASE WHEN restartable THEN NULL ELSE $1 END, \
               finished_at = CASE WHEN restartable THEN NULL ELSE $2 END, \
               started_at = CASE WHEN restartable THEN NULL ELSE started_at END, \
               input = CASE WHEN restartable THEN input ELSE NULL END, \
               owner = NULL, lease_until = NULL, cancel_requested = FALSE \
             WHERE state = 'running'{expired} RETURNING {JOB_COLUMNS}"
        ));
        let mut query = sqlx::query_as(sql)
            .bind(interrupted_failure())
            .bind(crate::domain::task::now());
        if let Some(cutoff) = cutoff {
            query = query.bind(cutoff);
        }
        let rows: Vec<JobRow> = query.fetch_all(&self.writer).await?;
        rows.into_iter().map(job_from_row).collect()
    }

    async fn delete_finished_jobs(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        // Their `job_results` parts go with them (ON DELETE CASCADE).
        let deleted = sqlx::query(
            "DELETE FROM jobs WHERE state NOT IN ('queued', 'running') AND finished_at < $1",
        )
        .bind(cutoff)
        .execute(&self.writer)
        .await?;
        Ok(DB::rows_affected(&deleted))
    }

    async fn result_part(&self, id: Uuid, part: i64) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as(RESULT_PART_SQL)
            .bind(id.to_string())
            .bind(part)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|(bytes,)| bytes))
    }
}

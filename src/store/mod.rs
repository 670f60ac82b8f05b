//! Persistence behind one trait, [`Store`], implemented once by [`SqlStore`] for SQLite and
//! Postgres alike. A change, its event-log row and its outbox rows commit in one
//! transaction; nothing here knows about HTTP or sockets.
//!
//! Layout:
//! - `sql.rs`: [`SqlStore`], the pools and the [`Store`] implementation, generic over the
//!   backend.
//! - `dialect.rs`: what differs between the backends (row locks, `SKIP LOCKED`, the
//!   case-insensitive `LIKE`, several statements in one round trip).
//! - `tasks.rs`: the task table: reads, listing, and applying a change in its transaction.
//! - `events.rs`: the event log: appending an event with its notifications, replay reads,
//!   pruning.
//! - `outbox.rs`: the notification outbox (claim, settle, list, requeue).
//! - `jobs.rs`: background jobs (queue, lease, progress, recovery, cleanup).
//! - `retention.rs`: the background pass that keeps the event log and the outbox bounded.
//! - `open.rs`: opening a database at start-up, the SQLite one-process lock, and start-up
//!   errors that say what to fix.
//! - `sqlite.rs`: one writer connection (SQLite has one writer anyway) + a reader pool, WAL.
//! - `postgres.rs`: one pool; the per-workspace sequence row serialises writers of a workspace.

mod dialect;
mod events;
pub mod jobs;
pub mod open;
pub mod outbox;
mod postgres;
pub mod retention;
mod sql;
mod sqlite;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::error::{Error, Result};
use crate::domain::event::TaskEvent;
use crate::domain::notification::NewNotification;
use crate::domain::query::{TaskFilter, TaskQuery};
use crate::domain::task::Task;

pub use open::{DatabaseLock, OpenError};
pub use postgres::PgStore;
pub use sql::SqlStore;
pub use sqlite::SqliteStore;

/// Default of `DATABASE_TIMEOUT_SECONDS`: long enough for a Postgres restart's first seconds
/// or a busy pool, short enough that a client hears 503 instead of hanging.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 5;

/// The one place database failures become domain errors: losing the connection (the server
/// stopped, restarting, unreachable, or no connection free in time) is `Unavailable`, which
/// clients see as 503 with `Retry-After`; anything else is a bug or a broken database and
/// stays `Internal`.
impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match unavailable_reason(&err) {
            Some(reason) => {
                tracing::warn!(error = %err, "database unavailable");
                Error::Unavailable(reason.to_owned())
            }
            None => Error::internal(err),
        }
    }
}

/// What a client is told when `err` means the database cannot be reached right now.
fn unavailable_reason(err: &sqlx::Error) -> Option<&'static str> {
    const UNREACHABLE: &str = "the database is not reachable; try again shortly";
    match err {
        sqlx::Error::PoolClosed => Some("the database connection is closed (shutting down)"),
        sqlx::Error::PoolTimedOut
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => Some(UNREACHABLE),
        sqlx::Error::Database(db) => {
            let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
            let code = pg.code();
            // Class 08 is connection exceptions; 57P01–57P03 a server shutting down, crashed
            // or starting; 53300 no free connection slot.
            (code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300"))
                .then_some(UNREACHABLE)
        }
        _ => None,
    }
}

impl From<OpenError> for Error {
    fn from(err: OpenError) -> Self {
        match err {
            OpenError::UnknownScheme { .. } | OpenError::InvalidUrl { .. } => {
                Error::invalid("DATABASE_URL", err.to_string())
            }
            other => Error::Unavailable(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        Error::internal(err)
    }
}

/// Decides the new state of a task from its current state, inside the write transaction;
/// returning an error (a stale `If-Match`, say) rolls the change back.
pub type Decide<'a> = &'a (dyn Fn(&Task) -> Result<Task> + Send + Sync);

/// The outbox rows a committed change produces, computed inside its transaction from the
/// event it made.
pub type PlanOutbox<'a> = &'a (dyn Fn(&TaskEvent) -> Vec<NewNotification> + Send + Sync);

/// A change to commit. Updates and deletes read the current row inside the transaction (locked
/// on Postgres; SQLite has a single writer), so concurrent writers queue instead of racing.
pub enum Change<'a> {
    /// Insert a new task.
    Create(Task),
    /// Replace a task by what `decide` makes of it.
    Update {
        /// Workspace of the task.
        workspace: &'a str,
        /// The task.
        id: Uuid,
        /// Current task → next task (version and timestamps already advanced).
        decide: Decide<'a>,
    },
    /// Delete a task if `decide` accepts its current state (it returns the task unchanged).
    Delete {
        /// Workspace of the task.
        workspace: &'a str,
        /// The task.
        id: Uuid,
        /// Checks the current task (e.g. `If-Match`).
        decide: Decide<'a>,
    },
}

/// A page of tasks and the number of matches before paging.
#[derive(Debug, Clone)]
pub struct TaskPage {
    /// The tasks on this page.
    pub tasks: Vec<Task>,
    /// Matches before `limit`/`offset`.
    pub total: i64,
}

/// Everything taskwire keeps in its database.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// `sqlite` or `postgres`, for logs and `/readyz`.
    fn backend(&self) -> &'static str;
    /// Cheap round trip proving the database answers.
    async fn ping(&self) -> Result<()>;
    /// Tasks of a workspace matching a query.
    async fn list_tasks(&self, workspace: &str, query: &TaskQuery) -> Result<TaskPage>;
    /// One task of a workspace.
    async fn get_task(&self, workspace: &str, id: Uuid) -> Result<Option<Task>>;
    /// Commits a change, its event-log row and the outbox rows `plan` makes of the event
    /// atomically; `None` when the task to update or delete does not exist.
    async fn commit(&self, change: Change<'_>, plan: PlanOutbox<'_>) -> Result<Option<TaskEvent>>;
    /// Commits several changes in one transaction (a job's batch): all or none. An entry is
    /// `None` where its task did not exist.
    async fn commit_batch(
        &self,
        changes: Vec<Change<'_>>,
        plan: PlanOutbox<'_>,
    ) -> Result<Vec<Option<TaskEvent>>>;
    /// Applies `decide` to each of `ids` that exists in `workspace`, in one transaction and a
    /// handful of statements (a job's batch): all or none. Returns the events in `seq` order.
    async fn update_many(
        &self,
        workspace: &str,
        ids: &[Uuid],
        decide: Decide<'_>,
    ) -> Result<Vec<TaskEvent>>;
    /// Up to `limit` matching tasks of a workspace with ids after `after`, in id (creation)
    /// order: a stable walk over a set that changes while it is walked.
    async fn tasks_after(
        &self,
        workspace: &str,
        filter: &TaskFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Task>>;
    /// Which of `ids` name an existing task, in any workspace (ids are global).
    async fn existing_ids(&self, ids: &[Uuid]) -> Result<Vec<Uuid>>;
    /// The notification outbox.
    fn outbox(&self) -> &dyn outbox::Outbox;
    /// Background jobs.
    fn jobs(&self) -> &dyn jobs::JobStore;
    /// Logged events of a workspace with `seq > after`, oldest first, at most `limit`.
    async fn events_after(&self, workspace: &str, after: i64, limit: i64)
    -> Result<Vec<TaskEvent>>;
    /// Oldest retained `seq` of a workspace (None when its log is empty) and its latest `seq`
    /// (0 when it never had an event).
    async fn log_bounds(&self, workspace: &str) -> Result<(Option<i64>, i64)>;
    /// Deletes events committed before `cutoff` (None: none is too old) and all but the last
    /// `keep` of each workspace; returns how many went.
    async fn prune_events(
        &self,
        cutoff: Option<chrono::DateTime<chrono::Utc>>,
        keep: i64,
    ) -> Result<u64>;
    /// The last `seq` of every workspace that has events.
    async fn event_heads(&self) -> Result<Vec<(String, i64)>>;
    /// Closes the connections; in-flight queries finish first.
    async fn close(&self);
}

/// Opens the database named by `url` (`sqlite://…` or `postgres://…`), creating a SQLite file
/// if missing, and runs migrations; Postgres gets the default connection timeout
/// ([`DEFAULT_TIMEOUT_SECONDS`]). It takes no [`DatabaseLock`]: a server does that first.
pub async fn connect(url: &str, max_connections: u32) -> Result<Arc<dyn Store>, OpenError> {
    connect_with_timeout(
        url,
        max_connections,
        Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
    )
    .await
}

/// Like [`connect`], waiting at most `timeout` for a Postgres connection, at start-up and for
/// every query afterwards.
pub async fn connect_with_timeout(
    url: &str,
    max_connections: u32,
    timeout: Duration,
) -> Result<Arc<dyn Store>, OpenError> {
    if open::is_postgres(url) {
        Ok(Arc::new(
            PgStore::connect(url, max_connections, timeout).await?,
        ))
    } else if open::is_sqlite(url) {
        Ok(Arc::new(SqliteStore::connect(url, max_connections).await?))
    } else {
        Err(OpenError::UnknownScheme {
            url: open::redact(url),
        })
    }
}

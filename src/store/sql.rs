//! [`SqlStore`]: the [`Store`] over a SQL database, written once for both backends. It holds
//! the pools and answers the [`Store`] trait by calling the task table (`tasks.rs`) and the
//! event log (`events.rs`); the outbox and the jobs implement their own traits
//! (`outbox.rs`, `jobs.rs`).
//!
//! The code is generic over the backend's [`Dialect`]. What `sqlx` needs from a backend to run
//! it (an executor for a connection, `Encode`/`Decode` for the column types taskwire uses)
//! holds for SQLite and Postgres alike, but Rust does not carry such bounds along with
//! `DB: Dialect`, so every generic `impl` block states the ones it uses.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};
use uuid::Uuid;

use super::dialect::Dialect;
use super::jobs::JobStore;
use super::outbox::Outbox;
use super::{Change, Decide, PlanOutbox, Store, TaskPage};
use crate::domain::error::{Error, Result};
use crate::domain::event::TaskEvent;
use crate::domain::query::{TaskFilter, TaskQuery};
use crate::domain::task::Task;

/// The store over one SQL database. Writes, and reads that must see them at once, go through
/// `writer`; other reads through `reader` (SQLite: one writer connection and a read-only
/// pool; Postgres: one pool for both).
#[derive(Debug)]
pub struct SqlStore<DB: Database> {
    pub(super) writer: Pool<DB>,
    pub(super) reader: Pool<DB>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore {
            writer: self.writer.clone(),
            reader: self.reader.clone(),
        }
    }
}

/// The error for a row that does not decode as what taskwire wrote.
pub(super) fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::internal(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("corrupt row in database: {what}"),
    ))
}

/// Each method is the inherent method of the same name in `tasks.rs` or `events.rs` (inherent
/// methods take precedence over the trait's).
#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    Self: Outbox + JobStore,
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
    fn backend(&self) -> &'static str {
        DB::BACKEND
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn list_tasks(&self, workspace: &str, query: &TaskQuery) -> Result<TaskPage> {
        self.list_tasks(workspace, query).await
    }

    async fn get_task(&self, workspace: &str, id: Uuid) -> Result<Option<Task>> {
        self.get_task(workspace, id).await
    }

    async fn commit(&self, change: Change<'_>, plan: PlanOutbox<'_>) -> Result<Option<TaskEvent>> {
        self.commit(change, plan).await
    }

    async fn commit_batch(
        &self,
        changes: Vec<Change<'_>>,
        plan: PlanOutbox<'_>,
    ) -> Result<Vec<Option<TaskEvent>>> {
        self.commit_batch(changes, plan).await
    }

    async fn update_many(
        &self,
        workspace: &str,
        ids: &[Uuid],
        decide: Decide<'_>,
    ) -> Result<Vec<TaskEvent>> {
        self.update_many(workspace, ids, decide).await
    }

    async fn tasks_after(
        &self,
        workspace: &str,
        filter: &TaskFilter,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Task>> {
        self.tasks_after(workspace, filter, after, limit).await
    }

    async fn existing_ids(&self, ids: &[Uuid]) -> Result<Vec<Uuid>> {
        self.existing_ids(ids).await
    }

    fn outbox(&self) -> &dyn Outbox {
        self
    }

    fn jobs(&self) -> &dyn JobStore {
        self
    }

    async fn events_after(
        &self,
        workspace: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<TaskEvent>> {
        self.events_after(workspace, after, limit).await
    }

    async fn log_bounds(&self, workspace: &str) -> Result<(Option<i64>, i64)> {
        self.log_bounds(workspace).await
    }

    async fn prune_events(&self, cutoff: Option<DateTime<Utc>>, keep: i64) -> Result<u64> {
        self.prune_events(cutoff, keep).await
    }

    async fn event_heads(&self) -> Result<Vec<(String, i64)>> {
        self.event_heads().await
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

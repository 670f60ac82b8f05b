//! The task service: the one place where changes are validated, committed and announced.
//! REST handlers, socket commands and jobs all call it, so they behave identically.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;
use tracing::instrument;
use uuid::Uuid;

use super::error::{Error, Result};
use super::event::TaskEvent;
use super::notification::{Plan, webhook_type};
use super::query::TaskQuery;
use super::task::{Actor, NewTask, Task, TaskPatch};
use crate::store::{Change, Store, TaskPage};

/// Receives every committed event, right after commit, to fan it out. Must not block: it is
/// called on the request path.
pub trait EventSink: Send + Sync + 'static {
    /// Hands over one committed event.
    fn publish(&self, event: TaskEvent);

    /// Events handed over and not yet delivered.
    fn backlog(&self) -> usize {
        0
    }
}

/// Validates, commits and announces task changes.
#[derive(Clone)]
pub struct TaskService {
    store: Arc<dyn Store>,
    sink: Arc<dyn EventSink>,
    plan: Arc<Plan>,
    outbox_ready: Arc<Notify>,
}

/// Parses a task id from a path or payload. Something that is not a UUID cannot name a task,
/// so it is reported like any other unknown id.
pub fn parse_task_id(raw: &str) -> Result<Uuid> {
    Uuid::parse_str(raw.trim()).map_err(|_| not_found(raw))
}

fn not_found(id: impl std::fmt::Display) -> Error {
    Error::NotFound(format!("task {id} does not exist"))
}

impl TaskService {
    /// A service over a store, announcing to `sink`, with no notifications configured.
    pub fn new(store: Arc<dyn Store>, sink: Arc<dyn EventSink>) -> Self {
        TaskService {
            store,
            sink,
            plan: Arc::new(Plan::default()),
            outbox_ready: Arc::new(Notify::new()),
        }
    }

    /// Writes the notifications `plan` asks for with every change, and signals `outbox_ready`
    /// after each commit that wrote some.
    pub fn with_notifications(mut self, plan: Plan, outbox_ready: Arc<Notify>) -> Self {
        self.plan = Arc::new(plan);
        self.outbox_ready = outbox_ready;
        self
    }

    /// The store, for read paths that need no rules (health checks, replay).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Waits (at most `limit`) until every event handed to the sink so far has been fanned
    /// out, so a job never produces events faster than clients can be sent them.
    pub async fn wait_for_fanout(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.sink.backlog() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Tells the notification dispatcher to look at the outbox now (after a manual retry).
    pub fn wake_outbox(&self) {
        self.outbox_ready.notify_one();
    }

    /// A page of the actor's tasks.
    #[instrument(skip_all, fields(workspace = %actor.workspace))]
    pub async fn list(&self, actor: &Actor, query: &TaskQuery) -> Result<TaskPage> {
        self.store.list_tasks(&actor.workspace, query).await
    }

    /// One of the actor's tasks; another workspace's task is simply not found.
    #[instrument(skip_all, fields(workspace = %actor.workspace, task_id = %id))]
    pub async fn get(&self, actor: &Actor, id: Uuid) -> Result<Task> {
        self.store
            .get_task(&actor.workspace, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    /// Creates a task from a JSON object.
    #[instrument(skip_all, fields(workspace = %actor.workspace))]
    pub async fn create(&self, actor: &Actor, body: &Value) -> Result<Task> {
        let task = NewTask::from_json(body)?.into_task(actor);
        let id = task.id;
        let plan = |event: &TaskEvent| self.plan.notifications(event, actor, None);
        self.finish(id, self.store.commit(Change::Create(task), &plan).await?)
    }

    /// Applies a partial update to the current state of the task. With `if_match`, a stale
    /// version is refused (412) and nothing changes; without, concurrent updates queue and
    /// each lands on top of the previous one, so none is lost.
    #[instrument(skip_all, fields(workspace = %actor.workspace, task_id = %id))]
    pub async fn update(
        &self,
        actor: &Actor,
        id: Uuid,
        body: &Value,
        if_match: Option<i64>,
    ) -> Result<Task> {
        self.update_notifying(actor, id, body, if_match, None).await
    }

    /// [`TaskService::update`] whose e-mail goes to `recipient` instead of the assignee (the
    /// `user_email` of `/update_task`).
    #[instrument(skip_all, fields(workspace = %actor.workspace, task_id = %id))]
    pub async fn update_notifying(
        &self,
        actor: &Actor,
        id: Uuid,
        body: &Value,
        if_match: Option<i64>,
        recipient: Option<&str>,
    ) -> Result<Task> {
        let patch = TaskPatch::from_json(body)?;
        let decide = |current: &Task| -> Result<Task> {
            check_version(if_match, current.version)?;
            Ok(patch.apply(current, actor))
        };
        let change = Change::Update {
            workspace: &actor.workspace,
            id,
            decide: &decide,
        };
        let plan = |event: &TaskEvent| self.plan.notifications(event, actor, recipient);
        self.finish(id, self.store.commit(change, &plan).await?)
    }

    /// Deletes a task, returning it as it was.
    #[instrument(skip_all, fields(workspace = %actor.workspace, task_id = %id))]
    pub async fn delete(&self, actor: &Actor, id: Uuid, if_match: Option<i64>) -> Result<Task> {
        let decide = |current: &Task| -> Result<Task> {
            check_version(if_match, current.version)?;
            Ok(current.clone())
        };
        let change = Change::Delete {
            workspace: &actor.workspace,
            id,
            decide: &decide,
        };
        let plan = |event: &TaskEvent| self.plan.notifications(event, actor, None);
        self.finish(id, self.store.commit(change, &plan).await?)
    }

    /// Applies one patch to many tasks in one transaction (a job's batch). Each change gets
    /// its version, event and fan-out like any other, but no notification of its own: the job
    /// sends one summary instead. Tasks that vanished meanwhile are skipped.
    #[instrument(skip_all, fields(workspace = %actor.workspace, tasks = ids.len()))]
    pub async fn update_batch(
        &self,
        actor: &Actor,
        ids: &[Uuid],
        patch: &TaskPatch,
    ) -> Result<Vec<Task>> {
        let decide = |current: &Task| -> Result<Task> { Ok(patch.apply(current, actor)) };
        let events = self
            .store
            .update_many(&actor.workspace, ids, &decide)
            .await?;
        Ok(events
            .into_iter()
            .map(|event| self.announce_quietly(event))
            .collect())
    }

    /// Stores tasks exactly as given (an import: ids, versions and timestamps kept) in one
    /// transaction, all or none; like [`TaskService::update_batch`], without notifications.
    #[instrument(skip_all, fields(tasks = tasks.len()))]
    pub async fn insert_batch(&self, tasks: Vec<Task>) -> Result<Vec<Task>> {
        let changes = tasks.into_iter().map(Change::Create).collect();
        let events = self.store.commit_batch(changes, &|_| Vec::new()).await?;
        Ok(events
            .into_iter()
            .flatten()
            .map(|event| self.announce_quietly(event))
            .collect())
    }

    /// Queues the one summary notification of a job's changes (one per webhook).
    pub async fn notify_summary(
        &self,
        actor: &Actor,
        event_type: &'static str,
        subject: Uuid,
        data: Value,
    ) -> Result<()> {
        let rows = self
            .plan
            .summary(&actor.workspace, event_type, subject, data);
        if rows.is_empty() {
            return Ok(());
        }
        self.store.outbox().enqueue(&rows).await?;
        self.outbox_ready.notify_one();
        Ok(())
    }

    fn announce_quietly(&self, event: TaskEvent) -> Task {
        let task = event.task.clone();
        self.sink.publish(event);
        task
    }

    fn finish(&self, id: Uuid, committed: Option<TaskEvent>) -> Result<Task> {
        match committed {
            Some(event) => Ok(self.announce(event)),
            None => Err(not_found(id)),
        }
    }

    fn announce(&self, event: TaskEvent) -> Task {
        // The log channel of notifications: one structured line per committed change.
        tracing::info!(
            target: "taskwire::notifications",
            channel = "log",
            event_type = webhook_type(event.kind),
            workspace = %event.workspace,
            task_id = %event.task.id,
            seq = event.seq,
            by = event.task.updated_by.as_deref().unwrap_or("anonymous"),
            "task change"
        );
        if !self.plan.is_empty() {
            self.outbox_ready.notify_one();
        }
        let task = event.task.clone();
        self.sink.publish(event);
        task
    }
}

fn check_version(expected: Option<i64>, current: i64) -> Result<()> {
    match expected {
        Some(expected) if expected != current => Err(Error::PreconditionFailed {
            message: format!(
                "If-Match names version {expected} but the task is at version {current}"
            ),
            current: Some(current),
        }),
        _ => Ok(()),
    }
}

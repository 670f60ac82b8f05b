//! The job manager: accepts jobs, runs them in a bounded pool, and keeps every client's view
//! current. Jobs are rows, so the queue survives a restart and any process on a shared
//! database can take the next job (`SKIP LOCKED` on Postgres).
//!
//! A running job is watched by its runner: progress is persisted and broadcast at most every
//! [`PUBLISH_EVERY`], the claim is renewed every `JOB_HEARTBEAT_SECONDS`, a cancel requested
//! anywhere (it is a column) stops the job at its next checkpoint, the timeout and shutdown do
//! the same, and a job that ignores the stop is dropped after [`STOP_GRACE`].
//!
//! This file is the public API (submit, read, list, cancel, result file); `manager/pool.rs`
//! claims and runs jobs and records their end, `manager/supervise.rs` watches one running
//! job, `manager/cleanup.rs` removes old ones.

mod cleanup;
mod pool;
mod supervise;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use serde_json::json;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::JobSink;
use super::model::{JobFilter, JobRecord, JobState, NewJob, ResultFile};
use super::registry::{JobRequest, Registry};
use crate::config::Settings;
use crate::domain::error::{Error, Result};
use crate::domain::service::TaskService;
use crate::domain::task::{Actor, now};
use crate::store::Store;
use crate::store::jobs::CancelOutcome;
use crate::telemetry::metric;

/// Progress reaches the database, SSE streams and sockets at most this often per job.
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// How long a job that was told to stop may take to reach its next checkpoint.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the queue is looked at when nothing wakes the manager (jobs submitted to
/// another process, expired claims).
const POLL: Duration = Duration::from_secs(1);
/// Job updates buffered for SSE subscribers; a subscriber that falls behind re-reads the row.
const UPDATES_BUFFER: usize = 1024;

/// Limits and places, from the settings.
#[derive(Debug, Clone)]
struct Limits {
    workers: usize,
    timeout: Duration,
    heartbeat: Duration,
    result_dir: PathBuf,
    retention: Duration,
    cleanup_every: Duration,
}

/// Runs jobs and answers questions about them. Cheap to clone.
#[derive(Clone)]
pub struct JobManager {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    service: TaskService,
    registry: Arc<Registry>,
    sink: Arc<dyn JobSink>,
    limits: Limits,
    /// This process's name on the rows it claims.
    owner: String,
    wake: Notify,
    updates: broadcast::Sender<Arc<JobRecord>>,
    /// Stop switches of the jobs running here, so a local cancel is immediate.
    running: Mutex<HashMap<Uuid, CancellationToken>>,
}

impl JobManager {
    /// A manager over `store` whose jobs change tasks through `service` and announce
    /// themselves to `sink`.
    pub fn new(
        settings: &Settings,
        store: Arc<dyn Store>,
        service: TaskService,
        registry: Arc<Registry>,
        sink: Arc<dyn JobSink>,
    ) -> Self {
        let limits = Limits {
            workers: settings.task_max_workers.max(1),
            timeout: Duration::from_secs(settings.task_timeout_seconds.max(1)),
            heartbeat: Duration::from_secs(settings.job_heartbeat_seconds.max(1)),
            result_dir: settings.job_result_dir.clone(),
            retention: Duration::from_secs(settings.job_retention_seconds),
            cleanup_every: Duration::from_secs(settings.task_cleanup_interval_seconds.max(1)),
        };
        JobManager {
            inner: Arc::new(Inner {
                store,
                service,
                registry,
                sink,
                limits,
                owner: format!("taskwire-{}", Uuid::now_v7().simple()),
                wake: Notify::new(),
                updates: broadcast::channel(UPDATES_BUFFER).0,
                running: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The kinds jobs can be submitted for.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// Every job change published in this process, for SSE streams.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<JobRecord>> {
        self.inner.updates.subscribe()
    }

    /// Validates and queues a job for `actor`. Unknown kind or bad params → 422.
    pub async fn submit(
        &self,
        actor: &Actor,
        kind: &str,
        request: JobRequest,
    ) -> Result<JobRecord> {
        let Some(job) = self.inner.registry.get(kind) else {
            let kinds = self.inner.registry.kinds().join(", ");
            return Err(Error::invalid(
                "kind",
                format!("unknown job kind {kind:?}; known kinds: {kinds}"),
            ));
        };
        let (params, input) = job.prepare(request)?;
        let new = NewJob {
            id: Uuid::now_v7(),
            workspace: actor.workspace.clone(),
            kind: kind.to_owned(),
            params,
            input,
            actor: json!({"user": actor.user, "name": actor.name, "email": actor.email}),
            restartable: job.restartable(),
            created_at: now(),
        };
        let record = self.inner.store.jobs().insert_job(&new).await?;
        metrics::counter!(metric::JOBS_SUBMITTED, "kind" => kind.to_owned()).increment(1);
        tracing::info!(job_id = %record.id, kind, workspace = %actor.workspace, "job queued");
        self.inner.publish(record.clone());
        self.inner.wake.notify_one();
        Ok(record)
    }

    /// One of the actor's jobs.
    pub async fn get(&self, actor: &Actor, id: Uuid) -> Result<JobRecord> {
        self.inner
            .store
            .jobs()
            .get_job(Some(&actor.workspace), id)
            .await?
            .ok_or_else(|| job_not_found(id))
    }

    /// The actor's jobs, newest first.
    pub async fn list(&self, actor: &Actor, filter: &JobFilter) -> Result<Vec<JobRecord>> {
        self.inner
            .store
            .jobs()
            .list_jobs(&actor.workspace, filter)
            .await
    }

    /// Cancels a queued job at once, or tells a running one to stop (it becomes `cancelled`
    /// at its next checkpoint). A job already final → 409.
    pub async fn cancel(&self, actor: &Actor, id: Uuid) -> Result<JobRecord> {
        match self
            .inner
            .store
            .jobs()
            .cancel_job(&actor.workspace, id, now())
            .await?
        {
            CancelOutcome::Cancelled(job) => {
                tracing::info!(job_id = %id, "queued job cancelled");
                self.inner.publish(job.clone());
                Ok(job)
            }
            CancelOutcome::Requested(job) => {
                tracing::info!(job_id = %id, "running job asked to stop");
                if let Some(stop) = self.inner.running_token(id) {
                    stop.cancel();
                }
                Ok(job)
            }
            CancelOutcome::AlreadyFinal(job) => Err(Error::Conflict(format!(
                "job {id} is already {}",
                job.state.as_str()
            ))),
            CancelOutcome::NotFound => Err(job_not_found(id)),
        }
    }

    /// The file a succeeded job produced, from the database (so any process serves it) as a
    /// stream that holds one stored part at a time: 404 for an unknown job or one without a
    /// file, 409 while it has not succeeded. The stream fails if the file is deleted (by
    /// retention cleanup) while it is read.
    pub async fn result_file(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<(ResultFile, BoxStream<'static, Result<Bytes>>)> {
        let job = self.get(actor, id).await?;
        let file = match (&job.state, job.result_file) {
            (JobState::Succeeded, Some(file)) => file,
            (JobState::Succeeded, None) => {
                return Err(Error::NotFound(format!(
                    "job {id} ({}) has no result file",
                    job.kind
                )));
            }
            (state, _) => {
                return Err(Error::Conflict(format!(
                    "job {id} is {}; its result is available once it has succeeded",
                    state.as_str()
                )));
            }
        };
        // The first part is read before answering, so a file deleted in between is a 404
        // rather than a 200 that breaks off.
        let store = self.inner.store.clone();
        let first = store.jobs().result_part(id, 0).await?;
        if first.is_none() && file.size > 0 {
            return Err(gone(id));
        }
        let size = file.size;
        let rest = futures::stream::try_unfold((first, 0i64, 0i64), move |(next, part, sent)| {
            let store = store.clone();
            async move {
                let bytes = match next {
                    Some(bytes) => Some(bytes),
                    None if part == 0 => None,
                    None => store.jobs().result_part(id, part).await?,
                };
                match bytes {
                    Some(bytes) => {
                        let sent = sent + bytes.len() as i64;
                        Ok(Some((Bytes::from(bytes), (None, part + 1, sent))))
                    }
                    None if sent == size => Ok(None),
                    None => Err(gone(id)),
                }
            }
        });
        Ok((file, rest.boxed()))
    }
}

fn job_not_found(id: impl std::fmt::Display) -> Error {
    Error::NotFound(format!("job {id} does not exist"))
}

/// A claim outlives three missed heartbeats before the job counts as orphaned.
fn lease_length(heartbeat: Duration) -> chrono::Duration {
    chrono::Duration::from_std(heartbeat * 3).unwrap_or(chrono::Duration::seconds(30))
}

fn gone(id: Uuid) -> Error {
    Error::NotFound(format!("the result file of job {id} is gone"))
}

impl Inner {
    fn publish(&self, job: JobRecord) {
        self.sink.job_changed(&job);
        let _ = self.updates.send(Arc::new(job));
    }

    fn running_token(&self, id: Uuid) -> Option<CancellationToken> {
        self.running
            .lock()
            .expect("running jobs lock is never poisoned")
            .get(&id)
            .cloned()
    }
}

//! The job manager: accepts jobs, runs them in a bounded pool, and keeps every client's view
//! current. Jobs are rows, so the queue survives a restart and any process on a shared
//! database can take the next job (`SKIP LOCKED` on Postgres).
//!
//! A running job is watched by its runner: progress is persisted and broadcast at most every
//! [`PUBLISH_EVERY`], the claim is renewed every `JOB_HEARTBEAT_SECONDS`, a cancel requested
//! anywhere (it is a column) stops the job at its next checkpoint, the timeout and shutdown do
//! the same, and a job that ignores the stop is dropped after [`STOP_GRACE`].

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::JobSink;
use super::context::{JobContext, ScratchResult};
use super::model::{JobFailure, JobFilter, JobRecord, JobState, NewJob, Outcome, ResultFile};
use super::registry::{JobError, JobRequest, Registry};
use crate::config::Settings;
use crate::domain::error::{Error, Result};
use crate::domain::service::TaskService;
use crate::domain::task::{Actor, now, older_than};
use crate::store::Store;
use crate::store::jobs::{CancelOutcome, ClaimedJob, Orphans, RESULT_PART};
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

    /// Runs the queue until `shutdown`: claims jobs while a worker is free, and recovers jobs
    /// whose process died. Queued jobs stay queued across a shutdown.
    pub async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let inner = self.inner;
        let exclusive = inner.store.backend() == "sqlite";
        // A SQLite database has one taskwire process, so whatever was running is orphaned
        // now; on Postgres others may be alive, so only claims that ran out count.
        let first = if exclusive {
            Orphans::All
        } else {
            Orphans::ExpiredBefore(now())
        };
        inner.recover(first).await;
        let pool = Arc::new(Semaphore::new(inner.limits.workers));
        let mut last_recovery = Instant::now();
        loop {
            let permit = tokio::select! {
                permit = pool.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                () = shutdown.cancelled() => break,
            };
            if last_recovery.elapsed() >= inner.limits.heartbeat {
                inner.recover(Orphans::ExpiredBefore(now())).await;
                last_recovery = Instant::now();
            }
            let at = now();
            let lease = at + lease_length(inner.limits.heartbeat);
            match inner.store.jobs().claim_job(&inner.owner, at, lease).await {
                Ok(Some(claimed)) => {
                    let inner = inner.clone();
                    tracker.spawn(inner.run_one(claimed, permit, shutdown.clone()));
                    continue;
                }
                Ok(None) => drop(permit),
                Err(err) => {
                    drop(permit);
                    tracing::warn!(error = %err, "cannot read the job queue; retrying");
                }
            }
            tokio::select! {
                () = inner.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
                () = shutdown.cancelled() => break,
            }
        }
    }

    /// Removes finished jobs older than `JOB_RETENTION_SECONDS`, with their result files, every
    /// `TASK_CLEANUP_INTERVAL_SECONDS` until `shutdown`.
    pub async fn clean_up(self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(self.inner.limits.cleanup_every);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = shutdown.cancelled() => return,
            }
            match self.clean_up_once().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "old jobs cleaned up"),
                Err(err) => tracing::warn!(error = %err, "job cleanup failed; will retry"),
            }
        }
    }

    /// One cleanup pass; returns how many jobs went.
    pub async fn clean_up_once(&self) -> Result<usize> {
        let Some(cutoff) = older_than(self.inner.limits.retention) else {
            return Ok(0);
        };
        let removed = self.inner.store.jobs().delete_finished_jobs(cutoff).await?;
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
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

/// What a job's monitor tells its runner, and how the runner tells it to finish.
#[derive(Clone, Default)]
struct MonitorSignals {
    /// A cancel was recorded on the row (possibly by another process).
    cancel_requested: CancellationToken,
    /// This process no longer holds the job.
    lost: CancellationToken,
    /// The run is over; the monitor stops.
    done: CancellationToken,
}

/// Why a run stopped before its job returned on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Cancelled,
    TimedOut,
    Shutdown,
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

    async fn recover(&self, orphans: Orphans) {
        match self.store.jobs().recover_jobs(orphans).await {
            Ok(jobs) => {
                for job in jobs {
                    tracing::warn!(job_id = %job.id, kind = %job.kind, state = job.state.as_str(),
                        "job's process stopped while it ran");
                    self.publish(job);
                }
            }
            Err(err) => tracing::warn!(error = %err, "cannot recover orphaned jobs"),
        }
    }

    async fn run_one(
        self: Arc<Self>,
        claimed: ClaimedJob,
        permit: OwnedSemaphorePermit,
        shutdown: CancellationToken,
    ) {
        let ClaimedJob {
            record,
            actor,
            input,
        } = claimed;
        let id = record.id;
        let kind_name = record.kind.clone();
        tracing::info!(job_id = %id, kind = %kind_name, "job started");
        self.publish(record.clone());
        let started = Instant::now();
        let stop = CancellationToken::new();
        self.running
            .lock()
            .expect("running jobs lock is never poisoned")
            .insert(id, stop.clone());
        let (progress_tx, progress_rx) = watch::channel(record.progress.clone());
        let ctx = JobContext {
            id,
            actor: actor_of(&record.workspace, &actor),
            service: self.service.clone(),
            input,
            progress: progress_tx,
            stop: stop.clone(),
            result_dir: self.limits.result_dir.clone(),
            result_file: Mutex::new(None),
        };
        let (ran, reason) = match self.registry.get(&kind_name) {
            Some(kind) => {
                let work = AssertUnwindSafe(kind.run(record.params.clone(), &ctx)).catch_unwind();
                self.watch(record.clone(), work, &stop, progress_rx, &shutdown)
                    .await
            }
            None => (
                Some(Err(JobError::failed(
                    "unknown_kind",
                    format!("no job kind {kind_name:?} is registered in this process"),
                ))),
                None,
            ),
        };
        let (outcome, file) = self.outcome(&kind_name, &ctx, ran, reason);
        drop(ctx);
        self.running
            .lock()
            .expect("running jobs lock is never poisoned")
            .remove(&id);
        match self.finish(id, &outcome, file).await {
            Ok(Some(job)) => {
                let state = job.state;
                tracing::info!(job_id = %id, kind = %kind_name, state = state.as_str(),
                    seconds = started.elapsed().as_secs_f64(), "job finished");
                metrics::counter!(metric::JOBS_FINISHED, "kind" => kind_name, "state" => state.as_str())
                    .increment(1);
                self.publish(job);
            }
            Ok(None) => {
                tracing::warn!(job_id = %id, "job was taken over while it ran; its outcome is dropped")
            }
            Err(err) => {
                tracing::error!(job_id = %id, error = ?err, "cannot record a job's outcome")
            }
        }
        drop(permit);
        self.wake.notify_one();
    }

    /// Records the outcome, storing a succeeded job's result file first. A file that cannot
    /// be stored fails the job (`result_not_stored`) rather than leaving it `succeeded`
    /// without its file or `running` until its lease runs out.
    async fn finish(
        &self,
        id: Uuid,
        outcome: &Outcome,
        file: Option<ScratchResult>,
    ) -> Result<Option<JobRecord>> {
        let jobs = self.store.jobs();
        let Some(mut file) = file else {
            return jobs.finish_job(id, &self.owner, outcome, None, now()).await;
        };
        match self.store_result(id, &mut file.file).await {
            Ok(Some(size)) => {
                let stored = ResultFile {
                    content_type: file.content_type,
                    filename: file.filename,
                    size,
                };
                jobs.finish_job(id, &self.owner, outcome, Some(&stored), now())
                    .await
            }
            // Taken over meanwhile: the job is no longer ours to settle.
            Ok(None) => Ok(None),
            Err(err) => {
                tracing::error!(job_id = %id, error = ?err, "cannot store a job's result file");
                if let Err(err) = jobs.clear_result(id, &self.owner).await {
                    tracing::warn!(job_id = %id, error = ?err,
                        "cannot remove a result file stored in part; it goes with its job");
                }
                let failed = Outcome {
                    state: JobState::Failed,
                    error: Some(failure(
                        "result_not_stored",
                        "the job finished but its result file could not be stored",
                    )),
                    result: None,
                    progress: outcome.progress.clone(),
                };
                jobs.finish_job(id, &self.owner, &failed, None, now()).await
            }
        }
    }

    /// Copies a result file into the database, one part at a time (one part in memory, one
    /// short write each); returns its size, or None when this process lost the job.
    async fn store_result(&self, id: Uuid, file: &mut tokio::fs::File) -> Result<Option<i64>> {
        let jobs = self.store.jobs();
        jobs.clear_result(id, &self.owner).await?;
        file.rewind().await.map_err(Error::internal)?;
        let mut buf = Vec::with_capacity(RESULT_PART);
        let (mut part, mut size) = (0i64, 0i64);
        loop {
            buf.clear();
            let read = (&mut *file)
                .take(RESULT_PART as u64)
                .read_to_end(&mut buf)
                .await
                .map_err(Error::internal)?;
            if read == 0 {
                return Ok(Some(size));
            }
            if !jobs.put_result_part(id, &self.owner, part, &buf).await? {
                return Ok(None);
            }
            part += 1;
            size += read as i64;
        }
    }

    /// Polls the job until it returns or is dropped after ignoring a stop, while a monitor
    /// task keeps its row and its watchers current. Returns what the job returned (None when
    /// dropped) and why it was told to stop, if it was.
    ///
    /// The monitor is a task of its own because the job may hold the only SQLite writer in a
    /// transaction: a heartbeat awaited here would wait for a job that is not being polled.
    async fn watch<F>(
        self: &Arc<Self>,
        job: JobRecord,
        work: F,
        stop: &CancellationToken,
        progress: watch::Receiver<super::model::Progress>,
        shutdown: &CancellationToken,
    ) -> (
        Option<std::result::Result<Option<serde_json::Value>, JobError>>,
        Option<StopReason>,
    )
    where
        F: std::future::Future<
                Output = std::thread::Result<
                    std::result::Result<Option<serde_json::Value>, JobError>,
                >,
            >,
    {
        let id = job.id;
        let signals = MonitorSignals::default();
        let monitor = tokio::spawn(self.clone().monitor(job, progress, signals.clone()));
        tokio::pin!(work);
        let deadline = tokio::time::sleep(self.limits.timeout);
        tokio::pin!(deadline);
        let mut reason: Option<StopReason> = None;
        let mut grace: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
        let tell = |why: StopReason, reason: &mut Option<StopReason>, grace: &mut Option<_>| {
            *reason = Some(why);
            stop.cancel();
            *grace = Some(Box::pin(tokio::time::sleep(STOP_GRACE)));
        };
        let ran = loop {
            tokio::select! {
                biased;
                result = &mut work => break Some(result.unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    tracing::error!(job_id = %id, panic = %what, "job panicked");
                    Err(JobError::failed("panicked", format!("the job panicked: {what}")))
                })),
                () = async { grace.as_mut().expect("guarded by is_some").await }, if grace.is_some() => {
                    tracing::warn!(job_id = %id, "job ignored its stop signal; dropping it");
                    break None;
                }
                () = signals.lost.cancelled() => {
                    tracing::warn!(job_id = %id, "job's claim was lost; stopping it");
                    stop.cancel();
                    break None;
                }
                () = &mut deadline, if reason.is_none() => tell(StopReason::TimedOut, &mut reason, &mut grace),
                () = shutdown.cancelled(), if reason.is_none() => tell(StopReason::Shutdown, &mut reason, &mut grace),
                () = signals.cancel_requested.cancelled(), if reason.is_none() => tell(StopReason::Cancelled, &mut reason, &mut grace),
                () = stop.cancelled(), if reason.is_none() => tell(StopReason::Cancelled, &mut reason, &mut grace),
            }
        };
        signals.done.cancel();
        // Its last write must land before the final state is recorded.
        let _ = monitor.await;
        (ran, reason)
    }

    /// Persists and publishes progress at most every [`PUBLISH_EVERY`], renews the claim
    /// every heartbeat, and raises `cancel_requested` when a cancel was asked for anywhere.
    async fn monitor(
        self: Arc<Self>,
        mut job: JobRecord,
        mut progress: watch::Receiver<super::model::Progress>,
        signals: MonitorSignals,
    ) {
        let mut tick = tokio::time::interval(PUBLISH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_beat = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = signals.done.cancelled() => return,
            }
            let changed = progress.has_changed().unwrap_or(false);
            if !changed && last_beat.elapsed() < self.limits.heartbeat {
                continue;
            }
            let current = progress.borrow_and_update().clone();
            last_beat = Instant::now();
            let lease = now() + lease_length(self.limits.heartbeat);
            match self
                .store
                .jobs()
                .heartbeat(job.id, &self.owner, &current, lease)
                .await
            {
                Ok(Some(cancel)) => {
                    if cancel {
                        signals.cancel_requested.cancel();
                    }
                    if changed {
                        // The row as the heartbeat left it, without reading it back.
                        job.progress = current;
                        job.cancel_requested = cancel;
                        self.publish(job.clone());
                    }
                }
                Ok(None) => {
                    signals.lost.cancel();
                    return;
                }
                Err(err) => {
                    tracing::warn!(job_id = %job.id, error = %err, "cannot record job progress")
                }
            }
        }
    }

    /// The final state of a run from what the job returned and why it was told to stop, and
    /// the result file to store when it succeeded.
    fn outcome(
        &self,
        kind: &str,
        ctx: &JobContext,
        ran: Option<std::result::Result<Option<serde_json::Value>, JobError>>,
        reason: Option<StopReason>,
    ) -> (Outcome, Option<ScratchResult>) {
        let progress = ctx.current_progress();
        let result_file = ctx.take_result_file();
        let stopped = |reason: Option<StopReason>| -> (JobState, JobFailure) {
            match reason {
                Some(StopReason::TimedOut) => (
                    JobState::TimedOut,
                    failure(
                        "timed_out",
                        format!(
                            "the job ran longer than TASK_TIMEOUT_SECONDS ({} s)",
                            self.limits.timeout.as_secs()
                        ),
                    ),
                ),
                Some(StopReason::Shutdown) => (
                    JobState::Interrupted,
                    failure(
                        "interrupted",
                        "the server shut down while this job was running",
                    ),
                ),
                Some(StopReason::Cancelled) | None => (
                    JobState::Cancelled,
                    failure("cancelled", "cancelled while running"),
                ),
            }
        };
        let (state, error, result) = match ran {
            Some(Ok(result)) => (JobState::Succeeded, None, result),
            Some(Err(JobError::Failed { code, message })) => {
                (JobState::Failed, Some(JobFailure { code, message }), None)
            }
            Some(Err(JobError::Stopped)) | None => {
                let (state, error) = stopped(reason);
                (state, Some(error), None)
            }
        };
        // A run cut short by shutdown goes back to the queue when its kind says that is safe.
        let restartable = self.registry.get(kind).is_some_and(|k| k.restartable());
        let state = if state == JobState::Interrupted && restartable {
            JobState::Queued
        } else {
            state
        };
        // Any other run's file is dropped here, and with its last handle it leaves the disk.
        let keep_file = state == JobState::Succeeded;
        let outcome = Outcome {
            error: if state == JobState::Queued {
                None
            } else {
                error
            },
            state,
            result,
            progress,
        };
        (outcome, result_file.filter(|_| keep_file))
    }
}

fn failure(code: &str, message: impl Into<String>) -> JobFailure {
    JobFailure {
        code: code.to_owned(),
        message: message.into(),
    }
}

fn actor_of(workspace: &str, stored: &serde_json::Value) -> Actor {
    let text = |key: &str| stored.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    Actor {
        workspace: workspace.to_owned(),
        user: text("user"),
        name: text("name"),
        email: text("email"),
    }
}

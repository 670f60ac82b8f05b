//! The worker pool: claims queued jobs while a worker is free, runs each under supervision,
//! records how it ended and keeps its result file; and recovers the jobs of a process that died.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::FutureExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::supervise::StopReason;
use super::{Inner, JobManager, POLL, lease_length};
use crate::domain::error::{Error, Result};
use crate::domain::task::{Actor, now};
use crate::jobs::context::{JobContext, ScratchResult};
use crate::jobs::model::{JobFailure, JobRecord, JobState, Outcome, ResultFile};
use crate::jobs::registry::JobError;
use crate::store::jobs::{ClaimedJob, Orphans, RESULT_PART};
use crate::telemetry::metric;

impl JobManager {
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
}

impl Inner {
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

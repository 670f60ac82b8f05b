//! What a running job sees: who it acts for, the task service, its input, a place for its
//! result file, progress reporting and cancellation.
//!
//! A result file is written to a scratch file in `JOB_RESULT_DIR` that is unlinked as soon
//! as it is created: only its open handles keep it, so nothing is left on disk however the
//! run ends, a crash included. When the job succeeds the manager stores the file in the
//! database, where every process can serve it. Reporting progress is cheap (it only
//! records the latest value); the manager persists and broadcasts it a few times a second.

use std::path::PathBuf;
use std::sync::Mutex;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::model::Progress;
use super::registry::JobError;
use crate::domain::service::TaskService;
use crate::domain::task::Actor;

/// The handle a [`Job`](super::Job) works through.
pub struct JobContext {
    pub(crate) id: Uuid,
    pub(crate) actor: Actor,
    pub(crate) service: TaskService,
    pub(crate) input: Option<Vec<u8>>,
    pub(crate) progress: watch::Sender<Progress>,
    pub(crate) stop: CancellationToken,
    pub(crate) result_dir: PathBuf,
    pub(crate) result_file: Mutex<Option<ScratchResult>>,
}

/// The result file a job is writing, as the manager takes it over when the run ends.
pub(crate) struct ScratchResult {
    /// A second handle on the (unlinked) file the job writes through.
    pub(crate) file: tokio::fs::File,
    /// Its `Content-Type`.
    pub(crate) content_type: String,
    /// Its download name.
    pub(crate) filename: String,
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Who submitted the job: its changes are made as them, in their workspace.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// The task service, so changes get versions, events and notifications like any other.
    pub fn service(&self) -> &TaskService {
        &self.service
    }

    /// The upload stored with the job (imports), if any.
    pub fn input(&self) -> Option<&[u8]> {
        self.input.as_deref()
    }

    /// Sets progress to `done` of `total` with a message.
    pub fn progress(&self, done: i64, total: i64, message: impl Into<String>) {
        let message = message.into();
        self.progress.send_modify(|p| {
            p.done = done;
            p.total = total;
            p.message = message;
        });
    }

    /// The progress reported last.
    pub fn current_progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// Whether the job should stop (cancelled, timed out or the server is stopping).
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// `Err(JobError::Stopped)` once the job should stop; call it between units of work so a
    /// cancel takes effect within one of them.
    pub fn checkpoint(&self) -> Result<(), JobError> {
        if self.stop.is_cancelled() {
            Err(JobError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Yields the server to everyone else between two units of work: waits until the events
    /// of the unit begun at `started` have been fanned out to clients, then twice as long as
    /// all that took. A job so takes at most a third of the server's time (and of SQLite's
    /// single writer), and requests and live events keep their latency while it runs.
    /// Returns early when the job should stop.
    pub async fn pace(&self, started: std::time::Instant) {
        tokio::select! {
            () = async {
                self.service.wait_for_fanout(std::time::Duration::from_secs(5)).await;
                tokio::time::sleep(started.elapsed() * 2).await;
            } => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Resolves when the job should stop, for jobs that wait on something.
    pub async fn stopping(&self) {
        self.stop.cancelled().await;
    }

    /// Creates the job's result file, served by `GET /api/jobs/{id}/result` with
    /// `content_type` and the download name `filename` once the job has succeeded. A job has
    /// at most one; creating it again starts it over. Flush it before the job returns: what
    /// has been written then is what is stored.
    pub async fn create_result_file(
        &self,
        filename: &str,
        content_type: &str,
    ) -> std::io::Result<tokio::fs::File> {
        tokio::fs::create_dir_all(&self.result_dir).await?;
        let path = self
            .result_dir
            .join(format!("{}.{}.partial", self.id, Uuid::now_v7().simple()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        tokio::fs::remove_file(&path).await?;
        let keep = file.try_clone().await?;
        *self
            .result_file
            .lock()
            .expect("result file lock is never poisoned") = Some(ScratchResult {
            file: keep,
            content_type: content_type.to_owned(),
            filename: filename.to_owned(),
        });
        Ok(file)
    }

    pub(crate) fn take_result_file(&self) -> Option<ScratchResult> {
        self.result_file
            .lock()
            .expect("result file lock is never poisoned")
            .take()
    }
}

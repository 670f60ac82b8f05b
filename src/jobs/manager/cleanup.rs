//! Removing finished jobs (and their result files) once they are older than the retention.

use tokio_util::sync::CancellationToken;

use super::JobManager;
use crate::domain::error::Result;
use crate::domain::task::older_than;

impl JobManager {
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

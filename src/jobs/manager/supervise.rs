//! Supervising one running job: its progress published, its claim renewed, and a cancel, the
//! timeout or shutdown turned into a stop at the job's next checkpoint (or a drop after the
//! grace period).

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Inner, PUBLISH_EVERY, STOP_GRACE, lease_length};
use crate::domain::task::now;
use crate::jobs::model::{JobRecord, Progress};
use crate::jobs::registry::JobError;

/// What a job's monitor tells its runner, and how the runner tells it to finish.
#[derive(Clone, Default)]
pub(super) struct MonitorSignals {
    /// A cancel was recorded on the row (possibly by another process).
    cancel_requested: CancellationToken,
    /// This process no longer holds the job.
    lost: CancellationToken,
    /// The run is over; the monitor stops.
    done: CancellationToken,
}

/// Why a run stopped before its job returned on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopReason {
    Cancelled,
    TimedOut,
    Shutdown,
}

impl Inner {
    /// Polls the job until it returns or is dropped after ignoring a stop, while a monitor
    /// task keeps its row and its watchers current. Returns what the job returned (None when
    /// dropped) and why it was told to stop, if it was.
    ///
    /// The monitor is a task of its own because the job may hold the only SQLite writer in a
    /// transaction: a heartbeat awaited here would wait for a job that is not being polled.
    pub(super) async fn watch<F>(
        self: &Arc<Self>,
        job: JobRecord,
        work: F,
        stop: &CancellationToken,
        progress: watch::Receiver<Progress>,
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
    pub(super) async fn monitor(
        self: Arc<Self>,
        mut job: JobRecord,
        mut progress: watch::Receiver<Progress>,
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
}

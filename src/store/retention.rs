//! Store maintenance: keeps the tables that grow with every change bounded. Every
//! `EVENT_PRUNE_INTERVAL_SECONDS` it deletes replay-log events older than
//! `EVENT_RETENTION_SECONDS` (and all but the last `EVENT_RETENTION_COUNT` per workspace), and
//! settled notifications (`delivered`, `dead`) older than `NOTIFICATION_RETENTION_SECONDS`
//! with their attempts. Finished jobs (and their result files) are the job manager's to remove,
//! after `JOB_RETENTION_SECONDS`. Stops when the shutdown token is cancelled.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Store;
use crate::config::Settings;
use crate::domain::task::older_than;
use crate::telemetry::metric;

/// Runs the pruning loop until `shutdown`.
pub async fn run(store: Arc<dyn Store>, settings: Arc<Settings>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(
        settings.event_prune_interval_seconds.max(1),
    ));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => prune_once(&store, &settings).await,
            () = shutdown.cancelled() => return,
        }
    }
}

/// One pruning pass over the event log and the settled notifications.
pub async fn prune_once(store: &Arc<dyn Store>, settings: &Settings) {
    let events_before = older_than(Duration::from_secs(settings.event_retention_seconds));
    match store
        .prune_events(events_before, settings.event_retention_count.max(0))
        .await
    {
        Ok(0) => {}
        Ok(n) => {
            metrics::counter!(metric::EVENTS_PRUNED).increment(n);
            tracing::info!(pruned = n, "pruned the event log");
        }
        Err(err) => tracing::warn!(error = ?err, "could not prune the event log"),
    }
    let Some(settled_before) =
        older_than(Duration::from_secs(settings.notification_retention_seconds))
    else {
        return;
    };
    match store.outbox().prune_settled(settled_before).await {
        Ok(0) => {}
        Ok(n) => {
            metrics::counter!(metric::NOTIFICATIONS_PRUNED).increment(n);
            tracing::info!(pruned = n, "pruned settled notifications");
        }
        Err(err) => tracing::warn!(error = ?err, "could not prune settled notifications"),
    }
}

//! Keeps the replay log bounded: every `EVENT_PRUNE_INTERVAL_SECONDS`, deletes events older
//! than `EVENT_RETENTION_SECONDS` and all but the last `EVENT_RETENTION_COUNT` per workspace.
//! Stops when the shutdown token is cancelled.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::store::Store;
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

/// One pruning pass.
pub async fn prune_once(store: &Arc<dyn Store>, settings: &Settings) {
    let age = chrono::Duration::seconds(
        i64::try_from(settings.event_retention_seconds).unwrap_or(i64::MAX / 2),
    );
    let cutoff = chrono::Utc::now() - age;
    match store
        .prune_events(cutoff, settings.event_retention_count.max(0))
        .await
    {
        Ok(0) => {}
        Ok(n) => {
            metrics::counter!(metric::EVENTS_PRUNED).increment(n);
            tracing::info!(pruned = n, "pruned the event log");
        }
        Err(err) => tracing::warn!(error = ?err, "could not prune the event log"),
    }
}

//! Logs and metrics. Tracing is set up once by the binary; the Prometheus recorder is
//! installed once per process (tests start many apps in one process) and rendered at
//! `/metrics`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, Settings};

/// Metric names, in one place so dashboards and code agree.
pub mod metric {
    /// Counter of HTTP requests by `method`, `route` and `status`.
    pub const HTTP_REQUESTS: &str = "http_requests_total";
    /// Histogram of HTTP request latency in seconds by `method` and `route`.
    pub const HTTP_LATENCY: &str = "http_request_duration_seconds";
    /// Gauge of connected Socket.IO sockets.
    pub const SOCKETS_CONNECTED: &str = "socketio_connected_sockets";
    /// Gauge of open TCP connections (HTTP, long-polling, WebSocket, SSE).
    pub const CONNECTIONS_OPEN: &str = "taskwire_connections_open";
    /// Counter of connections answered 503 because `MAX_CONNECTIONS` were open.
    pub const CONNECTIONS_REFUSED: &str = "taskwire_connections_refused_total";
    /// Counter of times the heap freed by closed connections was returned to the OS.
    pub const HEAP_TRIMS: &str = "taskwire_heap_trims_total";
    /// Counter of task events broadcast to Socket.IO rooms, by `event`.
    pub const EVENTS_EMITTED: &str = "taskwire_events_emitted_total";
    /// Counter of broadcasts that failed for at least one socket, by `event`.
    pub const EMIT_FAILURES: &str = "taskwire_emit_failures_total";
    /// Counter of deliveries a slow consumer could not take, by `transport` (`socket`, `sse`).
    pub const SLOW_CONSUMERS: &str = "taskwire_slow_consumers_total";
    /// Counter of events replayed from the log, by `transport`.
    pub const EVENTS_REPLAYED: &str = "taskwire_events_replayed_total";
    /// Counter of clients told to resync because their position was pruned, by `transport`.
    pub const RESYNCS: &str = "taskwire_resync_required_total";
    /// Gauge of open engine.io sessions by `transport` and `write_path` (`direct`: framed
    /// straight into the connection by the vendored engine.io's flusher; `queue`: a packet
    /// queue and a writer task per session). Rendered per app at scrape time.
    pub const ENGINEIO_SESSIONS: &str = "taskwire_engineio_sessions";
    /// Gauge of the `direct` WebSocket sessions that started on long-polling and moved to
    /// the direct path when their upgrade completed (socket.io-client's default transports).
    /// Rendered per app at scrape time.
    pub const ENGINEIO_UPGRADED_DIRECT: &str = "taskwire_engineio_upgraded_direct_sessions";
    /// Gauge of open SSE streams.
    pub const SSE_STREAMS: &str = "taskwire_sse_streams";
    /// Counter of events pruned from the replay log.
    pub const EVENTS_PRUNED: &str = "taskwire_events_pruned_total";
    /// Counter of news messages published to the other processes.
    pub const CLUSTER_NEWS_SENT: &str = "taskwire_cluster_news_sent_total";
    /// Counter of news messages from other processes.
    pub const CLUSTER_NEWS_RECEIVED: &str = "taskwire_cluster_news_received_total";
    /// Counter of news messages that could not be published (the log covers events).
    pub const CLUSTER_NEWS_DROPPED: &str = "taskwire_cluster_news_dropped_total";
    /// Counter of events a hub read from the log because no news of them arrived in time.
    pub const CLUSTER_CAUGHT_UP: &str = "taskwire_cluster_events_caught_up_total";
    /// Counter of settled notifications (delivered, dead) pruned from the outbox.
    pub const NOTIFICATIONS_PRUNED: &str = "taskwire_notifications_pruned_total";
    /// Counter of events published after the hub stopped (they stay in the log).
    pub const EVENTS_DROPPED: &str = "taskwire_events_dropped_total";
    /// Counter of event-order gaps filled from the log.
    pub const EVENT_GAPS_FILLED: &str = "taskwire_event_gaps_filled_total";
    /// Gauge of outbox rows by `status`.
    pub const NOTIFICATIONS_BACKLOG: &str = "taskwire_notifications";
    /// Histogram of commit-to-delivery time of notifications, by `channel`, in seconds.
    pub const NOTIFICATION_LATENCY: &str = "taskwire_notification_delivery_seconds";
    /// Counter of delivery attempts by `channel` and `outcome`.
    pub const NOTIFICATION_ATTEMPTS: &str = "taskwire_notification_attempts_total";
    /// Counter of failed attempts (retried or dead) by `channel`.
    pub const NOTIFICATION_FAILURES: &str = "taskwire_notification_failures_total";
    /// Jobs submitted, by kind.
    pub const JOBS_SUBMITTED: &str = "taskwire_jobs_submitted_total";
    /// Jobs that reached a final state, by kind and state.
    pub const JOBS_FINISHED: &str = "taskwire_jobs_finished_total";
}

/// Installs the global tracing subscriber: pretty or JSON lines on stderr, filtered by
/// `LOG_LEVEL` (or `RUST_LOG`). Stdout is kept for the one "listening" line.
pub fn init_tracing(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match settings.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    if let Err(err) = result {
        eprintln!("tracing was already set up: {err}");
    }
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(metric::HTTP_LATENCY.to_owned()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            )
            .expect("the bucket list is a non-empty constant");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will be empty");
        }
        handle
    })
}

//! The Redis side of the cluster: one task publishes this process's news (batched into one
//! pipeline per round trip, never on a request's path), one task subscribes to everyone's and
//! hands it to the hub, reconnecting by itself after Redis restarts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::wire::{Body, Envelope, WireEvent};
use crate::domain::error::{Error, Result};
use crate::domain::event::TaskEvent;
use crate::store::open::redact;
use crate::telemetry::metric;

/// News waiting for the publisher; beyond this, news is dropped (the head check covers
/// events, and job and presence updates are ephemeral).
const OUTBOX: usize = 65_536;
/// Most messages sent in one pipeline.
const BATCH: usize = 256;
/// How long one Redis round trip may take before Redis counts as unreachable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait between two attempts to subscribe again.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// What the subscription hands the hub.
#[derive(Debug)]
pub enum Inbound {
    /// Another process's news.
    News(Body),
    /// The subscription is (re)established: news may have been missed, look at the log.
    Resubscribed,
}

/// This process's connection to the others.
pub struct Cluster {
    node: String,
    prefix: String,
    channel: String,
    client: redis::Client,
    conn: ConnectionManager,
    outbound: mpsc::Sender<Vec<u8>>,
    subscribed: AtomicBool,
}

impl Cluster {
    /// Connects to Redis at `url` (refusing to start when it does not answer) and starts the
    /// publisher.
    pub async fn connect(
        url: &str,
        prefix: &str,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Arc<Cluster>> {
        let shown = redact(url);
        let client = redis::Client::open(url).map_err(|e| {
            Error::invalid("REDIS_URL", format!("REDIS_URL {shown} is not usable: {e}"))
        })?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_max_delay(MAX_BACKOFF)
            .set_number_of_retries(2);
        let conn = tokio::time::timeout(
            REDIS_TIMEOUT * 3,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| Error::Unavailable(format!("Redis at {shown} (REDIS_URL) did not answer")))?
        .map_err(|e| {
            Error::Unavailable(format!("cannot reach Redis at {shown} (REDIS_URL): {e}"))
        })?;
        let (outbound, rx) = mpsc::channel(OUTBOX);
        let cluster = Arc::new(Cluster {
            node: format!("taskwire-{}", Uuid::now_v7().simple()),
            prefix: prefix.to_owned(),
            channel: format!("{prefix}:news"),
            client,
            conn,
            outbound,
            subscribed: AtomicBool::new(false),
        });
        tracker.spawn(cluster.clone().publish_loop(rx, shutdown));
        tracing::info!(redis = %shown, node = %cluster.node, "several-process mode: news over Redis");
        Ok(cluster)
    }

    /// This process's name in the cluster.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The prefix of every key and channel (`REDIS_PREFIX`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A connection for commands (it reconnects by itself).
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Announces a committed event to the other processes.
    pub fn publish_event(&self, event: &TaskEvent) {
        self.send(Body::Event(Box::new(WireEvent::from(event))));
    }

    /// Announces a job update to the other processes' sockets.
    pub fn publish_job(&self, workspace: &str, job: &RawValue) {
        self.send(Body::Job {
            workspace: workspace.to_owned(),
            job: job.to_owned(),
        });
    }

    /// Announces who is in a task room now to the other processes' sockets in it.
    pub fn publish_presence(&self, workspace: &str, task: Uuid, users: &RawValue) {
        self.send(Body::Presence {
            workspace: workspace.to_owned(),
            task,
            users: users.to_owned(),
        });
    }

    fn send(&self, body: Body) {
        let envelope = Envelope {
            node: self.node.clone(),
            body,
        };
        let bytes = match serde_json::to_vec(&envelope) {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(error = %err, "could not encode news for other processes");
                return;
            }
        };
        if self.outbound.try_send(bytes).is_err() {
            metrics::counter!(metric::CLUSTER_NEWS_DROPPED).increment(1);
        }
    }

    /// Whether Redis answers now, for `/readyz`.
    pub async fn check(&self) -> std::result::Result<(), String> {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        match tokio::time::timeout(REDIS_TIMEOUT, ping.query_async::<String>(&mut conn)).await {
            Ok(Ok(_)) if self.subscribed.load(Ordering::Relaxed) => Ok(()),
            Ok(Ok(_)) => Err("Redis answers but the news subscription is not back yet".into()),
            Ok(Err(err)) => Err(format!("Redis is not reachable: {err}")),
            Err(_) => Err("Redis did not answer in time".into()),
        }
    }

    async fn publish_loop(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Vec<u8>>,
        shutdown: CancellationToken,
    ) {
        let mut conn = self.conn.clone();
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH) => if n == 0 { return },
                () = shutdown.cancelled() => return,
            }
            let mut pipe = redis::pipe();
            for message in &batch {
                pipe.cmd("PUBLISH").arg(&self.channel).arg(message).ignore();
            }
            match tokio::time::timeout(REDIS_TIMEOUT, pipe.query_async::<()>(&mut conn)).await {
                Ok(Ok(())) => {
                    metrics::counter!(metric::CLUSTER_NEWS_SENT).increment(batch.len() as u64);
                }
                Ok(Err(err)) => self.lost(batch.len(), &err.to_string()),
                Err(_) => self.lost(batch.len(), "timed out"),
            }
            batch.clear();
        }
    }

    fn lost(&self, n: usize, why: &str) {
        metrics::counter!(metric::CLUSTER_NEWS_DROPPED).increment(n as u64);
        tracing::warn!(
            messages = n,
            error = why,
            "could not publish news to other processes; they catch up from the log"
        );
    }

    /// Subscribes to the news until `shutdown`, handing other processes' messages to `inbox`,
    /// and subscribing again whenever the connection is lost.
    pub async fn subscribe(
        self: Arc<Self>,
        inbox: mpsc::UnboundedSender<Inbound>,
        shutdown: CancellationToken,
    ) {
        let mut backoff = Duration::from_millis(50);
        loop {
            let attempt = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let pubsub = tokio::select! {
                r = tokio::time::timeout(REDIS_TIMEOUT, attempt) => r,
                () = shutdown.cancelled() => return,
            };
            match pubsub {
                Ok(Ok(pubsub)) => {
                    backoff = Duration::from_millis(50);
                    self.subscribed.store(true, Ordering::Relaxed);
                    tracing::info!(channel = %self.channel, "subscribed to other processes' news");
                    if inbox.send(Inbound::Resubscribed).is_err() {
                        return;
                    }
                    let mut messages = pubsub.into_on_message();
                    loop {
                        tokio::select! {
                            msg = messages.next() => match msg {
                                Some(msg) => {
                                    if let Some(news) = self.decode(msg.get_payload_bytes())
                                        && inbox.send(news).is_err()
                                    {
                                        return;
                                    }
                                }
                                None => break,
                            },
                            () = shutdown.cancelled() => return,
                        }
                    }
                    self.subscribed.store(false, Ordering::Relaxed);
                    tracing::warn!("lost the Redis subscription; subscribing again");
                }
                Ok(Err(err)) => {
                    tracing::debug!(error = %err, "cannot subscribe to Redis yet");
                }
                Err(_) => tracing::debug!("subscribing to Redis timed out"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Another process's message, or None for our own and for what cannot be read.
    fn decode(&self, bytes: &[u8]) -> Option<Inbound> {
        let envelope: Envelope = match serde_json::from_slice(bytes) {
            Ok(envelope) => envelope,
            Err(err) => {
                tracing::warn!(error = %err, "unreadable news from another process");
                return None;
            }
        };
        if envelope.node == self.node {
            return None;
        }
        metrics::counter!(metric::CLUSTER_NEWS_RECEIVED).increment(1);
        Some(Inbound::News(envelope.body))
    }
}

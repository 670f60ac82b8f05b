//! The dispatcher: wakes on every commit that wrote notifications (and polls slowly as a
//! safety net), claims due rows under a lease, sends each with bounded concurrency and no
//! database transaction open, and records the outcome.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Mailer, Webhook, backoff, email};
use crate::config::Settings;
use crate::domain::error::Result;
use crate::domain::notification::{Attempt, Channel, Notification, Plan, Status};
use crate::domain::task::now;
use crate::store::Store;
use crate::store::outbox::Settlement;
use crate::telemetry::metric;

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The receiver accepted it.
    Delivered {
        /// HTTP status or SMTP reply code.
        status_code: Option<i64>,
    },
    /// Worth trying again.
    Retry {
        /// What went wrong.
        error: String,
        /// HTTP status or SMTP reply code, if any.
        status_code: Option<i64>,
        /// The receiver's `Retry-After`.
        after: Option<Duration>,
    },
    /// Refused for good.
    Dead {
        /// Why.
        error: String,
        /// HTTP status or SMTP reply code, if any.
        status_code: Option<i64>,
    },
}

/// The shortest idle wait, so a row that is due but leased never makes the loop spin.
const MIN_IDLE: Duration = Duration::from_millis(50);
/// How often the backlog gauges are refreshed while idle.
const BACKLOG_EVERY: Duration = Duration::from_secs(1);

/// The notification plan for these settings (which rows each change writes).
pub fn plan(settings: &Settings) -> Plan {
    Plan {
        webhooks: settings.webhook_url.clone(),
        email: settings.smtp_url.is_some(),
    }
}

/// Sends what the outbox holds.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    webhook: Webhook,
    mailer: Option<Mailer>,
    wake: Arc<Notify>,
    concurrency: usize,
    max_attempts: i64,
    backoff: Vec<u64>,
    poll: Duration,
    lease: Duration,
}

impl Dispatcher {
    /// A dispatcher for `settings`; fails on a malformed `WEBHOOK_SECRET`, `WEBHOOK_URL`,
    /// `SMTP_URL`, `SMTP_CA_FILE` or `MAIL_FROM`, so mistakes show at start-up rather than as
    /// dead rows.
    pub fn new(settings: &Settings, store: Arc<dyn Store>, wake: Arc<Notify>) -> Result<Self> {
        for url in &settings.webhook_url {
            let ok = reqwest::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
            if !ok {
                return Err(crate::domain::error::Error::invalid(
                    "webhook_url",
                    format!("WEBHOOK_URL {url:?} is not an http(s) URL"),
                ));
            }
        }
        let secret = settings.webhook_secret.as_ref().map(|s| s.expose());
        if secret.is_none() && !settings.webhook_url.is_empty() {
            tracing::warn!("WEBHOOK_SECRET is not set: webhooks are sent without a signature");
        }
        let webhook = Webhook::new(
            secret,
            Duration::from_secs(settings.webhook_timeout_seconds.max(1)),
        )?;
        let mailer = settings
            .smtp_url
            .as_ref()
            .map(|url| {
                Mailer::new(
                    url.expose(),
                    settings.smtp_ca_file.as_deref(),
                    &settings.mail_from,
                )
            })
            .transpose()?;
        let mut timeout = settings.webhook_timeout_seconds.max(1);
        if mailer.is_some() {
            timeout = timeout.max(email::TIMEOUT.as_secs());
        }
        Ok(Dispatcher {
            store,
            webhook,
            mailer,
            wake,
            concurrency: settings.notify_concurrency.max(1),
            max_attempts: i64::from(settings.notify_max_attempts.max(1)),
            backoff: settings.notify_backoff_seconds.clone(),
            poll: Duration::from_secs(settings.notify_poll_seconds.max(1)),
            // An attempt must be able to finish before its lease runs out.
            lease: Duration::from_secs(settings.notify_lease_seconds.max(timeout + 5)),
        })
    }

    /// Runs until `shutdown`; attempts in flight are left to `tracker` to finish (or to their
    /// lease, if the process dies first).
    pub async fn run(self, shutdown: CancellationToken, tracker: TaskTracker) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.concurrency));
        let mut last_backlog = tokio::time::Instant::now() - BACKLOG_EVERY;
        loop {
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
                () = shutdown.cancelled() => return,
            };
            let mut permits = vec![first];
            while let Ok(p) = slots.clone().try_acquire_owned() {
                permits.push(p);
            }
            let at = now();
            let lease_until = at + chrono::Duration::from_std(this.lease).unwrap_or_default();
            let batch = match this
                .store
                .outbox()
                .claim_due(at, lease_until, permits.len() as i64)
                .await
            {
                Ok(batch) => batch,
                Err(err) => {
                    tracing::warn!(error = %err, "could not read the notification outbox");
                    drop(permits);
                    tokio::select! {
                        () = tokio::time::sleep(this.poll) => continue,
                        () = shutdown.cancelled() => return,
                    }
                }
            };
            let claimed = batch.len();
            for (n, permit) in batch.into_iter().zip(permits.drain(..)) {
                let this = this.clone();
                tracker.spawn(async move {
                    this.attempt(n).await;
                    drop(permit);
                    // A settled attempt may have made the next due time earlier.
                    this.wake.notify_one();
                });
            }
            drop(permits);
            if claimed > 0 {
                continue;
            }
            if last_backlog.elapsed() >= BACKLOG_EVERY {
                last_backlog = tokio::time::Instant::now();
                this.report_backlog().await;
            }
            let idle = this.idle_wait().await;
            tokio::select! {
                () = this.wake.notified() => {}
                () = tokio::time::sleep(idle) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Until the next row is due, but at most the poll interval.
    async fn idle_wait(&self) -> Duration {
        match self.store.outbox().next_due().await {
            Ok(Some(due)) => (due - Utc::now())
                .to_std()
                .unwrap_or_default()
                .clamp(MIN_IDLE, self.poll),
            _ => self.poll,
        }
    }

    async fn report_backlog(&self) {
        if let Ok(counts) = self.store.outbox().backlog().await {
            for status in Status::ALL {
                let n = counts
                    .iter()
                    .find(|(s, _)| *s == status)
                    .map_or(0, |(_, n)| *n);
                metrics::gauge!(metric::NOTIFICATIONS_BACKLOG, "status" => status.as_str())
                    .set(n as f64);
            }
        }
    }

    /// One attempt: send with no transaction open, then record what happened.
    async fn attempt(&self, n: Notification) {
        let started_at = now();
        let outcome = match n.channel {
            Channel::Webhook => self.webhook.send(&n).await,
            Channel::Email => match &self.mailer {
                Some(mailer) => mailer.send(&n).await,
                None => Outcome::Retry {
                    error: "SMTP_URL is not set".into(),
                    status_code: None,
                    after: None,
                },
            },
        };
        let finished_at = now();
        let channel = n.channel.as_str();
        let (status, outcome_name, error, status_code, next) = match outcome {
            Outcome::Delivered { status_code } => (
                Status::Delivered,
                "delivered",
                None,
                status_code,
                finished_at,
            ),
            Outcome::Dead { error, status_code } => {
                (Status::Dead, "dead", Some(error), status_code, finished_at)
            }
            Outcome::Retry {
                error,
                status_code,
                after,
            } => {
                if n.attempts >= self.max_attempts {
                    (Status::Dead, "dead", Some(error), status_code, finished_at)
                } else {
                    let wait =
                        backoff::delay(&self.backoff, n.attempts).max(after.unwrap_or_default());
                    let next = finished_at + chrono::Duration::from_std(wait).unwrap_or_default();
                    (Status::Failed, "retry", Some(error), status_code, next)
                }
            }
        };
        metrics::counter!(metric::NOTIFICATION_ATTEMPTS, "channel" => channel, "outcome" => outcome_name)
            .increment(1);
        match status {
            Status::Delivered => {
                let latency = (finished_at - n.created_at).to_std().unwrap_or_default();
                metrics::histogram!(metric::NOTIFICATION_LATENCY, "channel" => channel)
                    .record(latency.as_secs_f64());
            }
            _ => {
                metrics::counter!(metric::NOTIFICATION_FAILURES, "channel" => channel).increment(1)
            }
        }
        tracing::info!(
            target: "taskwire::notifications",
            id = %n.id,
            channel,
            target = %n.target,
            event_type = %n.event_type,
            task_id = %n.task_id,
            attempt = n.attempts,
            outcome = outcome_name,
            status_code,
            error = error.as_deref().unwrap_or(""),
            "notification attempt"
        );
        let settlement = Settlement {
            id: n.id,
            attempt: Attempt {
                attempt: n.attempts,
                started_at,
                finished_at,
                outcome: outcome_name.to_owned(),
                status_code,
                error,
            },
            status,
            next_attempt_at: next,
        };
        if let Err(err) = self.store.outbox().settle(&settlement).await {
            // The lease runs out and the row is tried again: at least once, never lost.
            tracing::warn!(error = %err, id = %n.id, "could not record a notification attempt");
        }
    }
}

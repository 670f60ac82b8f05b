//! Notifications about task changes: what they are, which ones a change produces (the plan,
//! made inside the change's transaction), and their delivery states. Delivery itself lives in
//! the `notify` module; this one knows nothing of HTTP or SMTP.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::event::{EventKind, TaskEvent, format_at};
use super::task::{Actor, Task, now};

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// An HTTP POST to a `WEBHOOK_URL`.
    Webhook,
    /// An e-mail over `SMTP_URL`.
    Email,
}

impl Channel {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Webhook => "webhook",
            Channel::Email => "email",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "webhook" => Some(Channel::Webhook),
            "email" => Some(Channel::Email),
            _ => None,
        }
    }
}

/// Delivery state of a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = NotificationStatus)]
pub enum Status {
    /// Not attempted yet (or queued again by a manual retry).
    Pending,
    /// The receiver accepted it.
    Delivered,
    /// An attempt failed; another is scheduled.
    Failed,
    /// Given up: the receiver refused it for good or every attempt failed.
    Dead,
}

impl Status {
    /// Every status, for metrics.
    pub const ALL: [Status; 4] = [
        Status::Pending,
        Status::Delivered,
        Status::Failed,
        Status::Dead,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Dead => "dead",
        }
    }

    /// Parses the stored name (and the `status` query parameter).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Status::Pending),
            "delivered" => Some(Status::Delivered),
            "failed" => Some(Status::Failed),
            "dead" => Some(Status::Dead),
            _ => None,
        }
    }
}

/// A notification to write into the outbox with its change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNotification {
    /// Also the webhook's `webhook-id`, stable across retries.
    pub id: Uuid,
    /// Workspace of the change.
    pub workspace: String,
    /// Where it goes.
    pub channel: Channel,
    /// The URL or e-mail address.
    pub target: String,
    /// `task.created`, `task.updated` or `task.deleted`.
    pub event_type: &'static str,
    /// The task it is about.
    pub task_id: Uuid,
    /// What is sent, rendered now so every retry sends the same thing: the webhook body, or
    /// `{"to", "subject", "text"}` for an e-mail.
    pub payload: String,
    /// When the change committed.
    pub created_at: DateTime<Utc>,
}

/// A notification as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Notification {
    /// Its id (the webhook's `webhook-id`).
    pub id: Uuid,
    /// Workspace of the change; implied by the caller's token, never sent.
    #[serde(skip)]
    pub workspace: String,
    /// Where it goes.
    pub channel: Channel,
    /// The URL or e-mail address.
    pub target: String,
    /// `task.created`, `task.updated` or `task.deleted`.
    pub event_type: String,
    /// The task it is about.
    pub task_id: Uuid,
    /// Delivery state.
    pub status: Status,
    /// Attempts started so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the change committed.
    pub created_at: DateTime<Utc>,
    /// When the next attempt is due (meaningless once delivered or dead).
    pub next_attempt_at: DateTime<Utc>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// What is sent; internal.
    #[serde(skip)]
    pub payload: String,
}

/// One delivery attempt, as `GET /api/notifications/{id}` lists them.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// 1, 2, 3, …
    pub attempt: i64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When its outcome was known.
    pub finished_at: DateTime<Utc>,
    /// `delivered`, `retry` or `dead`.
    pub outcome: String,
    /// The HTTP status or SMTP reply code, when there was one.
    pub status_code: Option<i64>,
    /// What went wrong.
    pub error: Option<String>,
}

/// Which notifications each change produces, from the settings.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One webhook per URL.
    pub webhooks: Vec<String>,
    /// Whether e-mail is configured (`SMTP_URL`).
    pub email: bool,
}

impl Plan {
    /// Whether no change produces any outbox row.
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && !self.email
    }

    /// The notifications for a committed change by `actor`. `recipient` is the `user_email` of
    /// `/update_task`, which replaces the task's `assignee_email` as the e-mail recipient.
    pub fn notifications(
        &self,
        event: &TaskEvent,
        actor: &Actor,
        recipient: Option<&str>,
    ) -> Vec<NewNotification> {
        let event_type = webhook_type(event.kind);
        let mut out = Vec::with_capacity(self.webhooks.len() + 1);
        let base = |channel, target: &str, payload: String| NewNotification {
            id: Uuid::now_v7(),
            workspace: event.workspace.clone(),
            channel,
            target: target.to_owned(),
            event_type,
            task_id: event.task.id,
            payload,
            created_at: now(),
        };
        if !self.webhooks.is_empty() {
            let body = json!({
                "type": event_type,
                "timestamp": format_at(event.at),
                "data": {"task": &event.task, "previous": &event.previous},
            })
            .to_string();
            for url in &self.webhooks {
                out.push(base(Channel::Webhook, url, body.clone()));
            }
        }
        if self.email {
            let to = recipient.or(event.task.assignee_email.as_deref());
            if let Some(to) = to.filter(|to| !made_by(actor, to)) {
                let (subject, text) = email_text(event, actor);
                let payload = json!({"to": to, "subject": subject, "text": text}).to_string();
                out.push(base(Channel::Email, to, payload));
            }
        }
        out
    }
}

impl Plan {
    /// One webhook per URL summing up many changes (a job's), instead of one per change.
    /// `subject` (the job's id) fills the `task_id` column.
    pub fn summary(
        &self,
        workspace: &str,
        event_type: &'static str,
        subject: Uuid,
        data: serde_json::Value,
    ) -> Vec<NewNotification> {
        let at = now();
        let body =
            json!({"type": event_type, "timestamp": format_at(at), "data": data}).to_string();
        self.webhooks
            .iter()
            .map(|url| NewNotification {
                id: Uuid::now_v7(),
                workspace: workspace.to_owned(),
                channel: Channel::Webhook,
                target: url.clone(),
                event_type,
                task_id: subject,
                payload: body.clone(),
                created_at: at,
            })
            .collect()
    }
}

/// The webhook `type` of an event kind.
pub fn webhook_type(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Created => "task.created",
        EventKind::Updated => "task.updated",
        EventKind::Deleted => "task.deleted",
    }
}

/// Whether `email` is the person who made the change (they need no e-mail about it).
fn made_by(actor: &Actor, email: &str) -> bool {
    actor
        .email
        .as_deref()
        .is_some_and(|mine| mine.trim().eq_ignore_ascii_case(email.trim()))
}

/// Subject and plain-text body: what changed, on which task, by whom.
fn email_text(event: &TaskEvent, actor: &Actor) -> (String, String) {
    let task = &event.task;
    let who = actor
        .name
        .as_deref()
        .or(actor.user.as_deref())
        .unwrap_or("someone");
    let verb = match event.kind {
        EventKind::Created => "created",
        EventKind::Updated => "updated",
        EventKind::Deleted => "deleted",
    };
    let subject = format!("Task \"{}\" was {verb}", task.title);
    let mut text = format!("{who} {verb} the task \"{}\".\n\n", task.title);
    match (&event.previous, event.kind) {
        (Some(before), EventKind::Updated) => {
            let changes = changes(before, task);
            if changes.is_empty() {
                text.push_str("Nothing visible changed.\n");
            }
            for line in changes {
                text.push_str(&line);
                text.push('\n');
            }
        }
        _ => {
            text.push_str(&format!("Status: {}\n", task.status.as_str()));
            if let Some(a) = &task.assignee {
                text.push_str(&format!("Assignee: {a}\n"));
            }
            if let Some(d) = &task.due_date {
                text.push_str(&format!("Due: {d}\n"));
            }
        }
    }
    text.push_str(&format!(
        "\nTask id: {}\nWhen: {}\n",
        task.id,
        format_at(event.at)
    ));
    (subject, text)
}

fn changes(before: &Task, after: &Task) -> Vec<String> {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    let mut out = Vec::new();
    if before.title != after.title {
        out.push(format!("Title: {} → {}", before.title, after.title));
    }
    if before.status != after.status {
        out.push(format!(
            "Status: {} → {}",
            before.status.as_str(),
            after.status.as_str()
        ));
    }
    if before.description != after.description {
        out.push("Description changed.".to_owned());
    }
    if before.assignee != after.assignee {
        out.push(format!(
            "Assignee: {} → {}",
            show(&before.assignee),
            show(&after.assignee)
        ));
    }
    if before.assignee_email != after.assignee_email {
        out.push(format!(
            "Assignee e-mail: {} → {}",
            show(&before.assignee_email),
            show(&after.assignee_email)
        ));
    }
    if before.due_date != after.due_date {
        out.push(format!(
            "Due: {} → {}",
            show(&before.due_date),
            show(&after.due_date)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::task::{NewTask, TaskStatus};

    fn actor(email: Option<&str>) -> Actor {
        Actor {
            workspace: "acme".into(),
            user: Some("alice".into()),
            name: Some("Alice".into()),
            email: email.map(Into::into),
        }
    }

    fn updated(assignee_email: Option<&str>) -> TaskEvent {
        let before =
            NewTask::from_json(&json!({"title": "Report", "assignee_email": assignee_email}))
                .unwrap()
                .into_task(&actor(None));
        let mut after = before.clone();
        after.status = TaskStatus::Completed;
        after.version = 2;
        TaskEvent {
            workspace: "acme".into(),
            seq: 2,
            kind: EventKind::Updated,
            at: now(),
            task: after,
            previous: Some(before),
        }
    }

    #[test]
    fn one_webhook_per_url_with_the_spec_body() {
        let plan = Plan {
            webhooks: vec!["http://a.test/h".into(), "http://b.test/h".into()],
            email: false,
        };
        let out = plan.notifications(&updated(None), &actor(None), None);
        assert_eq!(out.len(), 2);
        assert_ne!(out[0].id, out[1].id);
        let body: serde_json::Value = serde_json::from_str(&out[0].payload).unwrap();
        assert_eq!(body["type"], "task.updated");
        assert_eq!(body["data"]["task"]["status"], "completed");
        assert_eq!(body["data"]["previous"]["status"], "pending");
        assert!(body["timestamp"].is_string());
    }

    #[test]
    fn e_mail_goes_to_the_assignee_unless_they_made_the_change() {
        let plan = Plan {
            webhooks: vec![],
            email: true,
        };
        let event = updated(Some("bob@x.io"));
        let out = plan.notifications(&event, &actor(Some("alice@x.io")), None);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].target, "bob@x.io");
        let mail: serde_json::Value = serde_json::from_str(&out[0].payload).unwrap();
        assert!(
            mail["text"]
                .as_str()
                .unwrap()
                .contains("pending → completed")
        );
        assert!(mail["text"].as_str().unwrap().contains("Alice"));
        assert!(
            plan.notifications(&event, &actor(Some("BOB@x.io")), None)
                .is_empty(),
            "no e-mail to the person who made the change"
        );
        let to_user = plan.notifications(&event, &actor(None), Some("carol@x.io"));
        assert_eq!(
            to_user[0].target, "carol@x.io",
            "user_email replaces the assignee"
        );
        assert!(
            plan.notifications(&updated(None), &actor(None), None)
                .is_empty()
        );
    }

    #[test]
    fn nothing_configured_means_no_rows() {
        assert!(
            Plan::default()
                .notifications(&updated(Some("bob@x.io")), &actor(None), None)
                .is_empty()
        );
    }
}

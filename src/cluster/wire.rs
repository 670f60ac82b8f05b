//! What travels between processes over Redis, as JSON: committed events (rendered once by the
//! committing process), job updates and presence changes, each stamped with the sending
//! process so it can skip its own.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::domain::event::{EventKind, TaskEvent};
use crate::domain::task::Task;

/// One message on the news channel.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The process that sent it.
    pub node: String,
    /// What it says.
    pub body: Body,
}

/// The kinds of news.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// A committed task change.
    Event(Box<WireEvent>),
    /// A job changed: `job_progress` for the workspace's sockets.
    Job {
        /// The job's workspace.
        workspace: String,
        /// The job JSON as clients see it.
        job: Box<RawValue>,
    },
    /// Who is in a task room now: the `presence` event for that room's sockets.
    Presence {
        /// The task's workspace.
        workspace: String,
        /// The task whose room changed.
        task: Uuid,
        /// The `presence` payload.
        users: Box<RawValue>,
    },
}

/// A [`TaskEvent`] on the wire; the task JSON leaves out the workspace, so it travels beside.
#[derive(Debug, Serialize, Deserialize)]
pub struct WireEvent {
    workspace: String,
    seq: i64,
    kind: EventKind,
    at: DateTime<Utc>,
    task: Task,
    previous: Option<Task>,
}

impl From<&TaskEvent> for WireEvent {
    fn from(e: &TaskEvent) -> Self {
        WireEvent {
            workspace: e.workspace.clone(),
            seq: e.seq,
            kind: e.kind,
            at: e.at,
            task: e.task.clone(),
            previous: e.previous.clone(),
        }
    }
}

impl From<WireEvent> for TaskEvent {
    fn from(w: WireEvent) -> Self {
        let mut task = w.task;
        task.workspace.clone_from(&w.workspace);
        let previous = w.previous.map(|mut p| {
            p.workspace.clone_from(&w.workspace);
            p
        });
        TaskEvent {
            workspace: w.workspace,
            seq: w.seq,
            kind: w.kind,
            at: w.at,
            task,
            previous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_survives_the_wire_with_its_workspace() {
        let at = crate::domain::task::now();
        let task = Task {
            id: Uuid::now_v7(),
            workspace: "acme".into(),
            title: "wire".into(),
            description: String::new(),
            status: crate::domain::task::TaskStatus::Pending,
            assignee: None,
            assignee_email: None,
            due_date: None,
            created_at: at,
            updated_at: at,
            created_by: Some("alice".into()),
            updated_by: None,
            version: 2,
        };
        let event = TaskEvent {
            workspace: "acme".into(),
            seq: 7,
            kind: EventKind::Updated,
            at,
            previous: Some(task.clone()),
            task,
        };
        let text = serde_json::to_string(&Envelope {
            node: "n1".into(),
            body: Body::Event(Box::new(WireEvent::from(&event))),
        })
        .unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.node, "n1");
        match back.body {
            Body::Event(w) => assert_eq!(TaskEvent::from(*w), event),
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn raw_payloads_pass_through_untouched() {
        let text = r#"{"node":"n2","body":{"job":{"workspace":"w","job":{"id":"x","progress":{"done":1}}}}}"#;
        let back: Envelope = serde_json::from_str(text).unwrap();
        match back.body {
            Body::Job { workspace, job } => {
                assert_eq!(workspace, "w");
                assert_eq!(job.get(), r#"{"id":"x","progress":{"done":1}}"#);
            }
            other => panic!("not a job: {other:?}"),
        }
    }
}

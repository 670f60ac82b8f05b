//! An event rendered once for every transport: the Socket.IO events of each configured
//! `EVENT_STYLE` (name + payload), the `{seq, type, at}` second argument for sockets that asked
//! for it, and the SSE `data:` text. Built once per committed event, shared by every receiver,
//! so emitting never re-serialises a payload per socket.

use chrono::SecondsFormat;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::config::EventStyle;
use crate::domain::error::{Error, Result};
use crate::domain::event::{EventKind, TaskEvent};

/// The second Socket.IO argument for clients that opted in with `auth.since`.
#[derive(Debug, Clone, Serialize)]
pub struct EventMeta {
    /// Per-workspace sequence number, the same as the SSE `id:`.
    pub seq: i64,
    /// `task_created`, `task_updated` or `task_deleted`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Commit time, RFC 3339 UTC.
    pub at: String,
}

/// One event, pre-serialised for all transports.
#[derive(Debug)]
pub struct Frame {
    /// Workspace of the event.
    pub workspace: String,
    /// Sequence number within the workspace.
    pub seq: i64,
    /// What happened.
    pub kind: EventKind,
    /// The Socket.IO events to emit, one per configured style, in `EVENT_STYLE` order.
    pub socket_events: Vec<SocketEvent>,
    /// The opt-in second argument.
    pub meta: EventMeta,
    /// SSE `data:` text: `{"type": …, "task": …}`.
    pub sse_data: String,
}

/// One Socket.IO event of a frame: its name and its first argument, serialised.
#[derive(Debug)]
pub struct SocketEvent {
    /// `task_updated`, `task-updated`, `task_update`, …
    pub name: &'static str,
    /// The first argument.
    pub payload: Box<RawValue>,
}

#[derive(Serialize)]
struct SseData<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    task: &'a RawValue,
}

impl Frame {
    /// Renders an event for the given Socket.IO event styles.
    pub fn render(event: &TaskEvent, styles: &[EventStyle]) -> Result<Frame> {
        let task = serde_json::value::to_raw_value(&event.task).map_err(Error::internal)?;
        let kind = event.kind.as_str();
        let sse_data =
            serde_json::to_string(&SseData { kind, task: &task }).map_err(Error::internal)?;
        let mut socket_events = Vec::with_capacity(styles.len());
        for style in styles {
            let (name, payload) = match style {
                EventStyle::Default => (kind, task.clone()),
                EventStyle::Flask => ("task_update", task.clone()),
                EventStyle::Node => (node_name(event.kind), node_payload(event)?),
            };
            if !socket_events.iter().any(|e: &SocketEvent| e.name == name) {
                socket_events.push(SocketEvent { name, payload });
            }
        }
        Ok(Frame {
            workspace: event.workspace.clone(),
            seq: event.seq,
            kind: event.kind,
            meta: EventMeta {
                seq: event.seq,
                kind,
                at: event.at.to_rfc3339_opts(SecondsFormat::Millis, true),
            },
            socket_events,
            sse_data,
        })
    }
}

/// Event names of Node socket.io task backends.
fn node_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Created => "task-created",
        EventKind::Updated => "task-updated",
        EventKind::Deleted => "task-deleted",
    }
}

/// The payload Node socket.io task backends send: every task field in camelCase, plus
/// `taskId`, `previousStatus` (the status before this change, null on create) and `timestamp`.
fn node_payload(event: &TaskEvent) -> Result<Box<RawValue>> {
    let Value::Object(fields) = serde_json::to_value(&event.task).map_err(Error::internal)? else {
        return Err(Error::Internal(
            "a task always serialises to a JSON object".into(),
        ));
    };
    let mut out = Map::with_capacity(fields.len() + 3);
    out.insert("taskId".into(), Value::String(event.task.id.to_string()));
    for (key, value) in fields {
        out.insert(camel_case(&key), value);
    }
    out.insert(
        "previousStatus".into(),
        event
            .previous
            .as_ref()
            .map(|p| Value::String(p.status.as_str().to_owned()))
            .unwrap_or(Value::Null),
    );
    out.insert("timestamp".into(), Value::String(format_at(event.at)));
    serde_json::value::to_raw_value(&out).map_err(Error::internal)
}

fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Payload of the `resync_required` event (Socket.IO and SSE): the log no longer holds what
/// the client missed, so it should refetch the task list.
#[derive(Debug, Clone, Serialize)]
pub struct ResyncRequired {
    /// Always `resync_required`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The position the client asked to resume from.
    pub since: i64,
    /// The latest sequence number; resume from here after refetching.
    pub latest: i64,
}

impl ResyncRequired {
    /// The payload for a client that asked for `since` when the log is at `latest`.
    pub fn new(since: i64, latest: i64) -> Self {
        ResyncRequired {
            kind: "resync_required",
            since,
            latest,
        }
    }
}

pub use crate::domain::event::format_at;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::task::{Actor, NewTask, TaskStatus};

    fn event(kind: EventKind) -> TaskEvent {
        let task =
            NewTask::from_json(&serde_json::json!({"title": "A", "assignee_email": "a@x.io"}))
                .unwrap()
                .into_task(&Actor::anonymous());
        let mut previous = task.clone();
        previous.status = TaskStatus::Pending;
        let mut task = task;
        task.status = TaskStatus::Completed;
        TaskEvent {
            workspace: "default".into(),
            seq: 7,
            kind,
            at: crate::domain::task::now(),
            task,
            previous: Some(previous),
        }
    }

    #[test]
    fn each_style_gets_its_own_name_and_payload() {
        let styles = [EventStyle::Default, EventStyle::Node, EventStyle::Flask];
        let frame = Frame::render(&event(EventKind::Updated), &styles).unwrap();
        let names: Vec<_> = frame.socket_events.iter().map(|e| e.name).collect();
        assert_eq!(names, ["task_updated", "task-updated", "task_update"]);
        let node: Value = serde_json::from_str(frame.socket_events[1].payload.get()).unwrap();
        assert_eq!(node["taskId"], node["id"]);
        assert_eq!(node["status"], "completed");
        assert_eq!(node["previousStatus"], "pending");
        assert_eq!(node["assigneeEmail"], "a@x.io");
        assert!(node["updatedAt"].is_string() && node["timestamp"].is_string());
        assert!(node.get("assignee_email").is_none());
        let flask: Value = serde_json::from_str(frame.socket_events[2].payload.get()).unwrap();
        assert_eq!(flask["assignee_email"], "a@x.io");
    }

    #[test]
    fn a_style_listed_twice_is_emitted_once() {
        let frame = Frame::render(
            &event(EventKind::Created),
            &[EventStyle::Default, EventStyle::Default],
        )
        .unwrap();
        assert_eq!(frame.socket_events.len(), 1);
    }
}

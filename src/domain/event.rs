//! Committed task changes as events: what the event log stores, what Socket.IO and SSE
//! deliver, and what notifications are made from.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::task::Task;

/// What happened to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A task was created.
    #[serde(rename = "task_created")]
    Created,
    /// A task changed.
    #[serde(rename = "task_updated")]
    Updated,
    /// A task was deleted.
    #[serde(rename = "task_deleted")]
    Deleted,
}

impl EventKind {
    /// The Socket.IO event name and the SSE `type` (`task_created`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "task_created",
            EventKind::Updated => "task_updated",
            EventKind::Deleted => "task_deleted",
        }
    }

    /// Parses the stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "task_created" => Some(EventKind::Created),
            "task_updated" => Some(EventKind::Updated),
            "task_deleted" => Some(EventKind::Deleted),
            _ => None,
        }
    }
}

/// One committed change, numbered within its workspace.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEvent {
    /// Workspace the change belongs to; events never cross workspaces.
    pub workspace: String,
    /// 1, 2, 3, … per workspace, no gaps, in commit order.
    pub seq: i64,
    /// What happened.
    pub kind: EventKind,
    /// When it was committed.
    pub at: DateTime<Utc>,
    /// The task after the change (for a delete: as it was).
    pub task: Task,
    /// The task before the change, for updates and deletes.
    pub previous: Option<Task>,
}

/// Commit times are shown with millisecond precision, in UTC.
pub fn format_at(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

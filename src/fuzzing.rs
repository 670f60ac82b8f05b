//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz, see docs/testing.md): the
//! parsers of untrusted bytes that are private to their transport, reachable here without a
//! server, a socket or a database. Each function calls the code the transport calls and stops
//! where the store would be touched; nothing here is a second implementation of a rule.
//!
//! Not a supported API: hidden from the docs and free to change with any release. The parsers
//! that are public already (`TaskPatch::from_json`, `TaskQuery::from_pairs`, `query_pairs`,
//! `auth::bearer`, `Authenticator`, `jobs::kinds::records`) are used by the targets directly.

use axum::extract::Request;
use http::HeaderMap;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::error::Result;
use crate::domain::task::{NewTask, TaskPatch};
use crate::jobs::JobRequest;
use crate::realtime::socket::{
    RoomCommand, TaskCommand, TaskRequest, since_of, sync_position, task_id_of, task_request,
};

/// The options of a task stream request (`GET /api/tasks/stream`): whether events are named,
/// and the `Last-Event-ID` (header, else `?lastEventId=`) to resume after.
pub fn sse_stream_options(headers: &HeaderMap, query: Option<&str>) -> Result<(bool, Option<i64>)> {
    let options = crate::http::stream_options(headers, query)?;
    Ok((options.named, options.last_event_id))
}

/// The position in a socket's `{"since": n}` (the handshake `auth` and `sync`); `None` when
/// absent.
pub fn socket_since(payload: &Value) -> Result<Option<i64>> {
    since_of(payload)
}

/// A socket event as the server reads it before acting on it.
#[derive(Debug)]
pub enum SocketCommand {
    /// `sync`: replay after this position.
    Sync(i64),
    /// `create_task`: the validated new task.
    Create(NewTask),
    /// `update_task`: the task named and the validated change.
    Update(Uuid, TaskPatch),
    /// `delete_task`: the task named.
    Delete(Uuid),
    /// `join-task` / `leave-task` (either spelling): the task named.
    Room(Uuid),
    /// Any other event, which the server ignores.
    Ignored,
}

/// Reads socket event `event` with `payload` the way the connection's handler does (the
/// command's payload, then the body the service validates first), without running it.
pub fn socket_command(event: &str, payload: &Value) -> Result<SocketCommand> {
    if event == "sync" {
        return sync_position(Some(payload)).map(SocketCommand::Sync);
    }
    if let Some(command) = TaskCommand::from_event(event) {
        return Ok(match task_request(command, payload)? {
            TaskRequest::Create(body) => SocketCommand::Create(NewTask::from_json(body)?),
            TaskRequest::Update(id, body) => SocketCommand::Update(id, TaskPatch::from_json(body)?),
            TaskRequest::Delete(id) => SocketCommand::Delete(id),
        });
    }
    if RoomCommand::from_event(event).is_some() {
        return task_id_of(payload).map(SocketCommand::Room);
    }
    Ok(SocketCommand::Ignored)
}

/// Reads a `POST /api/jobs` request (JSON, multipart or a raw file) into the job kind and
/// its request, as the route does before the job manager sees it. The route's body limit is
/// not applied here.
pub async fn job_submission(req: Request) -> Result<(String, JobRequest)> {
    let submission = crate::http::read_submission(req, &(), usize::MAX).await?;
    Ok((submission.kind, submission.request))
}

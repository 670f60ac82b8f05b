//! Task rooms and presence: `join-task` / `join_task` and `leave-task` / `leave_task` (a task
//! id, or `{taskId}` / `{id}`), each with an ack, and a `presence` event to the task room
//! whenever its set of users changes. Task events reach every socket of the workspace already,
//! so a socket in a task room still gets each event once.

use serde_json::Value;
use socketioxide::extract::SocketRef;
use uuid::Uuid;

use super::super::hub::task_room;
use super::super::presence::{Presence, RoomUsers};
use super::{Connection, readable};
use crate::domain::error::{Error, Result};
use crate::domain::service::parse_task_id;
use crate::domain::task::type_name;

/// The room commands a socket can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomCommand {
    /// `join-task` / `join_task`.
    Join,
    /// `leave-task` / `leave_task`.
    Leave,
}

impl RoomCommand {
    /// The command an event name stands for, if any.
    pub fn from_event(event: &str) -> Option<Self> {
        match event {
            "join-task" | "join_task" => Some(RoomCommand::Join),
            "leave-task" | "leave_task" => Some(RoomCommand::Leave),
            _ => None,
        }
    }
}

/// Runs a room command and answers with who is in the room now.
pub async fn run(
    command: RoomCommand,
    socket: SocketRef,
    conn: &Connection,
    payload: std::result::Result<Value, String>,
) -> Result<RoomUsers> {
    let payload = readable(payload, "taskId")?;
    let id = task_id_of(&payload)?;
    match command {
        RoomCommand::Join => join(socket, conn, id).await,
        RoomCommand::Leave => leave(socket, conn, id).await,
    }
}

async fn join(socket: SocketRef, conn: &Connection, id: Uuid) -> Result<RoomUsers> {
    // Only tasks of the socket's own workspace; any other id is simply not found.
    let task = conn.ctx.service.get(&conn.actor, id).await?;
    let ws = &conn.actor.workspace;
    socket.join(task_room(ws, task.id));
    let changed = conn.ctx.presence.join(socket.id.as_str(), task.id);
    if changed {
        conn.ctx.presence.settle(ws).await;
    }
    let users = conn.ctx.presence.room(ws, task.id).await;
    if changed {
        announce(&socket, &conn.ctx.presence, ws, &users).await;
    }
    Ok(users)
}

async fn leave(socket: SocketRef, conn: &Connection, id: Uuid) -> Result<RoomUsers> {
    let ws = &conn.actor.workspace;
    socket.leave(task_room(ws, id));
    let changed = conn.ctx.presence.leave(socket.id.as_str(), id);
    if changed {
        conn.ctx.presence.settle(ws).await;
    }
    let users = conn.ctx.presence.room(ws, id).await;
    if changed {
        announce(&socket, &conn.ctx.presence, ws, &users).await;
    }
    Ok(users)
}

/// Tells a task room who is in it now, on every process.
pub async fn announce(socket: &SocketRef, presence: &Presence, workspace: &str, users: &RoomUsers) {
    presence.broadcast(workspace, users);
    if let Err(err) = socket
        .within(task_room(workspace, users.task_id))
        .emit(super::super::presence::PRESENCE_EVENT, users)
        .await
    {
        tracing::debug!(error = %err, "some sockets did not get a presence update");
    }
}

/// The task id of a room command: a string, or an object with `taskId`, `task_id` or `id`.
pub(crate) fn task_id_of(payload: &Value) -> Result<Uuid> {
    let raw = match payload {
        Value::String(raw) => Some(raw.as_str()),
        Value::Object(obj) => ["taskId", "task_id", "id"]
            .iter()
            .find_map(|k| obj.get(*k))
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    Error::invalid(
                        "taskId",
                        format!("the task id must be a string, got {}", type_name(v)),
                    )
                })
            })
            .transpose()?,
        _ => None,
    };
    let raw = raw.ok_or_else(|| {
        Error::invalid(
            "taskId",
            format!(
                "expected a task id or {{\"taskId\": …}}, got {}",
                type_name(payload)
            ),
        )
    })?;
    parse_task_id(raw)
}

//! Task rooms and presence: `join-task` / `join_task` and `leave-task` / `leave_task` (a task
//! id, or `{taskId}` / `{id}`), each with an ack, and a `presence` event to the task room
//! whenever its set of users changes. Task events reach every socket of the workspace already,
//! so a socket in a task room still gets each event once.

use serde_json::Value;
use socketioxide::extract::SocketRef;
use uuid::Uuid;

use super::super::hub::task_room;
use super::super::presence::RoomUsers;
use super::{Connection, on_command};
use crate::domain::error::{Error, Result};
use crate::domain::service::parse_task_id;
use crate::domain::task::type_name;

/// Registers the room commands on `socket`.
pub fn register(socket: &SocketRef, conn: &Connection) {
    for event in ["join-task", "join_task"] {
        room_command(socket, conn, event, join);
    }
    for event in ["leave-task", "leave_task"] {
        room_command(socket, conn, event, leave);
    }
}

fn room_command<F, Fut>(socket: &SocketRef, conn: &Connection, event: &'static str, run: F)
where
    F: Fn(SocketRef, Connection, Uuid) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<RoomUsers>> + Send + 'static,
{
    on_command(socket, conn, event, move |socket, conn, payload| {
        let run = run.clone();
        async move {
            let payload = payload
                .map_err(|err| Error::invalid("taskId", format!("unreadable payload: {err}")))?;
            run(socket, conn, task_id_of(&payload)?).await
        }
    });
}

async fn join(socket: SocketRef, conn: Connection, id: Uuid) -> Result<RoomUsers> {
    // Only tasks of the socket's own workspace; any other id is simply not found.
    let task = conn.ctx.service.get(&conn.actor, id).await?;
    let ws = &conn.actor.workspace;
    socket.join(task_room(ws, task.id));
    let changed = conn.ctx.presence.join(socket.id.as_str(), task.id);
    let users = conn.ctx.presence.room(ws, task.id);
    if changed {
        announce(&socket, ws, &users).await;
    }
    Ok(users)
}

async fn leave(socket: SocketRef, conn: Connection, id: Uuid) -> Result<RoomUsers> {
    let ws = &conn.actor.workspace;
    socket.leave(task_room(ws, id));
    let changed = conn.ctx.presence.leave(socket.id.as_str(), id);
    let users = conn.ctx.presence.room(ws, id);
    if changed {
        announce(&socket, ws, &users).await;
    }
    Ok(users)
}

/// Tells a task room who is in it now.
pub async fn announce(socket: &SocketRef, workspace: &str, users: &RoomUsers) {
    if let Err(err) = socket
        .within(task_room(workspace, users.task_id))
        .emit("presence", users)
        .await
    {
        tracing::debug!(error = %err, "some sockets did not get a presence update");
    }
}

/// The task id of a room command: a string, or an object with `taskId`, `task_id` or `id`.
fn task_id_of(payload: &Value) -> Result<Uuid> {
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

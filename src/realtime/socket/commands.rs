//! Task commands over the socket: `create_task`, `update_task`, `delete_task`. They call the
//! same [`TaskService`] as REST, so validation and error codes are the same.

use serde::Serialize;
use serde_json::Value;

use super::{Connection, readable};
use crate::domain::error::{Error, Result};
use crate::domain::service::parse_task_id;
use crate::domain::task::{Task, type_name};

/// The ack of a task command.
#[derive(Debug, Serialize)]
pub struct TaskBody {
    task: Task,
}

/// The task commands a socket can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskCommand {
    /// `create_task`: the payload is the new task.
    Create,
    /// `update_task`: the payload has the `id` and the fields to change.
    Update,
    /// `delete_task`: the payload is the id, or an object with `id`.
    Delete,
}

impl TaskCommand {
    /// The command an event name stands for, if any.
    pub fn from_event(event: &str) -> Option<Self> {
        match event {
            "create_task" => Some(TaskCommand::Create),
            "update_task" => Some(TaskCommand::Update),
            "delete_task" => Some(TaskCommand::Delete),
            _ => None,
        }
    }
}

/// What a task command asks for, read from its payload before anything is done. The body of
/// a create or update is validated by the service, exactly as for REST.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Request<'a> {
    /// Create a task from this body.
    Create(&'a Value),
    /// Apply this body to the task with this id.
    Update(uuid::Uuid, &'a Value),
    /// Delete the task with this id.
    Delete(uuid::Uuid),
}

/// Reads a command's payload: which task it names, and the body to hand to the service.
pub(crate) fn request(command: TaskCommand, payload: &Value) -> Result<Request<'_>> {
    Ok(match command {
        TaskCommand::Create => Request::Create(payload),
        TaskCommand::Update => Request::Update(id_field(payload)?, payload),
        TaskCommand::Delete => Request::Delete(match payload {
            Value::String(raw) => parse_task_id(raw)?,
            other => id_field(other)?,
        }),
    })
}

/// Runs a task command for the connection and answers with the task.
pub async fn run(
    command: TaskCommand,
    conn: &Connection,
    payload: std::result::Result<Value, String>,
) -> Result<TaskBody> {
    let payload = readable(payload, "payload")?;
    let (svc, actor) = (&conn.ctx.service, &conn.actor);
    let task = match request(command, &payload)? {
        Request::Create(body) => svc.create(actor, body).await?,
        Request::Update(id, body) => svc.update(actor, id, body, None).await?,
        Request::Delete(id) => svc.delete(actor, id, None).await?,
    };
    Ok(TaskBody { task })
}

fn id_field(payload: &Value) -> Result<uuid::Uuid> {
    let obj = payload.as_object().ok_or_else(|| {
        Error::invalid(
            "payload",
            format!("expected an object with `id`, got {}", type_name(payload)),
        )
    })?;
    match obj.get("id") {
        Some(Value::String(raw)) => parse_task_id(raw),
        Some(other) => Err(Error::invalid(
            "id",
            format!("field `id` must be a string, got {}", type_name(other)),
        )),
        None => Err(Error::invalid("id", "field `id` is required")),
    }
}

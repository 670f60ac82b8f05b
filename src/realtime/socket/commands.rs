//! Task commands over the socket: `create_task`, `update_task`, `delete_task`. They call the
//! same [`TaskService`] as REST, so validation and error codes are the same.

use serde::Serialize;
use serde_json::Value;
use socketioxide::extract::SocketRef;

use super::{Connection, on_command};
use crate::domain::error::{Error, Result};
use crate::domain::service::{TaskService, parse_task_id};
use crate::domain::task::{Actor, Task, type_name};

#[derive(Debug, Serialize)]
struct TaskBody {
    task: Task,
}

/// Registers the task commands on `socket`.
pub fn register(socket: &SocketRef, conn: &Connection) {
    command(
        socket,
        conn,
        "create_task",
        |svc, actor, payload| async move { svc.create(&actor, &payload).await },
    );
    command(
        socket,
        conn,
        "update_task",
        |svc, actor, payload| async move {
            let id = id_field(&payload)?;
            svc.update(&actor, id, &payload, None).await
        },
    );
    command(
        socket,
        conn,
        "delete_task",
        |svc, actor, payload| async move {
            let id = match &payload {
                Value::String(raw) => parse_task_id(raw)?,
                other => id_field(other)?,
            };
            svc.delete(&actor, id, None).await
        },
    );
}

/// Registers a task command whose handler gets the payload and answers with a task.
fn command<F, Fut>(socket: &SocketRef, conn: &Connection, event: &'static str, run: F)
where
    F: Fn(TaskService, Actor, Value) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Task>> + Send + 'static,
{
    on_command(socket, conn, event, move |_, conn, payload| {
        let run = run.clone();
        async move {
            let payload = payload
                .map_err(|err| Error::invalid("payload", format!("unreadable payload: {err}")))?;
            let task = run(conn.ctx.service.clone(), conn.actor.clone(), payload).await?;
            Ok(TaskBody { task })
        }
    });
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

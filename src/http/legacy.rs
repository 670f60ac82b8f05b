//! `POST /update_task`, kept for seed-era clients: `{"task_id", "user_email", …fields}`
//! updates the task like `PATCH /api/tasks/{id}` and answers with the task.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;

use super::AppState;
use super::caller::Writer;
use super::extract::JsonBody;
use crate::domain::error::{Error, Result};
use crate::domain::service::parse_task_id;
use crate::domain::task::{Task, parse_email};

/// The legacy route.
pub fn router() -> Router<AppState> {
    Router::new().route("/update_task", post(update_task))
}

async fn update_task(
    State(state): State<AppState>,
    Writer(actor): Writer,
    JsonBody(body): JsonBody,
) -> Result<Json<Task>> {
    let Value::Object(mut fields) = body else {
        return Err(Error::invalid("body", "expected a JSON object"));
    };
    let id = match fields.remove("task_id") {
        Some(Value::String(id)) => parse_task_id(&id)?,
        Some(Value::Number(n)) => parse_task_id(&n.to_string())?,
        Some(other) => {
            return Err(Error::invalid(
                "task_id",
                format!("field `task_id` must be a task id string, got {other}"),
            ));
        }
        None => return Err(Error::invalid("task_id", "field `task_id` is required")),
    };
    // Validated before anything is written, so a bad address is a 422 and changes nothing.
    let recipient = match fields.remove("user_email") {
        None | Some(Value::Null) => None,
        Some(value) => parse_email(&value, "user_email")?,
    };
    let task = state
        .service
        .update_notifying(
            &actor,
            id,
            &Value::Object(fields),
            None,
            recipient.as_deref(),
        )
        .await?;
    Ok(Json(task))
}

//! `POST /update_task`, kept for seed-era clients: `{"task_id", "user_email", …fields}`
//! updates the task like `PATCH /api/tasks/{id}` and answers with the task.

use axum::Json;
use axum::extract::State;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::caller::Writer;
use super::extract::JsonBody;
use super::openapi::errors::{
    BadJson, Invalid, NotFound, NotJson, RateLimited, Timeout, TooLarge, Unauthorized, Unavailable,
};
use super::openapi::schemas::LegacyUpdateBody;
use crate::domain::error::{Error, Result};
use crate::domain::service::parse_task_id;
use crate::domain::task::{Task, parse_email};

/// The legacy route, with its description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(update_task))
}

/// The seed-era update: `PATCH /api/tasks/{task_id}` with the id in the body, notifying
/// `user_email`.
#[utoipa::path(
    post,
    path = "/update_task",
    operation_id = "update_task_legacy",
    tag = "tasks",
    request_body(content = LegacyUpdateBody, content_type = "application/json"),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "The updated task.", body = Task),
        BadJson, Unauthorized, NotFound, Timeout, TooLarge, NotJson, Invalid, RateLimited,
        Unavailable,
    )
)]
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

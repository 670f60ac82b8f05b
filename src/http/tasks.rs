//! `/api/tasks`: list, create, read, partial update (PUT and PATCH) and delete, with ETags.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::caller::{Caller, Writer};
use super::extract::{IfMatch, JsonBody, etag};
use super::openapi::errors::{
    BadJson, Invalid, NotFound, NotJson, PreconditionFailed, RateLimited, Timeout, TooLarge,
    Unauthorized, Unavailable,
};
use super::openapi::schemas::{NewTaskBody, TaskPatchBody};
use crate::domain::error::{Error, Result};
use crate::domain::query::TaskQuery;
use crate::domain::service::parse_task_id;
use crate::domain::task::{Task, TaskPatch};

/// Routes of the task resource, each with its description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, replace, update, remove))
}

fn with_etag(status: StatusCode, task: Task, extra: HeaderMap) -> Response {
    let mut response = (status, extra, Json(&task)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag(task.version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// The answer to an `If-Match` that can match no version: 404 when the task does not exist
/// (a precondition is only judged on an existing task), otherwise the 412 with the version the
/// task is at.
async fn with_current_version(
    state: &AppState,
    actor: &crate::domain::task::Actor,
    id: uuid::Uuid,
    unmatchable: Error,
) -> Error {
    match (state.service.get(actor, id).await, unmatchable) {
        (Err(err), _) => err,
        (Ok(task), Error::PreconditionFailed { message, .. }) => Error::PreconditionFailed {
            message,
            current: Some(task.version),
        },
        (Ok(_), other) => other,
    }
}

/// Query-string pairs; an undecodable query string is a 422 on `query`.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| Error::invalid("query", format!("malformed query string: {e}")))
}

/// Lists the caller's tasks: filtered, searched, sorted and paged.
#[utoipa::path(
    get,
    path = "/api/tasks",
    operation_id = "list_tasks",
    tag = "tasks",
    params(
        ("status" = Option<String>, Query, description = "Only tasks with this status (parsed leniently, like the field)."),
        ("assignee" = Option<String>, Query, description = "Only tasks whose assignee equals this exactly."),
        ("q" = Option<String>, Query, description = "Case-insensitive substring of title or description."),
        ("limit" = Option<i64>, Query, minimum = 0, description = "Page size: default 100; above 1000 is clamped to 1000."),
        ("offset" = Option<i64>, Query, minimum = 0, description = "Matches to skip (default 0)."),
        ("sort" = Option<String>, Query, description = "Comma-separated fields among `created_at`, `updated_at`, `title`, `status`, `due_date`, `version`; prefix `-` for descending. Default `created_at`.", example = "-updated_at,title"),
    ),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "The page of tasks.", body = Vec<Task>,
            headers(("X-Total-Count" = u64, description = "Matches before paging."))),
        Unauthorized, Timeout, Invalid, Unavailable,
    )
)]
async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let pairs = query_pairs(raw.as_deref())?;
    let query = TaskQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
    let page = state.service.list(&actor, &query).await?;
    let mut headers = HeaderMap::new();
    headers.insert("x-total-count", HeaderValue::from(page.total));
    Ok((headers, Json(page.tasks)).into_response())
}

/// Creates a task.
#[utoipa::path(
    post,
    path = "/api/tasks",
    operation_id = "create_task",
    tag = "tasks",
    request_body(content = NewTaskBody, content_type = "application/json"),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 201, description = "Created.", body = Task,
            headers(
                ("Location" = String, description = "`/api/tasks/{id}`"),
                ("ETag" = String, description = "The version, `\"1\"`."),
            ),
            links(
                ("GetTask" = (operation_id = "get_task", parameters(("id" = "$response.body#/id")))),
                ("UpdateTask" = (operation_id = "update_task", parameters(("id" = "$response.body#/id"), ("If-Match" = "$response.header.ETag")))),
                ("ReplaceTask" = (operation_id = "replace_task", parameters(("id" = "$response.body#/id")))),
                ("DeleteTask" = (operation_id = "delete_task", parameters(("id" = "$response.body#/id")))),
                ("TaskRoomUsers" = (operation_id = "task_room_users", parameters(("task_id" = "$response.body#/id")))),
            )),
        BadJson, Unauthorized, Timeout, TooLarge, NotJson, Invalid, RateLimited, Unavailable,
    )
)]
async fn create(
    State(state): State<AppState>,
    Writer(actor): Writer,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let task = state.service.create(&actor, &body).await?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/tasks/{}", task.id)) {
        headers.insert(header::LOCATION, location);
    }
    Ok(with_etag(StatusCode::CREATED, task, headers))
}

/// Reads one task.
#[utoipa::path(
    get,
    path = "/api/tasks/{id}",
    operation_id = "get_task",
    tag = "tasks",
    params(("id" = Uuid, Path, description = "The task's id.")),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "The task.", body = Task,
            headers(("ETag" = String, description = "The version, for `If-Match`."))),
        Unauthorized, NotFound, Timeout, Unavailable,
    )
)]
async fn read(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let task = state.service.get(&actor, parse_task_id(&id)?).await?;
    Ok(with_etag(StatusCode::OK, task, HeaderMap::new()))
}

/// `PUT /api/tasks/{id}`: the same partial update as `PATCH`.
#[utoipa::path(
    put,
    path = "/api/tasks/{id}",
    operation_id = "replace_task",
    tag = "tasks",
    description = "A partial update, exactly like `PATCH`: fields left out keep their values.",
    params(
        ("id" = Uuid, Path, description = "The task's id."),
        ("If-Match" = Option<String>, Header, description = "`\"3\"`, `W/\"3\"` or `3` (version 3), or `*`. A stale or unparsable value is 412 and nothing changes."),
    ),
    request_body(content = TaskPatchBody, content_type = "application/json"),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "The updated task.", body = Task,
            headers(("ETag" = String, description = "The new version."))),
        BadJson, Unauthorized, NotFound, Timeout, PreconditionFailed, TooLarge, NotJson, Invalid,
        RateLimited, Unavailable,
    )
)]
async fn replace(
    state: State<AppState>,
    writer: Writer,
    id: Path<String>,
    if_match: IfMatch,
    body: JsonBody,
) -> Result<Response> {
    update(state, writer, id, if_match, body).await
}

/// Partially updates a task: fields left out keep their values, `null` clears.
#[utoipa::path(
    patch,
    path = "/api/tasks/{id}",
    operation_id = "update_task",
    tag = "tasks",
    params(
        ("id" = Uuid, Path, description = "The task's id."),
        ("If-Match" = Option<String>, Header, description = "`\"3\"`, `W/\"3\"` or `3` (version 3), or `*`. A stale or unparsable value is 412 and nothing changes."),
    ),
    request_body(content = TaskPatchBody, content_type = "application/json"),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "The updated task.", body = Task,
            headers(("ETag" = String, description = "The new version."))),
        BadJson, Unauthorized, NotFound, Timeout, PreconditionFailed, TooLarge, NotJson, Invalid,
        RateLimited, Unavailable,
    )
)]
async fn update(
    State(state): State<AppState>,
    Writer(actor): Writer,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let id = parse_task_id(&id)?;
    let expected = match expected {
        Ok(expected) => expected,
        Err(unmatchable) => {
            // The body is judged before the precondition, as it is for a version that is stale.
            TaskPatch::from_json(&body)?;
            return Err(with_current_version(&state, &actor, id, unmatchable).await);
        }
    };
    let task = state.service.update(&actor, id, &body, expected).await?;
    Ok(with_etag(StatusCode::OK, task, HeaderMap::new()))
}

/// Deletes a task.
#[utoipa::path(
    delete,
    path = "/api/tasks/{id}",
    operation_id = "delete_task",
    tag = "tasks",
    params(
        ("id" = Uuid, Path, description = "The task's id."),
        ("If-Match" = Option<String>, Header, description = "Delete only at this version (`\"3\"`, `W/\"3\"`, `3`) or `*`."),
    ),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 204, description = "Deleted."),
        Unauthorized, NotFound, Timeout, PreconditionFailed, RateLimited, Unavailable,
    )
)]
async fn remove(
    State(state): State<AppState>,
    Writer(actor): Writer,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<StatusCode> {
    let id = parse_task_id(&id)?;
    let expected = match expected {
        Ok(expected) => expected,
        Err(unmatchable) => return Err(with_current_version(&state, &actor, id, unmatchable).await),
    };
    state.service.delete(&actor, id, expected).await?;
    Ok(StatusCode::NO_CONTENT)
}

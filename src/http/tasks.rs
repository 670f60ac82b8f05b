//! `/api/tasks`: list, create, read, partial update (PUT and PATCH) and delete, with ETags.

use axum::Json;
use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::caller::{Caller, Writer};
use super::extract::{IfMatch, JsonBody, etag};
use crate::domain::error::{Error, Result};
use crate::domain::query::TaskQuery;
use crate::domain::service::parse_task_id;
use crate::domain::task::Task;

/// Routes of the task resource.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tasks", get(list).post(create))
        .route(
            "/api/tasks/{id}",
            get(read).put(update).patch(update).delete(remove),
        )
}

fn with_etag(status: StatusCode, task: Task, extra: HeaderMap) -> Response {
    let mut response = (status, extra, Json(&task)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag(task.version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Query-string pairs; an undecodable query string is a 422 on `query`.
pub fn query_pairs(raw: Option<&str>) -> Result<Vec<(String, String)>> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| Error::invalid("query", format!("malformed query string: {e}")))
}

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

async fn read(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let task = state.service.get(&actor, parse_task_id(&id)?).await?;
    Ok(with_etag(StatusCode::OK, task, HeaderMap::new()))
}

async fn update(
    State(state): State<AppState>,
    Writer(actor): Writer,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let id = parse_task_id(&id)?;
    let task = state.service.update(&actor, id, &body, expected).await?;
    Ok(with_etag(StatusCode::OK, task, HeaderMap::new()))
}

async fn remove(
    State(state): State<AppState>,
    Writer(actor): Writer,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<StatusCode> {
    state
        .service
        .delete(&actor, parse_task_id(&id)?, expected)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

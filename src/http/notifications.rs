//! `/api/notifications`: what the outbox holds for the caller's workspace, one notification
//! with its attempts, and a manual retry.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::caller::{Caller, Writer};
use super::openapi::errors::{
    Conflict, Invalid, NotFound, RateLimited, Timeout, Unauthorized, Unavailable,
};
use super::tasks::query_pairs;
use crate::domain::error::{Error, Result};
use crate::domain::notification::{Attempt, Notification, Status};
use crate::domain::task::now;
use crate::store::outbox::Requeued;

/// Most notifications one list returns (newest first).
const DEFAULT_LIMIT: i64 = 100;
/// The largest `limit` accepted.
const MAX_LIMIT: i64 = 1000;

/// Notification routes, with their descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(read))
        .routes(routes!(retry))
}

/// A notification with its attempts.
#[derive(Serialize, ToSchema)]
struct Detail {
    #[serde(flatten)]
    notification: Notification,
    /// Every delivery attempt so far, oldest first.
    attempts_log: Vec<Attempt>,
}

fn parse_id(raw: &str) -> Result<Uuid> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| Error::NotFound(format!("notification {raw} does not exist")))
}

/// The caller's workspace's notifications, newest first.
#[utoipa::path(
    get,
    path = "/api/notifications",
    operation_id = "list_notifications",
    tag = "notifications",
    params(
        ("status" = Option<Status>, Query, description = "Only notifications in this delivery state."),
        ("task_id" = Option<Uuid>, Query, description = "Only notifications about this task."),
        ("limit" = Option<i64>, Query, minimum = 0, description = "At most this many (default 100, at most 1000)."),
    ),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "Notifications, newest first.", body = Vec<Notification>,
            links(("GetNotification" = (operation_id = "get_notification", parameters(("id" = "$response.body#/0/id")))))),
        Unauthorized, Timeout, Invalid, Unavailable,
    )
)]
async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<Notification>>> {
    let (mut status, mut task_id, mut limit) = (None, None, DEFAULT_LIMIT);
    for (key, value) in query_pairs(raw.as_deref())? {
        match key.as_str() {
            "status" => {
                status = Some(Status::parse(value.trim()).ok_or_else(|| {
                    Error::invalid(
                        "status",
                        format!(
                            "status must be pending, delivered, failed or dead (got {value:?})"
                        ),
                    )
                })?)
            }
            "task_id" => {
                task_id = Some(Uuid::parse_str(value.trim()).map_err(|_| {
                    Error::invalid(
                        "task_id",
                        format!("task_id must be a task id (got {value:?})"),
                    )
                })?)
            }
            "limit" => {
                limit = value
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 0)
                    .ok_or_else(|| Error::invalid("limit", "limit must be a non-negative integer"))?
                    .min(MAX_LIMIT)
            }
            _ => {}
        }
    }
    let rows = state
        .service
        .store()
        .outbox()
        .list_notifications(&actor.workspace, status, task_id, limit)
        .await?;
    Ok(Json(rows))
}

/// One notification with its attempts.
#[utoipa::path(
    get,
    path = "/api/notifications/{id}",
    operation_id = "get_notification",
    tag = "notifications",
    params(("id" = Uuid, Path, description = "The notification (also its `webhook-id`).")),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "The notification and its attempts.", body = Detail,
            links(("RetryNotification" = (operation_id = "retry_notification", parameters(("id" = "$response.body#/id")))))),
        Unauthorized, NotFound, Timeout, Unavailable,
    )
)]
async fn read(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Json<Detail>> {
    let id = parse_id(&id)?;
    let (notification, attempts_log) = state
        .service
        .store()
        .outbox()
        .get_notification(&actor.workspace, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("notification {id} does not exist")))?;
    Ok(Json(Detail {
        notification,
        attempts_log,
    }))
}

/// Queues a notification for another attempt now.
#[utoipa::path(
    post,
    path = "/api/notifications/{id}/retry",
    operation_id = "retry_notification",
    tag = "notifications",
    params(("id" = Uuid, Path, description = "The notification.")),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 202, description = "Queued; the notification as it is now.", body = Detail),
        Unauthorized, NotFound, Timeout, Conflict, RateLimited, Unavailable,
    )
)]
async fn retry(
    State(state): State<AppState>,
    Writer(actor): Writer,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Detail>)> {
    let id = parse_id(&id)?;
    let outbox = state.service.store().outbox();
    match outbox.requeue(&actor.workspace, id, now()).await? {
        Requeued::Yes => {}
        Requeued::AlreadyDelivered => {
            return Err(Error::Conflict(format!(
                "notification {id} was already delivered"
            )));
        }
        Requeued::NotFound => {
            return Err(Error::NotFound(format!("notification {id} does not exist")));
        }
    }
    state.service.wake_outbox();
    let (notification, attempts_log) = outbox
        .get_notification(&actor.workspace, id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("notification {id} does not exist")))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Detail {
            notification,
            attempts_log,
        }),
    ))
}

//! `/api/notifications`: what the outbox holds for the caller's workspace, one notification
//! with its attempts, and a manual retry.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use uuid::Uuid;

use super::AppState;
use super::caller::{Caller, Writer};
use super::tasks::query_pairs;
use crate::domain::error::{Error, Result};
use crate::domain::notification::{Attempt, Notification, Status};
use crate::domain::task::now;
use crate::store::outbox::Requeued;

/// Most notifications one list returns (newest first).
const DEFAULT_LIMIT: i64 = 100;
/// The largest `limit` accepted.
const MAX_LIMIT: i64 = 1000;

/// Notification routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/notifications", get(list))
        .route("/api/notifications/{id}", get(read))
        .route("/api/notifications/{id}/retry", post(retry))
}

/// A notification with its attempts.
#[derive(Serialize)]
struct Detail {
    #[serde(flatten)]
    notification: Notification,
    attempts_log: Vec<Attempt>,
}

fn parse_id(raw: &str) -> Result<Uuid> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| Error::NotFound(format!("notification {raw} does not exist")))
}

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

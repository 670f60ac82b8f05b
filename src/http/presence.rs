//! Socket presence over REST, in the shapes Node socket.io task backends answer with:
//! `GET /api/tasks/socket/stats` and `GET /api/tasks/socket/users/{taskId}`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::AppState;
use super::caller::Caller;
use crate::domain::error::Result;
use crate::domain::service::parse_task_id;
use crate::realtime::presence::{RoomUsers, Stats};

/// Presence routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tasks/socket/stats", get(stats))
        .route("/api/tasks/socket/users/{task_id}", get(users))
}

/// `{"success": true, "data": …}`, the envelope those backends use.
#[derive(Serialize)]
struct Envelope<T> {
    success: bool,
    data: T,
}

async fn stats(State(state): State<AppState>, Caller(actor): Caller) -> Json<Envelope<Stats>> {
    Json(Envelope {
        success: true,
        data: state.presence.stats(&actor.workspace).await,
    })
}

async fn users(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(task_id): Path<String>,
) -> Result<Json<Envelope<RoomUsers>>> {
    // A task of another workspace is as missing as one that never existed.
    let task = state.service.get(&actor, parse_task_id(&task_id)?).await?;
    Ok(Json(Envelope {
        success: true,
        data: state.presence.room(&actor.workspace, task.id).await,
    }))
}

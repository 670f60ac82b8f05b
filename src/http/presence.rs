//! Socket presence over REST, in the shapes Node socket.io task backends answer with:
//! `GET /api/tasks/socket/stats` and `GET /api/tasks/socket/users/{taskId}`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::caller::Caller;
use super::openapi::errors::{NotFound, Timeout, Unauthorized, Unavailable};
use crate::domain::error::Result;
use crate::domain::service::parse_task_id;
use crate::realtime::presence::{RoomUsers, Stats};

/// Presence routes, with their descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(users))
}

/// `{"success": true, "data": <stats>}`, the envelope those backends use.
#[derive(Serialize, ToSchema)]
struct StatsEnvelope {
    /// Always `true`.
    success: bool,
    /// Who is connected.
    data: Stats,
}

/// `{"success": true, "data": <room>}`, the envelope those backends use.
#[derive(Serialize, ToSchema)]
struct RoomEnvelope {
    /// Always `true`.
    success: bool,
    /// Who is in the task's room.
    data: RoomUsers,
}

/// Connected users and their task rooms, in the caller's workspace.
#[utoipa::path(
    get,
    path = "/api/tasks/socket/stats",
    operation_id = "socket_stats",
    tag = "realtime",
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "Presence in the caller's workspace.", body = StatsEnvelope),
        Unauthorized, Timeout, Unavailable,
    )
)]
async fn stats(State(state): State<AppState>, Caller(actor): Caller) -> Json<StatsEnvelope> {
    Json(StatsEnvelope {
        success: true,
        data: state.presence.stats(&actor.workspace).await,
    })
}

/// The users whose sockets joined a task's room.
#[utoipa::path(
    get,
    path = "/api/tasks/socket/users/{task_id}",
    operation_id = "task_room_users",
    tag = "realtime",
    params(("task_id" = Uuid, Path, description = "The task.")),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "Users in the task's room.", body = RoomEnvelope),
        Unauthorized, NotFound, Timeout, Unavailable,
    )
)]
async fn users(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(task_id): Path<String>,
) -> Result<Json<RoomEnvelope>> {
    // A task of another workspace is as missing as one that never existed.
    let task = state.service.get(&actor, parse_task_id(&task_id)?).await?;
    Ok(Json(RoomEnvelope {
        success: true,
        data: state.presence.room(&actor.workspace, task.id).await,
    }))
}

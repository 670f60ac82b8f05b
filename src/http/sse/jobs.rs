//! The job stream: `GET /api/jobs/{id}/events`, the job as it is now and then each change,
//! ending after its final state. It lives as long as the job runs, so it is not bound by the
//! request timeout.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::Response;
use axum::response::sse::Event;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

use super::event_stream;
use crate::domain::error::Result;
use crate::http::AppState;
use crate::http::caller::Caller;
use crate::http::jobs::parse_id;
use crate::http::openapi::errors::{NotFound, Unauthorized, Unavailable};
use crate::http::openapi::schemas::ServerSentEvent;
use crate::jobs::JobRecord;

/// How often a job's stream re-reads the row, for jobs running in another process.
const STREAM_POLL: Duration = Duration::from_secs(1);

/// SSE: the job as it is now, then each change, ending after the final state. A reconnect
/// starts again from the current state (no replay of earlier progress).
#[utoipa::path(
    get,
    path = "/api/jobs/{id}/events",
    operation_id = "job_events",
    tag = "jobs",
    description = "Server-Sent Events: unnamed events whose data is the job JSON, the current state first, then each change; the stream ends after the final state.",
    params(("id" = Uuid, Path, description = "The job.")),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "A `text/event-stream` of job JSON, ending after the final state.", content_type = "text/event-stream", body = ServerSentEvent),
        Unauthorized, NotFound, Unavailable,
    )
)]
pub(super) async fn events(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    // Subscribe before reading, so a change in between is not missed.
    let updates = state.jobs.subscribe();
    let job = state.jobs.get(&actor, id).await?;
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(follow(state.clone(), actor, job, updates, tx));
    Ok(event_stream(&state, rx))
}

async fn follow(
    state: AppState,
    actor: crate::domain::task::Actor,
    mut last: JobRecord,
    mut updates: broadcast::Receiver<std::sync::Arc<JobRecord>>,
    tx: mpsc::Sender<Event>,
) {
    let send = |job: &JobRecord| {
        let data = serde_json::to_string(job).unwrap_or_default();
        Event::default().data(data)
    };
    if tx.send(send(&last)).await.is_err() || last.state.is_final() {
        return;
    }
    let mut poll = tokio::time::interval(STREAM_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let next = tokio::select! {
            update = updates.recv() => match update {
                Ok(job) if job.id == last.id => Some((*job).clone()),
                Ok(_) => None,
                Err(broadcast::error::RecvError::Lagged(_)) => reread(&state, &actor, last.id).await,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = poll.tick() => reread(&state, &actor, last.id).await,
            () = state.shutdown.cancelled() => return,
            () = tx.closed() => return,
        };
        let Some(job) = next else { continue };
        // Updates from the broadcast and from the row can cross; never step backwards.
        let behind = job.state == last.state && job.progress.done < last.progress.done;
        if job == last || behind {
            continue;
        }
        if tx.send(send(&job)).await.is_err() {
            return;
        }
        let done = job.state.is_final();
        last = job;
        if done {
            return;
        }
    }
}

async fn reread(
    state: &AppState,
    actor: &crate::domain::task::Actor,
    id: Uuid,
) -> Option<JobRecord> {
    state.jobs.get(actor, id).await.ok()
}

//! Missed-event recovery on sockets: `auth.since` on connect and the `sync` command replay the
//! log after a position, then hand the socket to live delivery with no gap and no repeat.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use socketioxide::extract::SocketRef;

use super::super::frame::{Frame, ResyncRequired};
use super::super::hub::{Hub, drop_lagging, seq_room, workspace_room};
use super::super::replay::{LogCursor, Resume, resume_point};
use crate::domain::error::{Error, Result};
use crate::domain::event::TaskEvent;
use crate::domain::service::TaskService;
use crate::telemetry::metric;

/// How long a replay waits for a socket whose buffer stays full before giving up on it.
const REPLAY_STALL: Duration = Duration::from_secs(10);

/// The `sync` ack body.
#[derive(Debug, Serialize)]
pub struct SyncBody {
    replayed: usize,
}

/// What a catch-up did.
pub enum CatchUp {
    /// This many missed events were sent, then the socket went live.
    Replayed(usize),
    /// The position was pruned; the socket went live from `latest` and must refetch.
    TooOld { latest: i64 },
}

/// A resume position from `{"since": n}`; `None` when absent, an error when malformed.
pub fn since_of(payload: &Value) -> Result<Option<i64>> {
    match payload.get("since") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().filter(|n| *n >= 0).map(Some).ok_or_else(|| {
            Error::invalid(
                "since",
                format!("field `since` must be a non-negative integer, got {v}"),
            )
        }),
    }
}

/// The position a `sync` command asks to resume from; it must be given.
pub(crate) fn sync_position(payload: Option<&Value>) -> Result<i64> {
    let payload = payload.ok_or_else(|| Error::invalid("since", "expected {\"since\": n}"))?;
    since_of(payload)?.ok_or_else(|| Error::invalid("since", "field `since` is required"))
}

/// The position a connecting socket resumes from; a malformed `since` counts as none.
pub fn resume_from(auth: Option<&Value>) -> Option<i64> {
    auth.and_then(|a| since_of(a).ok().flatten())
}

/// `sync {since}`: replays what came after `since`, then continues live with sequence numbers.
pub async fn sync(
    socket: &SocketRef,
    payload: Option<Value>,
    service: &TaskService,
    hub: &Hub,
    ws: &str,
) -> Result<SyncBody> {
    let since = sync_position(payload.as_ref())?;
    // Stop live delivery while replaying; attaching at the end resumes it seamlessly.
    socket.leave(workspace_room(ws));
    socket.leave(seq_room(ws));
    match catch_up(socket, service, hub, ws, since).await? {
        CatchUp::Replayed(replayed) => Ok(SyncBody { replayed }),
        CatchUp::TooOld { latest } => Err(Error::ResyncRequired { since, latest }),
    }
}

/// Replays what `socket` missed after `since` (two arguments each, original `seq`), then
/// attaches it to live delivery with no gap and no repeat. When `since` is no longer in the
/// log, sends `resync_required` and attaches it live from the latest position.
pub async fn catch_up(
    socket: &SocketRef,
    service: &TaskService,
    hub: &Hub,
    workspace: &str,
    since: i64,
) -> Result<CatchUp> {
    let store = service.store();
    let after = match resume_point(store, workspace, since).await? {
        Resume::From(after) => after,
        Resume::TooOld { latest } => {
            metrics::counter!(metric::RESYNCS, "transport" => "socket").increment(1);
            let _ = socket.emit("resync_required", &ResyncRequired::new(since, latest));
            hub.attach(socket.clone(), workspace, latest).await?;
            return Ok(CatchUp::TooOld { latest });
        }
    };
    let mut sent = 0usize;
    let mut cursor = LogCursor::new(store, workspace, after);
    while let Some(page) = cursor.next_page().await? {
        for event in &page {
            if let Err(err) = emit_patiently(socket, hub, event).await {
                drop_lagging(socket.clone(), workspace);
                return Err(err);
            }
            sent += 1;
        }
    }
    let last = cursor.last;
    sent += hub.attach(socket.clone(), workspace, last).await?;
    metrics::counter!(metric::EVENTS_REPLAYED, "transport" => "socket").increment(sent as u64);
    Ok(CatchUp::Replayed(sent))
}

/// Emits one replayed event in every configured style, waiting while the socket's buffer is
/// full (a long replay outruns any socket), up to [`REPLAY_STALL`].
async fn emit_patiently(socket: &SocketRef, hub: &Hub, event: &TaskEvent) -> Result<()> {
    let frame = Frame::render(event, hub.styles())?;
    let started = tokio::time::Instant::now();
    for style in &frame.socket_events {
        loop {
            match socket.emit(style.name, &(&style.payload, &frame.meta)) {
                Ok(()) => break,
                Err(socketioxide::SendError::Socket(
                    socketioxide::SocketError::InternalChannelFull,
                )) if started.elapsed() < REPLAY_STALL => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(err) => {
                    return Err(Error::Unavailable(format!(
                        "socket cannot take the replay: {err}"
                    )));
                }
            }
        }
    }
    Ok(())
}

//! The task stream: `GET /api/tasks/stream` (alias `/task_updates`). Each committed change
//! is one event with `id: <seq>` and `data: {"type", "task"}`, unnamed so
//! `EventSource.onmessage` receives it (`?named=1` names it). `Last-Event-ID` (or
//! `?lastEventId=`) replays what was missed, then continues live with no gap and no repeat.
//!
//! Each stream is a small task feeding a bounded channel: a client that stops reading stops
//! its task at that channel, the shared per-workspace buffer moves on without it, and when it
//! reads again it catches up from the log. Memory per stream is bounded either way.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::response::sse::Event;
use tokio::sync::{broadcast, mpsc};

use super::event_stream;
use crate::domain::error::{Error, Result};
use crate::http::AppState;
use crate::http::caller::Caller;
use crate::http::openapi::errors::{Invalid, Unauthorized, Unavailable};
use crate::http::openapi::schemas::ServerSentEvent;
use crate::http::tasks::query_pairs;
use crate::realtime::frame::{Frame, ResyncRequired};
use crate::realtime::replay::{LogCursor, Resume, resume_point};
use crate::telemetry::metric;

/// Events queued per stream between its task and the HTTP body.
const STREAM_BUFFER: usize = 64;
/// What `retry:` tells EventSource to wait before reconnecting.
const RETRY: Duration = Duration::from_millis(3000);

/// How a client asked for its stream.
pub(crate) struct Options {
    /// Events carry their type as the SSE event name (`?named=1`).
    pub(crate) named: bool,
    /// The position to resume after (`Last-Event-ID` or `?lastEventId=`), never negative.
    pub(crate) last_event_id: Option<i64>,
}

/// Reads the stream's options from the request; a `Last-Event-ID` that is not a sequence
/// number is a 422, since resuming from a guess would skip or repeat events.
pub(crate) fn options(headers: &HeaderMap, raw_query: Option<&str>) -> Result<Options> {
    let pairs = query_pairs(raw_query)?;
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let named = matches!(get("named"), Some("1" | "true" | "yes"));
    let raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or_else(|| get("lastEventId"))
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let last_event_id = raw
        .map(|v| {
            v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
                Error::invalid(
                    "Last-Event-ID",
                    format!("Last-Event-ID must be a sequence number (got {v:?})"),
                )
            })
        })
        .transpose()?;
    Ok(Options {
        named,
        last_event_id,
    })
}

/// `GET /task_updates`: the same stream under its seed-era name.
#[utoipa::path(
    get,
    path = "/task_updates",
    operation_id = "task_updates",
    tag = "realtime",
    description = "The stream of `GET /api/tasks/stream` under its seed-era name.",
    params(
        ("named" = Option<String>, Query, description = "`1` names each event (`event: task_updated`) instead of sending it unnamed."),
        ("lastEventId" = Option<u64>, Query, description = "Resume after this sequence number (for EventSource, which cannot set headers)."),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this sequence number."),
    ),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "An endless `text/event-stream`.", content_type = "text/event-stream", body = ServerSentEvent),
        Unauthorized, Invalid, Unavailable,
    )
)]
pub(super) async fn task_updates(
    state: State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    raw: RawQuery,
) -> Result<Response> {
    stream(state, caller, headers, raw).await
}

/// `GET /api/tasks/stream`: every committed change of the workspace, resumable.
#[utoipa::path(
    get,
    path = "/api/tasks/stream",
    operation_id = "task_stream",
    tag = "realtime",
    description = "Server-Sent Events: `retry: 3000` once, then one event per committed change with `id: <seq>` and `data: {\"type\": \"task_updated\", \"task\": {…}}` (unnamed unless `?named=1`), and a keep-alive comment every `SSE_KEEPALIVE_SECONDS`. `Last-Event-ID` (or `?lastEventId=`) replays what was missed first; if that is no longer kept, one `{\"type\": \"resync_required\"}` event comes instead. The stream never ends on its own.",
    params(
        ("named" = Option<String>, Query, description = "`1` names each event (`event: task_updated`) instead of sending it unnamed."),
        ("lastEventId" = Option<u64>, Query, description = "Resume after this sequence number (for EventSource, which cannot set headers)."),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this sequence number."),
    ),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "An endless `text/event-stream`.", content_type = "text/event-stream", body = ServerSentEvent),
        Unauthorized, Invalid, Unavailable,
    )
)]
pub(super) async fn stream(
    State(state): State<AppState>,
    Caller(actor): Caller,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let opts = options(&headers, raw.as_deref())?;
    // Subscribe before reading the log, so nothing committed in between can fall through.
    let live = state.hub.subscribe(&actor.workspace);
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let pump = Pump {
        state: state.clone(),
        workspace: actor.workspace,
        named: opts.named,
        tx,
    };
    tokio::spawn(pump.run(live, opts.last_event_id));
    Ok(event_stream(&state, rx))
}

struct Pump {
    state: AppState,
    workspace: String,
    named: bool,
    tx: mpsc::Sender<Event>,
}

/// Why a stream's task stopped early.
enum Stop {
    ClientGone,
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(err: Error) -> Self {
        Stop::Failed(err)
    }
}

impl Pump {
    async fn run(self, live: broadcast::Receiver<Arc<Frame>>, last_event_id: Option<i64>) {
        metrics::gauge!(metric::SSE_STREAMS).increment(1.0);
        let shutdown = self.state.shutdown.clone();
        tokio::select! {
            result = self.serve(live, last_event_id) => {
                if let Err(Stop::Failed(err)) = result {
                    tracing::warn!(error = ?err, "SSE stream failed");
                }
            }
            // The client left: without this the task (and its place in the hub) would stay
            // until the workspace's next event tried to reach it, which may never come.
            () = self.tx.closed() => {}
            () = shutdown.cancelled() => {}
        }
        metrics::gauge!(metric::SSE_STREAMS).decrement(1.0);
    }

    async fn serve(
        &self,
        mut live: broadcast::Receiver<Arc<Frame>>,
        last_event_id: Option<i64>,
    ) -> Result<(), Stop> {
        self.send(Event::default().retry(RETRY)).await?;
        let mut last = match last_event_id {
            Some(since) => self.replay(since).await?,
            None => None,
        };
        loop {
            match live.recv().await {
                Ok(frame) => {
                    if let Some(l) = last {
                        if frame.seq <= l {
                            continue;
                        }
                        if frame.seq > l + 1 {
                            last = self.catch_up(l).await?;
                            if last.is_some_and(|l| frame.seq <= l) {
                                continue;
                            }
                        }
                    }
                    self.send(self.event(&frame)).await?;
                    last = Some(frame.seq);
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    metrics::counter!(metric::SLOW_CONSUMERS, "transport" => "sse")
                        .increment(missed);
                    if let Some(l) = last {
                        last = self.catch_up(l).await?;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }

    /// Replays after a client's `Last-Event-ID`; returns the position reached, or `None` after
    /// telling the client to resync (it then gets live events only).
    async fn replay(&self, since: i64) -> Result<Option<i64>, Stop> {
        let store = self.state.service.store();
        match resume_point(store, &self.workspace, since).await? {
            Resume::From(after) => self.catch_up(after).await,
            Resume::TooOld { latest } => {
                metrics::counter!(metric::RESYNCS, "transport" => "sse").increment(1);
                let payload = serde_json::to_string(&ResyncRequired::new(since, latest))
                    .map_err(Error::internal)?;
                let mut event = Event::default().data(payload);
                if self.named {
                    event = event.event("resync_required");
                }
                self.send(event).await?;
                Ok(None)
            }
        }
    }

    /// Sends everything in the log after `after`; returns the last position sent.
    async fn catch_up(&self, after: i64) -> Result<Option<i64>, Stop> {
        let store = self.state.service.store();
        let mut cursor = LogCursor::new(store, &self.workspace, after);
        while let Some(page) = cursor.next_page().await? {
            for event in &page {
                // SSE needs only `sse_data`; no Socket.IO styles to render.
                let frame = Frame::render(event, &[])?;
                self.send(self.event(&frame)).await?;
            }
            metrics::counter!(metric::EVENTS_REPLAYED, "transport" => "sse")
                .increment(page.len() as u64);
        }
        Ok(Some(cursor.last))
    }

    fn event(&self, frame: &Frame) -> Event {
        let event = Event::default()
            .id(frame.seq.to_string())
            .data(&frame.sse_data);
        if self.named {
            event.event(frame.kind.as_str())
        } else {
            event
        }
    }

    async fn send(&self, event: Event) -> Result<(), Stop> {
        self.tx.send(event).await.map_err(|_| Stop::ClientGone)
    }
}

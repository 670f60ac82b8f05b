//! Server-Sent Events, for tasks (`tasks.rs`: the workspace's changes, resumable with
//! `Last-Event-ID`) and for jobs (`jobs.rs`: one job's progress). Each stream is a task feeding
//! a bounded channel; this module turns that channel into the HTTP response both share.

mod jobs;
mod tasks;

pub(crate) use tasks::options as stream_options;

use std::convert::Infallible;
use std::time::Duration;

use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// The SSE routes, with their descriptions; outside the request timeout, since a stream lasts
/// as long as its client.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tasks::stream))
        .routes(routes!(tasks::task_updates))
        .routes(routes!(jobs::events))
}

/// The response for a stream fed by `rx`: keep-alive comments every
/// `SSE_KEEPALIVE_SECONDS`, and headers that stop proxies (nginx) and caches from holding
/// events back.
fn event_stream(state: &AppState, rx: mpsc::Receiver<Event>) -> Response {
    let body = ReceiverStream::new(rx).map(Ok::<_, Infallible>);
    let keep_alive =
        KeepAlive::new().interval(Duration::from_secs(state.settings.sse_keepalive_seconds));
    let mut response = Sse::new(body).keep_alive(keep_alive).into_response();
    let headers = response.headers_mut();
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

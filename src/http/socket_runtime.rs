//! The layer that moves Socket.IO requests onto the realtime runtime
//! ([`crate::realtime::runtime`]), so the tasks engine.io spawns for a connection live there.

use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::runtime::Handle;

use crate::realtime::runtime::SOCKET_IO_PATH;

/// Middleware: serves Socket.IO requests on the realtime runtime, so the tasks engine.io
/// spawns for a connection live there, and first copies the request's URI and header values
/// out of hyper's read buffer. engine.io keeps the request for the socket's lifetime, and
/// because those are zero-copy slices of the connection's 16 KiB read buffer, each socket would
/// otherwise pin that buffer (about 7 KiB of RSS per connection).
pub async fn on_realtime_runtime(
    State(handle): State<Handle>,
    req: Request,
    next: Next,
) -> Response {
    if !req.uri().path().starts_with(SOCKET_IO_PATH) {
        return next.run(req).await;
    }
    let req = detach_from_read_buffer(req);
    match handle.spawn(next.run(req)).await {
        Ok(response) => response,
        // Only while shutting down: the runtime is gone.
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response(),
    }
}

fn detach_from_read_buffer(req: Request) -> Request {
    let (mut parts, body) = req.into_parts();
    if let Ok(uri) = parts.uri.to_string().parse::<Uri>() {
        parts.uri = uri;
    }
    if let Some(OriginalUri(original)) = parts.extensions.get::<OriginalUri>()
        && let Ok(uri) = original.to_string().parse::<Uri>()
    {
        parts.extensions.insert(OriginalUri(uri));
    }
    let mut headers = HeaderMap::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let owned = HeaderValue::from_bytes(value.as_bytes())
            .expect("a header value that parsed once parses again");
        headers.append(name.clone(), owned);
    }
    parts.headers = headers;
    Request::from_parts(parts, body)
}

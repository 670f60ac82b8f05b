//! The accept loop: HTTP/1.1 with upgrades straight over each accepted `TcpStream`.
//!
//! `axum::serve` detects the HTTP version first, which wraps every connection in a private
//! read-ahead type; an upgraded WebSocket then reaches engine.io as an opaque stream it can
//! only drive through a writer task of its own. Served by hyper's HTTP/1 connection directly,
//! the upgrade hands back the `TcpStream` itself, and engine.io writes frames to it from the
//! broadcast without a task per socket (see `vendor/engineioxide/PATCHES.md`). Plain HTTP
//! clients, browsers and socket.io clients all speak HTTP/1.1 here; HTTP/2 needs TLS in
//! practice, which taskwire leaves to a proxy.
//!
//! Connections are counted: beyond `MAX_CONNECTIONS` a new one gets a 503 written straight to
//! the socket and is closed, so the process keeps the file descriptors it needs (the database,
//! Redis) and clients are told to retry, instead of `accept` failing in a loop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long to wait before accepting again after `accept` failed (e.g. out of file
/// descriptors), so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What a connection over the limit reads before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 84\r\n\r\n\
{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections; try again shortly\"}}";

/// How long a refused connection may take to receive its 503 before it is dropped.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Refusals being written at once; beyond them a connection is dropped without an answer, so
/// a flood of connections cannot pile up refusal tasks.
const MAX_REFUSING: usize = 64;

/// Counts an open connection (or refusal) while alive.
struct Slot {
    open: Arc<AtomicUsize>,
    gauge: bool,
}

impl Slot {
    fn take(open: &Arc<AtomicUsize>, gauge: bool) -> Slot {
        let now = open.fetch_add(1, Ordering::Relaxed) + 1;
        if gauge {
            metrics::gauge!(crate::telemetry::metric::CONNECTIONS_OPEN).set(now as f64);
        }
        Slot {
            open: open.clone(),
            gauge,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let now = self.open.fetch_sub(1, Ordering::Relaxed) - 1;
        if self.gauge {
            metrics::gauge!(crate::telemetry::metric::CONNECTIONS_OPEN).set(now as f64);
        }
    }
}

/// Serves `router` on `listener`, at most `limit` connections at once, until `stop` is
/// cancelled; then asks every open connection to finish its request and close, and resolves
/// once they all have.
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken, limit: usize) {
    let connections = TaskTracker::new();
    let open = Arc::new(AtomicUsize::new(0));
    let refusing = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= limit {
            metrics::counter!(crate::telemetry::metric::CONNECTIONS_REFUSED).increment(1);
            if refusing.load(Ordering::Relaxed) < MAX_REFUSING {
                let slot = Slot::take(&refusing, false);
                tokio::spawn(refuse(tcp, slot));
            }
            continue;
        }
        let slot = Slot::take(&open, true);
        let serving = connection(tcp, peer, router.clone(), stop.clone());
        connections.spawn(async move {
            serving.await;
            drop(slot);
        });
    }
    connections.close();
    connections.wait().await;
}

/// Writes the 503 and closes. The request is read (and ignored) until the client closes or the
/// time is up: closing with unread bytes would reset the connection and lose the answer.
async fn refuse(mut tcp: TcpStream, _slot: Slot) {
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        tcp.write_all(REFUSAL).await?;
        tcp.shutdown().await?;
        let mut sink = [0u8; 4096];
        while tcp.read(&mut sink).await? > 0 {}
        std::io::Result::Ok(())
    })
    .await;
}

/// One connection: requests in turn, an upgrade if one is asked for, a graceful close on stop.
fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    stop: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let service = TowerToHyperService::new(router.map_request(move |req: Request<Incoming>| {
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    }));
    async move {
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            result = conn.as_mut() => log_end(result),
            () = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                log_end(conn.await);
            }
        }
    }
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        tracing::trace!(error = %e, "connection ended with an error");
    }
}

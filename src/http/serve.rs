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
//! Redis) and clients are told to retry, instead of `accept` failing in a loop. A WebSocket
//! leaves hyper's connection once it is upgraded, so open WebSockets are counted from
//! engine.io's sessions ([`Census`]) and added to the HTTP connections. The same timer gives
//! the heap that closed connections freed back to the OS ([`HeapTrim`]).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use engineioxide::SessionCloser;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::heap_trim::HeapTrim;

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

/// How stale the count of open WebSockets may be when a connection is admitted; a refusal
/// always recounts first (at most this often), so a closed WebSocket frees its place at once.
const CENSUS_EVERY: Duration = Duration::from_millis(250);

/// What holds a file descriptor for a client: HTTP connections (counted as they open and
/// close) and WebSockets (engine.io's sessions, counted every [`CENSUS_EVERY`]).
struct Census {
    http: AtomicUsize,
    websockets: AtomicUsize,
    sessions: SessionCloser,
    heap: HeapTrim,
}

impl Census {
    fn open(&self) -> usize {
        self.http.load(Ordering::Relaxed) + self.websockets.load(Ordering::Relaxed)
    }

    fn recount(&self) {
        let counts = self.sessions.count_sessions();
        let now = counts.websocket_queued + counts.websocket_direct;
        let before = self.websockets.swap(now, Ordering::Relaxed);
        // WebSockets that ended freed their buffers too (an upgrade counted in between may hide
        // a few; the next wave is seen all the same).
        self.heap.connections_closed(before.saturating_sub(now));
        self.publish();
    }

    fn publish(&self) {
        metrics::gauge!(crate::telemetry::metric::CONNECTIONS_OPEN).set(self.open() as f64);
    }
}

/// Counts an HTTP connection while alive.
struct Slot(Arc<Census>);

impl Slot {
    fn take(census: &Arc<Census>) -> Slot {
        census.http.fetch_add(1, Ordering::Relaxed);
        census.publish();
        Slot(census.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.http.fetch_sub(1, Ordering::Relaxed);
        self.0.heap.connections_closed(1);
        self.0.publish();
    }
}

/// Counts a refusal being written while alive.
struct Refusing(Arc<AtomicUsize>);

impl Drop for Refusing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `router` on `listener`, at most `limit` connections at once (HTTP connections and
/// the WebSocket sessions of `sessions`), until `stop` is cancelled; then asks every open
/// connection to finish its request and close, and resolves once they all have.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    stop: CancellationToken,
    limit: usize,
    sessions: SessionCloser,
) {
    let connections = TaskTracker::new();
    let census = Arc::new(Census {
        http: AtomicUsize::new(0),
        websockets: AtomicUsize::new(0),
        sessions,
        heap: HeapTrim::default(),
    });
    // Keeps the gauge current while nobody connects (WebSockets ending).
    let ticker = tokio::spawn({
        let census = census.clone();
        let stop = stop.clone();
        async move {
            let mut every = tokio::time::interval(CENSUS_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = every.tick() => {
                        census.recount();
                        census.heap.maybe_trim();
                    }
                    () = stop.cancelled() => return,
                }
            }
        }
    });
    let refusing = Arc::new(AtomicUsize::new(0));
    let mut counted = Instant::now();
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
        if census.open() >= limit && counted.elapsed() >= CENSUS_EVERY / 10 {
            census.recount();
            counted = Instant::now();
        }
        if census.open() >= limit {
            metrics::counter!(crate::telemetry::metric::CONNECTIONS_REFUSED).increment(1);
            if refusing.fetch_add(1, Ordering::Relaxed) < MAX_REFUSING {
                tokio::spawn(refuse(tcp, Refusing(refusing.clone())));
            } else {
                refusing.fetch_sub(1, Ordering::Relaxed);
            }
            continue;
        }
        let slot = Slot::take(&census);
        let upgrade = Arc::new(AtomicBool::new(false));
        let serving = connection(tcp, peer, router.clone(), stop.clone(), upgrade.clone());
        connections.spawn(async move {
            serving.await;
            // The connection went on as a WebSocket: count it as one until the next census
            // sees its session (or its absence, if the handshake failed).
            if upgrade.load(Ordering::Relaxed) {
                slot.0.websockets.fetch_add(1, Ordering::Relaxed);
            }
            drop(slot);
        });
    }
    ticker.abort();
    connections.close();
    connections.wait().await;
}

/// Writes the 503 and closes. The request is read (and ignored) until the client closes or the
/// time is up: closing with unread bytes would reset the connection and lose the answer.
async fn refuse(mut tcp: TcpStream, _refusing: Refusing) {
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
/// `upgrade` is set when a request asks for a WebSocket.
fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    stop: CancellationToken,
    upgrade: Arc<AtomicBool>,
) -> impl Future<Output = ()> + Send + 'static {
    let service = TowerToHyperService::new(router.map_request(move |req: Request<Incoming>| {
        if req.headers().contains_key(http::header::UPGRADE) {
            upgrade.store(true, Ordering::Relaxed);
        }
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

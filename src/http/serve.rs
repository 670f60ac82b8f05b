//! The accept loop: HTTP/1.1 with upgrades straight over each accepted `TcpStream`.
//!
//! `axum::serve` detects the HTTP version first, which wraps every connection in a private
//! read-ahead type; an upgraded WebSocket then reaches engine.io as an opaque stream it can
//! only drive through a writer task of its own. Served by hyper's HTTP/1 connection directly,
//! the upgrade hands back the `TcpStream` itself, and engine.io writes frames to it from the
//! broadcast without a task per socket (see `vendor/engineioxide/PATCHES.md`). Plain HTTP
//! clients, browsers and socket.io clients all speak HTTP/1.1 here; HTTP/2 needs TLS in
//! practice, which taskwire leaves to a proxy.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long to wait before accepting again after `accept` failed (e.g. out of file
/// descriptors), so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `stop` is cancelled, then asks every open connection to
/// finish its request and close, and resolves once they all have.
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let connections = TaskTracker::new();
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
        connections.spawn(connection(tcp, peer, router.clone(), stop.clone()));
    }
    connections.close();
    connections.wait().await;
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

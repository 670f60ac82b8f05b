//! Not from upstream: the direct WebSocket write path of this patched copy (PATCHES.md,
//! patch 2). A new Engine.IO v4 session served by hyper's HTTP/1 connection over a plain
//! `TcpStream` must take it; a session whose upgraded stream is anything else keeps the queue
//! and writer task. Real sockets and a real WebSocket client; the path is read from
//! `SessionCloser::count_sessions`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use engineioxide::{
    DisconnectReason, SessionCloser, SessionCounts, Socket, Str, handler::EngineIoHandler,
    service::EngineIoService,
};
use futures_util::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tower_service::Service;

const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Sockets(mpsc::UnboundedSender<Arc<Socket<()>>>);

impl EngineIoHandler for Sockets {
    type Data = ();
    fn on_connect(self: Arc<Self>, socket: Arc<Socket<()>>) {
        self.0.send(socket).ok();
    }
    fn on_disconnect(&self, _: Arc<Socket<()>>, _: DisconnectReason) {}
    fn on_message(self: &Arc<Self>, _: Str, _: Arc<Socket<()>>) {}
    fn on_binary(self: &Arc<Self>, _: Bytes, _: Arc<Socket<()>>) {}
}

/// Serves engine.io on a loopback port, each connection's `TcpStream` passed through `wrap`
/// before hyper gets it; requests carry `closer`.
async fn serve<W, F>(
    wrap: F,
    closer: SessionCloser,
) -> (SocketAddr, mpsc::UnboundedReceiver<Arc<Socket<()>>>)
where
    F: Fn(TcpStream) -> W + Send + 'static,
    W: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let svc = EngineIoService::new(Arc::new(Sockets(tx)));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (svc, closer) = (svc.clone(), closer.clone());
            let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
                req.extensions_mut().insert(closer.clone());
                svc.clone().call(req)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(wrap(tcp)), service)
                    .with_upgrades(),
            );
        }
    });
    (addr, rx)
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Connects a WebSocket session, checks the open packet and one emitted message arrive, and
/// returns the session counts while it is open.
async fn one_session<W, F>(wrap: F) -> SessionCounts
where
    F: Fn(TcpStream) -> W + Send + 'static,
    W: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let closer = SessionCloser::new();
    let (addr, mut sockets) = serve(wrap, closer.clone()).await;
    let url = format!("ws://{addr}/engine.io/?EIO=4&transport=websocket");
    let (mut ws, _) = within("ws handshake", tokio_tungstenite::connect_async(url))
        .await
        .unwrap();
    let socket = within("session", sockets.recv()).await.unwrap();
    socket.emit("hello").unwrap();
    let open = within("open packet", ws.next()).await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with("0{"), "{open:?}");
    let msg = within("message", ws.next()).await.unwrap().unwrap();
    assert_eq!(msg, Message::text("4hello"));
    closer.count_sessions()
}

#[tokio::test]
async fn a_websocket_session_over_a_plain_tcp_stream_takes_the_direct_path() {
    let counts = one_session(|tcp| tcp).await;
    assert_eq!(
        counts,
        SessionCounts {
            polling: 0,
            websocket_queued: 0,
            websocket_direct: 1,
        },
        "the session should be written by the flusher, not a writer task"
    );
}

#[tokio::test]
async fn a_websocket_session_over_another_stream_keeps_the_queue() {
    let counts = one_session(tokio::io::BufStream::new).await;
    assert_eq!(
        counts,
        SessionCounts {
            polling: 0,
            websocket_queued: 1,
            websocket_direct: 0,
        }
    );
}

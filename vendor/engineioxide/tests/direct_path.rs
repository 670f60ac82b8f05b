//! Not from upstream: the direct WebSocket write path of this patched copy (PATCHES.md,
//! patches 2 and 6). A new Engine.IO v4 session served by hyper's HTTP/1 connection over a
//! plain `TcpStream` must take it, and so must a session that starts on long-polling and
//! upgrades (v4 and v3), without losing or reordering what was emitted during the probe; a
//! session whose upgraded stream is anything else keeps the queue and writer task. Real
//! sockets, raw HTTP/1.1 requests and a real WebSocket client; the path is read from
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
use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
            websocket_direct_upgraded: 0,
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
            websocket_direct_upgraded: 0,
        }
    );
}

/// One HTTP/1.1 request on a connection of its own; the body of its 200 answer.
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).expect("a text answer");
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{method} {path}: {head}");
    body.to_owned()
}

/// The next text frame other than a ping (answered) from the server.
async fn next_text<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, protocol: u8) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let msg = within("a frame", ws.next())
            .await
            .expect("the websocket stays open")
            .expect("a well-formed frame");
        let text = msg.to_text().expect("a text frame").to_owned();
        if protocol == 4 && text == "2" {
            ws.send(Message::text("3")).await.unwrap();
            continue;
        }
        return text;
    }
}

/// Starts a session on long-polling with a poll pending, upgrades it as engine.io-client
/// does (`2probe`, `3probe`, the pending poll answered with a noop, `5`), with packets emitted
/// after the probe and before `5` (they wait in the session's queue) and more emitted by a
/// task while the session moves to the direct path. Every packet must arrive once and in
/// order, and the session must then be counted as direct.
async fn upgrade_keeps_every_packet_in_order(protocol: u8) {
    const DURING_PROBE: usize = 10;
    const RACING: usize = 2000;
    let closer = SessionCloser::new();
    let (addr, mut sockets) = serve(|tcp| tcp, closer.clone()).await;
    let open = http(
        addr,
        "GET",
        &format!("/engine.io/?EIO={protocol}&transport=polling"),
        "",
    )
    .await;
    let sid = open
        .split_once("\"sid\":\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(sid, _)| sid.to_owned())
        .unwrap_or_else(|| panic!("no sid in the open packet {open}"));
    let socket = within("session", sockets.recv()).await.unwrap();

    let poll_path = format!("/engine.io/?EIO={protocol}&transport=polling&sid={sid}");
    if protocol == 4 {
        // The v4 heartbeat pings as the session starts; the client answers by POST.
        assert_eq!(http(addr, "GET", &poll_path, "").await, "2");
        assert_eq!(http(addr, "POST", &poll_path, "3").await, "ok");
    }
    let poll = tokio::spawn(async move { http(addr, "GET", &poll_path, "").await });
    // Let the poll become pending, as engine.io-client's does before it probes.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!poll.is_finished(), "the poll waits for packets");

    let url = format!("ws://{addr}/engine.io/?EIO={protocol}&transport=websocket&sid={sid}");
    let (mut ws, _) = within("ws handshake", tokio_tungstenite::connect_async(url))
        .await
        .unwrap();
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next_text(&mut ws, protocol).await, "3probe");
    let noop = within("the pending poll", poll).await.unwrap();
    let expected_noop = if protocol == 3 { "1:6" } else { "6" };
    assert_eq!(
        noop, expected_noop,
        "the pending poll is answered with a noop"
    );

    for i in 0..DURING_PROBE {
        socket.emit(format!("q{i}")).unwrap();
    }
    assert_eq!(
        closer.count_sessions().websocket_direct,
        0,
        "the session moves only once the client sent 5"
    );
    let racing = tokio::spawn({
        let socket = socket.clone();
        async move {
            for i in 0..RACING {
                loop {
                    match socket.emit(format!("r{i}")) {
                        Ok(()) => break,
                        Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                            tokio::task::yield_now().await
                        }
                        Err(e) => panic!("packet r{i} refused: {e:?}"),
                    }
                }
                tokio::task::yield_now().await;
            }
        }
    });
    ws.send(Message::text("5")).await.unwrap();

    for i in 0..DURING_PROBE {
        assert_eq!(next_text(&mut ws, protocol).await, format!("4q{i}"));
    }
    for i in 0..RACING {
        assert_eq!(next_text(&mut ws, protocol).await, format!("4r{i}"));
    }
    within("the emitter", racing).await.unwrap();
    assert_eq!(
        closer.count_sessions(),
        SessionCounts {
            polling: 0,
            websocket_queued: 0,
            websocket_direct: 1,
            websocket_direct_upgraded: 1,
        },
        "the upgraded session should be written by the flusher, not a writer task"
    );
    // Still a working session on its new path.
    socket.emit("after").unwrap();
    assert_eq!(next_text(&mut ws, protocol).await, "4after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v4_session_upgraded_from_polling_moves_to_the_direct_path_losing_nothing() {
    upgrade_keeps_every_packet_in_order(4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v3_session_upgraded_from_polling_moves_to_the_direct_path_losing_nothing() {
    upgrade_keeps_every_packet_in_order(3).await;
}

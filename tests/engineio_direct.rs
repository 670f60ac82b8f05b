//! The vendored engine.io (`vendor/engineioxide`, used through `[patch.crates-io]`) writes
//! WebSocket sessions on a direct path: frames go straight into each connection's buffer and
//! one flusher writes them, with no queue or writer task per socket. That path is taken only
//! when socketioxide runs on the vendored crate and the accept loop (`src/http/serve.rs`) hands
//! engine.io the upgraded `TcpStream` itself. Either can stop being true without any other
//! test noticing: cargo builds the registry engineioxide when socketioxide moves past the
//! vendored version (with only a "patch was not used" warning), and a different accept loop
//! hides the `TcpStream`. Sessions that start on long-polling and upgrade (socket.io-client's
//! default) move to the direct path once the upgrade completes; a change to the upgrade can
//! lose that just as silently. These tests watch `/metrics` of the real binary while real
//! WebSocket clients are connected.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::process::Server;
use common::sio::Client;
use common::{Backend, TestDb};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

/// How long a session may take to show up in `/metrics` in its final state.
const SETTLE: Duration = Duration::from_secs(10);

/// Open engine.io sessions as `/metrics` reports them.
#[derive(Debug, PartialEq, Eq)]
struct Sessions {
    polling: u64,
    websocket_queue: u64,
    websocket_direct: u64,
    /// Of `websocket_direct`, the sessions upgraded from polling.
    upgraded_direct: u64,
}

async fn sessions(http: &reqwest::Client, server: &Server) -> Sessions {
    let text = http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("/metrics has a text body");
    let value = |transport: &str, write_path: &str| -> u64 {
        let prefix = format!(
            "taskwire_engineio_sessions{{transport=\"{transport}\",write_path=\"{write_path}\"}} "
        );
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("/metrics has no line {prefix}…:\n{text}"));
        line.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{prefix}{line} is not a count: {e}"))
    };
    assert!(
        text.lines()
            .any(|line| line == "# TYPE taskwire_engineio_upgraded_direct_sessions gauge"),
        "/metrics declares the upgraded-direct gauge:\n{text}"
    );
    let upgraded = "taskwire_engineio_upgraded_direct_sessions ";
    let upgraded_direct = text
        .lines()
        .find_map(|line| line.strip_prefix(upgraded))
        .unwrap_or_else(|| panic!("/metrics has no line {upgraded}…:\n{text}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{upgraded} is not a count: {e}"));
    Sessions {
        polling: value("polling", "queue"),
        websocket_queue: value("websocket", "queue"),
        websocket_direct: value("websocket", "direct"),
        upgraded_direct,
    }
}

/// Polls `/metrics` until the sessions are `expected`, or fails with the last ones seen.
async fn wait_for_sessions(http: &reqwest::Client, server: &Server, expected: Sessions) {
    let start = Instant::now();
    loop {
        let seen = sessions(http, server).await;
        if seen == expected {
            return;
        }
        assert!(
            start.elapsed() < SETTLE,
            "engine.io sessions by write path: expected {expected:?}, /metrics says {seen:?}.\n\
             A v4 WebSocket session under write_path=\"queue\", or none at all, means the \
             direct write path was not taken (an upgraded one: see patch 6): check that `cargo tree -i engineioxide` shows \
             vendor/engineioxide for socketioxide (see vendor/engineioxide/PATCHES.md) and that \
             src/http/serve.rs still hands the TcpStream to the upgrade."
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn addr(server: &Server) -> SocketAddr {
    server
        .base
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{} is http://IP:PORT", server.base))
}

/// Starts an Engine.IO v4 session on long-polling and upgrades it to a WebSocket, as
/// engine.io-client does when polling comes first.
async fn polling_then_upgrade(
    http: &reqwest::Client,
    server: &Server,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let open = http
        .get(server.url("/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .expect("polling handshake answers")
        .text()
        .await
        .expect("the handshake has a body");
    let open: serde_json::Value = open
        .strip_prefix('0')
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_else(|| panic!("expected an Engine.IO open packet, got {open}"));
    let sid = open["sid"].as_str().expect("the open packet has a sid");
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket&sid={sid}",
        addr(server)
    );
    let (mut ws, _) = connect_async(url).await.expect("websocket upgrade");
    ws.send(Message::text("2probe")).await.expect("send probe");
    loop {
        let msg = tokio::time::timeout(SETTLE, ws.next())
            .await
            .expect("the server answers the probe")
            .expect("the websocket stays open")
            .expect("a websocket message");
        if msg == Message::text("3probe") {
            break;
        }
    }
    ws.send(Message::text("5")).await.expect("send upgrade");
    ws
}

/// A new Engine.IO v3 WebSocket session (socket.io-client 2.x with `transports:
/// ['websocket']`): it keeps the queue and writer task, which shows that the metric tells the
/// two paths apart.
async fn v3_websocket(
    server: &Server,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let url = format!("ws://{}/socket.io/?EIO=3&transport=websocket", addr(server));
    let (mut ws, _) = connect_async(url).await.expect("websocket handshake");
    let open = tokio::time::timeout(SETTLE, ws.next())
        .await
        .expect("the server sends the open packet")
        .expect("the websocket stays open")
        .expect("a websocket message");
    assert!(open.to_text().unwrap_or("").starts_with("0{"), "{open:?}");
    ws
}

#[tokio::test]
async fn websocket_sessions_of_the_binary_take_the_direct_write_path_upgraded_or_not() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = Server::start(&db.url, vec![]).await;
    // reqwest has rustls without a default provider; this process installs none otherwise.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    wait_for_sessions(
        &http,
        &server,
        Sessions {
            polling: 0,
            websocket_queue: 0,
            websocket_direct: 0,
            upgraded_direct: 0,
        },
    )
    .await;

    // A session that starts on a WebSocket: the direct path.
    let direct = Client::connect(addr(&server), None).await;
    // A session upgraded from polling: the direct path too, once the upgrade completes.
    let upgraded = polling_then_upgrade(&http, &server).await;
    // A new v3 WebSocket session keeps the queue.
    let v3 = v3_websocket(&server).await;
    wait_for_sessions(
        &http,
        &server,
        Sessions {
            polling: 0,
            websocket_queue: 1,
            websocket_direct: 2,
            upgraded_direct: 1,
        },
    )
    .await;

    direct.close().await;
    drop(upgraded);
    drop(v3);
    wait_for_sessions(
        &http,
        &server,
        Sessions {
            polling: 0,
            websocket_queue: 0,
            websocket_direct: 0,
            upgraded_direct: 0,
        },
    )
    .await;
    server.terminate(Duration::from_secs(10)).await;
}

//! Clients that hold resources without using them, against the real binary with default
//! settings: each is cut off after a documented timeout, and afterwards nothing of it is left
//! (no open connection, no engine.io session on `/metrics`).
//!
//! - a TCP connection that never sends a request, or trickles its headers: closed 30 s after it
//!   opened (hyper's header read timeout; the same holds for an idle keep-alive connection);
//! - a long-polling session that never polls again: ended once no request has come for the
//!   ping timeout (20 s; at most the ping interval plus the ping timeout, 45 s);
//! - a WebSocket that never reads while events pile up: ended by the same heartbeat, whatever
//!   was left unwritten dropped;
//! - an SSE client that goes away: its stream ends with the connection, even when no event
//!   follows that would find it gone.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::process::Server;
use common::{Backend, TestDb};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(server: &Server) -> SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("the base URL holds an address")
}

/// Seconds until the server closes `tcp` (reading and discarding what it sends), at most `limit`.
async fn closed_after(tcp: &mut TcpStream, started: Instant, limit: Duration) -> Duration {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("still open after {limit:?}"),
        }
    }
}

/// `/metrics` as text.
async fn metrics(server: &Server) -> String {
    reqwest::get(server.url("/metrics"))
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("text")
}

/// Sum of every series of `name` on `/metrics`.
fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until no engine.io session is left and only `/metrics`'s own connection is open.
async fn nothing_left(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = metrics(server).await;
        let sessions = sum(&text, "taskwire_engineio_sessions");
        let open = sum(&text, "taskwire_connections_open");
        if sessions == 0.0 && open <= 1.0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sessions} engine.io sessions and {open} connections left"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start() -> (TestDb, Server) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::new(Backend::Sqlite).await;
    let server = Server::start(&db.url, vec![]).await;
    (db, server)
}

#[tokio::test]
async fn silent_and_trickling_connections_are_closed_after_30_s() {
    let (_db, server) = start().await;
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr(&server)).await.unwrap();
    let mut trickle = TcpStream::connect(addr(&server)).await.unwrap();
    let trickling = tokio::spawn(async move {
        let header = b"GET /healthz HTTP/1.1\r\nx-slow: ";
        trickle.write_all(header).await.unwrap();
        // One byte every second: never a whole header block.
        while trickle.write_all(b"a").await.is_ok() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if started.elapsed() > Duration::from_secs(40) {
                panic!("the trickling connection is still open after 40 s");
            }
        }
        started.elapsed()
    });
    let silent_for = closed_after(&mut silent, started, Duration::from_secs(40)).await;
    assert!(silent_for >= Duration::from_secs(29), "{silent_for:?}");
    let trickled_for = trickling.await.unwrap();
    assert!(trickled_for <= Duration::from_secs(34), "{trickled_for:?}");
    nothing_left(&server).await;
}

#[tokio::test]
async fn a_polling_session_that_never_polls_again_is_ended_after_the_heartbeat() {
    let (_db, server) = start().await;
    let http = reqwest::Client::new();
    let open = http
        .get(server.url("/socket.io/?EIO=4&transport=polling"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let handshake: serde_json::Value =
        serde_json::from_str(open.trim_start_matches('0')).expect("the open packet");
    assert!(handshake["sid"].is_string(), "{open}");
    let started = Instant::now();
    // Watch /metrics (which does not touch the session) until the session is gone.
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let polling = sum(&metrics(&server).await, "taskwire_engineio_sessions");
        if polling == 0.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the session is still there after 60 s"
        );
    }
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    nothing_left(&server).await;
}

#[tokio::test]
async fn a_websocket_that_never_reads_is_ended_after_the_heartbeat() {
    let (_db, server) = start().await;
    let mut ws = TcpStream::connect(addr(&server)).await.unwrap();
    ws.write_all(
        b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nhost: taskwire\r\n\
          upgrade: websocket\r\nconnection: Upgrade\r\n\
          sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    // Socket.IO CONNECT to `/`: a masked text frame "40".
    let mask = [1u8, 2, 3, 4];
    let payload: Vec<u8> = b"40"
        .iter()
        .zip(mask.iter().cycle())
        .map(|(b, m)| b ^ m)
        .collect();
    let mut frame = vec![0x81, 0x80 | 2];
    frame.extend_from_slice(&mask);
    frame.extend_from_slice(&payload);
    ws.write_all(&frame).await.unwrap();
    let started = Instant::now();
    // Events pile up for a client that reads nothing: 300 changes of 20 KB each.
    let http = reqwest::Client::new();
    let big = "x".repeat(20_000);
    for i in 0..300 {
        let res = http
            .post(server.url("/api/tasks"))
            .json(&json!({"title": format!("t{i}"), "description": big}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    // Only now read: the server must have given up on the connection.
    tokio::time::sleep(Duration::from_secs(40).saturating_sub(started.elapsed())).await;
    let closed_at = closed_after(&mut ws, started, Duration::from_secs(70)).await;
    assert!(closed_at >= Duration::from_secs(40), "{closed_at:?}");
    nothing_left(&server).await;
}

#[tokio::test]
async fn an_sse_client_that_leaves_leaves_no_stream_behind_even_without_a_later_event() {
    let (_db, server) = start().await;
    let mut res = reqwest::get(server.url("/api/tasks/stream"))
        .await
        .expect("the stream opens");
    assert_eq!(res.status(), 200);
    // The first bytes (`retry:`) mean the stream's task runs.
    tokio::time::timeout(Duration::from_secs(5), res.chunk())
        .await
        .expect("the stream starts in time")
        .expect("reads");
    assert_eq!(sum(&metrics(&server).await, "taskwire_sse_streams"), 1.0);

    drop(res);
    // No task changes from here on: nothing is sent that could discover the client is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let streams = sum(&metrics(&server).await, "taskwire_sse_streams");
        if streams == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{streams} SSE streams left");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    nothing_left(&server).await;
}

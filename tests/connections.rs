//! The connection limit through the real binary: beyond `MAX_CONNECTIONS` a new connection is
//! answered 503 with `Retry-After` and closed while the others are served as before; unset, the
//! limit is what the open-file limit leaves room for, so a flood of connections meets a 503
//! rather than a server whose `accept` fails for want of file descriptors.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::process::Server;
use common::{Backend, TestDb};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(server: &Server) -> SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("the base URL holds an address")
}

/// Sends one request on `tcp` and reads one response whose body ends with `until`.
async fn request(tcp: &mut TcpStream, path: &str, until: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: taskwire\r\n\r\n");
    tcp.write_all(req.as_bytes())
        .await
        .expect("the request is sent");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).ends_with(until) {
        assert!(
            Instant::now() < deadline,
            "no full answer: {}",
            String::from_utf8_lossy(&got)
        );
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("the connection reads");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Connections that were accepted and served once, and stay open (keep-alive).
async fn hold(server: &Server, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut tcp = TcpStream::connect(addr(server)).await.expect("connects");
        let answer = request(&mut tcp, "/healthz", "}").await;
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "connection {i}: {answer}"
        );
        held.push(tcp);
    }
    held
}

/// A request on a new connection, read to the server's close.
async fn once(server: &Server, path: &str) -> String {
    let mut tcp = TcpStream::connect(addr(server)).await.expect("connects");
    let req = format!("GET {path} HTTP/1.1\r\nhost: taskwire\r\nconnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("sent");
    let mut got = String::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_string(&mut got))
        .await
        .expect("answered and closed in time")
        .expect("reads");
    got
}

fn assert_refused(answer: &str) {
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_lowercase().contains("retry-after: 1\r\n"),
        "{answer}"
    );
    assert!(answer.contains(r#""code":"unavailable""#), "{answer}");
}

/// Polls a new connection until it is served (a held one was closed and its slot freed).
async fn served_again(server: &Server, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = once(server, path).await;
        if answer.starts_with("HTTP/1.1 200") {
            return answer;
        }
        assert!(Instant::now() < deadline, "never served again: {answer}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

#[tokio::test]
async fn beyond_max_connections_a_new_connection_gets_503_and_the_others_go_on() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = Server::start(&db.url, vec![("MAX_CONNECTIONS", "4".into())]).await;
    let mut held = hold(&server, 4).await;

    for _ in 0..3 {
        assert_refused(&once(&server, "/api/tasks").await);
    }
    // The connections already open are served as before.
    let answer = request(&mut held[0], "/api/tasks", "]").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    drop(held.pop());
    let metrics = served_again(&server, "/metrics").await;
    assert!(
        metric(&metrics, "taskwire_connections_refused_total ") >= 3.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "taskwire_connections_open "),
        4.0,
        "{metrics}"
    );
    server.terminate(Duration::from_secs(10)).await;
}

#[tokio::test]
async fn by_default_the_limit_leaves_256_files_of_the_open_file_limit() {
    let db = TestDb::new(Backend::Sqlite).await;
    // With `ulimit -n 300`, the default limit is 44 connections.
    let server = Server::start_with_open_files(&db.url, vec![], Some(300)).await;
    let held = hold(&server, 44).await;
    assert_refused(&once(&server, "/healthz").await);
    drop(held);
    served_again(&server, "/healthz").await;
    let status = server.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn open_websockets_count_towards_max_connections_and_free_their_place_when_they_close() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = Server::start(&db.url, vec![("MAX_CONNECTIONS", "4".into())]).await;
    // Once upgraded, a WebSocket is no longer an HTTP connection of hyper's; it still holds a
    // file descriptor, so it must still take one of the four places.
    let mut sockets = Vec::new();
    for _ in 0..4 {
        sockets.push(common::sio::Client::connect(addr(&server), None).await);
    }
    // Sessions are recounted every 250 ms, so a WebSocket whose session was created after the
    // last count may take that long to be seen.
    let deadline = Instant::now() + Duration::from_secs(5);
    let refusal = loop {
        let answer = once(&server, "/healthz").await;
        if answer.starts_with("HTTP/1.1 503") || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_refused(&refusal);
    let metrics_while_full = {
        sockets.pop().expect("four sockets").close().await;
        served_again(&server, "/metrics").await
    };
    assert_eq!(
        metric(&metrics_while_full, "taskwire_connections_open "),
        4.0,
        "three WebSockets and the connection reading /metrics: {metrics_while_full}"
    );
    for socket in sockets {
        socket.close().await;
    }
    server.terminate(Duration::from_secs(10)).await;
}

/// glibc keeps freed heap; other allocators return it themselves and are not trimmed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test]
async fn after_a_wave_of_closed_connections_the_freed_heap_is_handed_back() {
    let db = TestDb::new(Backend::Sqlite).await;
    let server = Server::start(&db.url, vec![]).await;
    let quiet = once(&server, "/metrics").await;
    assert!(
        !quiet.contains("taskwire_heap_trims_total "),
        "no trim without closed connections: {quiet}"
    );

    // More closed connections than one trim waits for (256).
    for _ in 0..300 {
        let answer = once(&server, "/healthz").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = once(&server, "/metrics").await;
        if metrics.contains("taskwire_heap_trims_total ") {
            assert!(metric(&metrics, "taskwire_heap_trims_total ") >= 1.0);
            break;
        }
        assert!(Instant::now() < deadline, "never trimmed: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.terminate(Duration::from_secs(10)).await;
}

//! Operational behaviour: health, readiness, metrics, CORS, unknown routes, graceful shutdown.

mod common;

use common::{Backend, TestApp};
use serde_json::{Value, json};

#[tokio::test]
async fn health_and_readiness_report_the_database() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = TestApp::spawn(backend).await;
        let health: Value = app
            .http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(health["status"], "ok");
        let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let ready: Value = ready.json().await.unwrap();
        let expected = if backend == Backend::Sqlite {
            "sqlite"
        } else {
            "postgres"
        };
        assert_eq!(ready["database"], expected);
        app.stop().await;
    }
}

#[tokio::test]
async fn metrics_count_requests_by_route_sockets_and_events() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut socket = app.socket().await;
    let task = app.create(json!({"title": "m"})).await;
    socket.next_event().await;
    let missing = app
        .http
        .get(app.url("/api/tasks/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let _ = task;
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for needle in [
        r#"http_requests_total{method="POST",route="/api/tasks",status="201"}"#,
        r#"http_requests_total{method="GET",route="/api/tasks/{id}",status="404"}"#,
        "http_request_duration_seconds_bucket{",
        "socketio_connected_sockets",
        r#"taskwire_events_emitted_total{event="task_created"}"#,
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
    socket.close().await;
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let res = app.http.get(app.url("/api/nothing")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let res = app.http.put(app.url("/api/tasks")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");
    app.stop().await;
}

#[tokio::test]
async fn cors_allows_only_configured_origins() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.frontend_url = vec!["http://app.example".into(), "http://other.example".into()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/tasks"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,if-match")
            .send()
    };
    let ok = preflight("http://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "http://app.example"
    );
    let bad = preflight("http://evil.example").await.unwrap();
    assert!(bad.headers().get("access-control-allow-origin").is_none());

    let polling = app
        .http
        .get(app.url("/socket.io/?EIO=4&transport=polling"))
        .header("origin", "http://other.example")
        .send()
        .await
        .unwrap();
    assert_eq!(polling.status(), 200);
    assert_eq!(
        polling.headers()["access-control-allow-origin"],
        "http://other.example",
        "applies to socket.io too"
    );
    let list = app
        .http
        .get(app.url("/api/tasks"))
        .header("origin", "http://app.example")
        .send()
        .await
        .unwrap();
    let exposed = list.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("x-total-count") && exposed.contains("etag"),
        "{exposed}"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_frontend_url_no_cross_origin_is_allowed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let res = app
        .http
        .get(app.url("/api/tasks"))
        .header("origin", "http://app.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_connected_sockets_and_returns() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut socket = app.socket().await;
    app.create(json!({"title": "before stop"})).await;
    socket.next_event().await;
    // stop() asserts the server returns Ok within 10 s although a socket is still connected.
    let started = std::time::Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn socket_connections_from_foreign_browser_origins_are_refused() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.frontend_url = vec!["http://app.example".into()]
    })
    .await;
    let handshake = |origin: Option<String>| {
        let mut req = app.http.get(app.url("/socket.io/?EIO=4&transport=polling"));
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    assert_eq!(
        handshake(Some("http://evil.example".into()))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        handshake(Some("http://app.example".into()))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        handshake(Some(app.base.clone())).await.unwrap().status(),
        200,
        "same origin"
    );
    assert_eq!(
        handshake(None).await.unwrap().status(),
        200,
        "non-browser clients send no Origin"
    );

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(req).await;
    assert!(
        refused.is_err(),
        "a websocket from a foreign origin is refused"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_request_that_times_out_gets_a_json_408() {
    // A client that trickles its body is the deterministic way to outlive the timeout: a zero
    // timeout races the handler and sometimes loses to a fast query.
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.request_timeout_seconds = 1).await;
    let slow_body = futures::stream::once(async {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        Ok::<_, std::io::Error>(br#"{"title":"late"}"#.to_vec())
    });
    let res = app
        .http
        .post(app.url("/api/tasks"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(slow_body))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 408);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "timeout");
    let listed: Value = app
        .http
        .get(app.url("/api/tasks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]), "a timed-out request writes nothing");
    app.stop().await;
}

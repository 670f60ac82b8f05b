//! The event log and recovery of missed events: sequence numbers on sockets that ask for them,
//! replay on connect and on `sync`, `resync_required`, SSE with Last-Event-ID, retention.

mod common;

use std::time::Duration;

use common::sse::SseReader;
use common::{Backend, TestApp, sio};
use serde_json::{Value, json};

on_both_backends!(
    since_sockets_get_missed_events_then_live_ones_with_seq,
    sync_replays_after_a_position_and_acks_the_count,
    a_pruned_position_gets_resync_required,
    refused_changes_emit_nothing_and_log_nothing,
    sse_replays_after_last_event_id_then_continues_live,
);

async fn seq_of(args: &[Value]) -> i64 {
    assert_eq!(
        args.len(),
        2,
        "opted-in sockets get two arguments: {args:?}"
    );
    args[1]["seq"].as_i64().expect("seq")
}

async fn since_sockets_get_missed_events_then_live_ones_with_seq(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let t = app.create(json!({"title": "one"})).await;
    let id = t["id"].as_str().unwrap();
    app.patch(id, json!({"title": "two"})).await;
    app.patch(id, json!({"title": "three"})).await;

    let mut plain = app.socket().await;
    let mut resumed = sio::Client::connect(app.addr, Some(json!({"since": 1}))).await;
    for expected in [2, 3] {
        let (name, args) = resumed.next_event().await;
        assert_eq!(name, "task_updated");
        assert_eq!(seq_of(&args).await, expected);
        assert_eq!(args[1]["type"], "task_updated");
        assert!(args[1]["at"].as_str().unwrap().ends_with('Z'));
    }
    app.patch(id, json!({"title": "four"})).await;
    let (_, args) = resumed.next_event().await;
    assert_eq!(
        (seq_of(&args).await, args[0]["title"].as_str()),
        (4, Some("four"))
    );
    let (_, args) = plain.next_event().await;
    assert_eq!(args.len(), 1, "plain sockets keep one argument");
    assert!(
        resumed
            .next_event_within(Duration::from_millis(300))
            .await
            .is_none(),
        "no duplicates"
    );

    let mut fresh = sio::Client::connect(app.addr, Some(json!({"since": 0}))).await;
    let mut seqs = Vec::new();
    for _ in 0..4 {
        seqs.push(seq_of(&fresh.next_event().await.1).await);
    }
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    for s in [plain, resumed, fresh] {
        s.close().await;
    }
    app.stop().await;
}

async fn sync_replays_after_a_position_and_acks_the_count(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut s = sio::Client::connect(app.addr, Some(json!({"since": 0}))).await;
    for i in 0..5 {
        app.create(json!({"title": format!("t{i}")})).await;
    }
    for expected in 1..=5 {
        assert_eq!(seq_of(&s.next_event().await.1).await, expected);
    }
    let ack = s.call("sync", json!({"since": 2})).await;
    assert_eq!(ack, json!({"ok": true, "replayed": 3}));
    let mut replayed = Vec::new();
    for _ in 0..3 {
        replayed.push(seq_of(&s.next_event().await.1).await);
    }
    assert_eq!(replayed, vec![3, 4, 5]);
    app.create(json!({"title": "live"})).await;
    assert_eq!(
        seq_of(&s.next_event().await.1).await,
        6,
        "live delivery continues after sync"
    );
    assert!(
        s.next_event_within(Duration::from_millis(300))
            .await
            .is_none()
    );

    let bad = s.call("sync", json!({"since": "x"})).await;
    assert_eq!(bad["error"]["code"], "validation_failed");
    s.close().await;
    app.stop().await;
}

async fn a_pruned_position_gets_resync_required(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..6 {
        app.create(json!({"title": format!("t{i}")})).await;
    }
    let store = app.store().await;
    let pruned = store
        .prune_events(Some(chrono::Utc::now() - chrono::Duration::days(1)), 2)
        .await
        .unwrap();
    assert_eq!(pruned, 4, "all but the last two are gone");

    let mut s = sio::Client::connect(app.addr, Some(json!({"since": 1}))).await;
    let (name, args) = s.next_event().await;
    assert_eq!(name, "resync_required");
    assert_eq!(
        args[0],
        json!({"type": "resync_required", "since": 1, "latest": 6})
    );
    app.create(json!({"title": "after"})).await;
    assert_eq!(
        seq_of(&s.next_event().await.1).await,
        7,
        "live after resync"
    );

    let ack = s.call("sync", json!({"since": 2})).await;
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["error"]["code"], "resync_required");
    let ok = s.call("sync", json!({"since": 4})).await;
    assert_eq!(
        ok,
        json!({"ok": true, "replayed": 3}),
        "5, 6 and 7 are still kept"
    );

    let mut future = sio::Client::connect(app.addr, Some(json!({"since": 99}))).await;
    assert_eq!(
        future.next_event().await.0,
        "resync_required",
        "a position ahead of the log is refused too"
    );
    store.close().await;
    s.close().await;
    future.close().await;
    app.stop().await;
}

async fn refused_changes_emit_nothing_and_log_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Connected first, so the create's own event (fanned out after the REST reply) is
    // consumed here and cannot be mistaken for one caused by a refused change.
    let mut s = app.socket().await;
    let t = app.create(json!({"title": "x"})).await;
    let id = t["id"].as_str().unwrap();
    assert_eq!(s.next_event().await.0, "task_created");
    let url = app.url(&format!("/api/tasks/{id}"));
    let stale = app
        .http
        .patch(&url)
        .header("if-match", "\"9\"")
        .json(&json!({"title": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let invalid = app.patch(id, json!({"status": "nope"})).await;
    assert_eq!(invalid.status(), 422);
    let gone = app
        .http
        .delete(app.url(&format!("/api/tasks/{}", uuid::Uuid::now_v7())))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    assert!(
        s.next_event_within(Duration::from_millis(400))
            .await
            .is_none(),
        "refused changes emit nothing"
    );
    let store = app.store().await;
    let log = store.events_after("default", 0, 100).await.unwrap();
    assert_eq!(log.len(), 1, "only the create is logged");
    assert_eq!(
        store.log_bounds("default").await.unwrap(),
        (Some(1), 1),
        "the sequence did not move"
    );
    app.patch(id, json!({"title": "z"})).await;
    let log = store.events_after("default", 0, 100).await.unwrap();
    assert_eq!(
        log.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2],
        "no gap after refused changes"
    );
    store.close().await;
    s.close().await;
    app.stop().await;
}

async fn sse_replays_after_last_event_id_then_continues_live(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..3 {
        app.create(json!({"title": format!("t{i}")})).await;
    }
    let res = app
        .http
        .get(app.url("/api/tasks/stream"))
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    assert_eq!(res.headers()["x-accel-buffering"], "no");
    let mut sse = SseReader::new(res);
    let first = sse.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(first.retry, Some(3000));
    for expected in ["2", "3"] {
        let ev = sse.next_within(Duration::from_secs(5)).await.unwrap();
        assert_eq!(ev.id.as_deref(), Some(expected));
        assert_eq!(
            ev.event, None,
            "unnamed by default, so EventSource.onmessage gets it"
        );
        let data: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(data["type"], "task_created");
    }
    let live = app.create(json!({"title": "live"})).await;
    let ev = sse.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(ev.id.as_deref(), Some("4"));
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(data["task"], live);

    let named = app
        .http
        .get(app.url("/task_updates?named=1&lastEventId=3"))
        .send()
        .await
        .unwrap();
    let mut named = SseReader::new(named);
    named.next_within(Duration::from_secs(5)).await.unwrap();
    let ev = named.next_within(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        (ev.id.as_deref(), ev.event.as_deref()),
        (Some("4"), Some("task_created"))
    );

    let old = app
        .http
        .get(app.url("/api/tasks/stream?lastEventId=77"))
        .send()
        .await
        .unwrap();
    let mut old = SseReader::new(old);
    old.next_within(Duration::from_secs(5)).await.unwrap();
    let ev = old.next_within(Duration::from_secs(5)).await.unwrap();
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(
        data,
        json!({"type": "resync_required", "since": 77, "latest": 4})
    );

    let bad = app
        .http
        .get(app.url("/api/tasks/stream?lastEventId=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    app.stop().await;
}

#[tokio::test]
async fn sse_streams_end_when_the_server_shuts_down() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let res = app
        .http
        .get(app.url("/api/tasks/stream"))
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(res);
    sse.next_within(Duration::from_secs(5)).await.unwrap();
    let stopping = tokio::spawn(app.stop());
    assert!(
        sse.next_within(Duration::from_secs(8)).await.is_none(),
        "the stream ends"
    );
    stopping.await.unwrap();
}

#[tokio::test]
async fn sse_keep_alive_comments_flow_on_an_idle_stream() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| s.sse_keepalive_seconds = 1).await;
    let res = app
        .http
        .get(app.url("/api/tasks/stream"))
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    use futures::StreamExt;
    while tokio::time::Instant::now() < deadline && !seen.contains("\n:") && !seen.starts_with(':')
    {
        if let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_secs(3), body.next()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(
        seen.lines().any(|l| l.starts_with(':')),
        "a keep-alive comment within ~1 s: {seen:?}"
    );
    drop(body);
    app.stop().await;
}

#[tokio::test]
async fn retention_prunes_by_age_and_by_count_per_workspace() {
    let db = common::TestDb::new(Backend::Sqlite).await;
    let store = taskwire::store::connect(&db.url, 2).await.unwrap();
    let mut settings = common::settings_for(&db);
    let mut app = taskwire::Taskwire::with_store(settings.clone(), store.clone())
        .await
        .unwrap();
    let actor = taskwire::domain::task::Actor::anonymous();
    for i in 0..10 {
        app.service()
            .create(&actor, &json!({"title": format!("t{i}")}))
            .await
            .unwrap();
    }
    settings.event_retention_count = 4;
    taskwire::store::retention::prune_once(&store, &settings).await;
    assert_eq!(store.log_bounds("default").await.unwrap(), (Some(7), 10));
    settings.event_retention_seconds = 0;
    tokio::time::sleep(Duration::from_millis(20)).await;
    taskwire::store::retention::prune_once(&store, &settings).await;
    assert_eq!(
        store.log_bounds("default").await.unwrap(),
        (None, 10),
        "latest seq survives pruning"
    );
    let _ = app.router();
    app.shutdown().await;
}

/// Shutdown closes Socket.IO before in-flight requests finish; a change committed then must
/// neither stop the fan-out (socketioxide panics on a closed default namespace) nor be lost
/// for the other transports: an open SSE stream still gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_committed_after_socketio_closed_still_reaches_sse() {
    let db = common::TestDb::new(Backend::Sqlite).await;
    let mut app = taskwire::Taskwire::new(common::settings_for(&db))
        .await
        .unwrap();
    let router = app.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let mut stream = reqwest::get(format!("{base}/api/tasks/stream"))
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    app.socket_closer().close().await;
    let actor = taskwire::domain::task::Actor::anonymous();
    let task = app
        .service()
        .create(&actor, &json!({"title": "after close"}))
        .await
        .unwrap();

    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(&task.id.to_string()) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!(
                "no SSE event for the change after Socket.IO closed: {other:?}, saw {seen:?}"
            ),
        }
    }
    server.abort();
    app.shutdown().await;
}

//! Socket.IO delivery and commands, end to end through the real app, on SQLite and Postgres.

mod common;

use std::time::Duration;

use common::{Backend, TestApp};
use serde_json::{Value, json};

on_both_backends!(
    rest_changes_reach_every_socket_once_as_one_argument,
    socket_commands_ack_with_the_task_and_reach_other_sockets,
    malformed_socket_commands_get_error_acks_and_keep_the_connection,
    events_arrive_in_commit_order_under_concurrent_writers,
);

async fn rest_changes_reach_every_socket_once_as_one_argument(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut sockets = Vec::new();
    for _ in 0..3 {
        sockets.push(app.socket().await);
    }
    let created = app.create(json!({"title": "live"})).await;
    let id = created["id"].as_str().unwrap();
    let updated: Value = app
        .patch(id, json!({"status": "completed"}))
        .await
        .json()
        .await
        .unwrap();
    let res = app
        .http
        .delete(app.url(&format!("/api/tasks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    for socket in &mut sockets {
        assert_eq!(
            socket.next_event().await,
            ("task_created".to_owned(), vec![created.clone()])
        );
        assert_eq!(
            socket.next_event().await,
            ("task_updated".to_owned(), vec![updated.clone()])
        );
        assert_eq!(
            socket.next_event().await,
            ("task_deleted".to_owned(), vec![updated.clone()]),
            "delete carries the task as it was"
        );
        assert!(
            socket
                .next_event_within(Duration::from_millis(300))
                .await
                .is_none(),
            "each change is delivered once"
        );
    }
    for s in sockets {
        s.close().await;
    }
    app.stop().await;
}

async fn socket_commands_ack_with_the_task_and_reach_other_sockets(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut a = app.socket().await;
    let mut b = app.socket().await;

    let ack = a
        .call(
            "create_task",
            json!({"title": "from socket", "status": "in-progress"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let task = ack["task"].clone();
    assert_eq!(
        (
            task["title"].as_str(),
            task["status"].as_str(),
            task["version"].as_i64()
        ),
        (Some("from socket"), Some("in_progress"), Some(1))
    );
    assert_eq!(
        b.next_event().await,
        ("task_created".to_owned(), vec![task.clone()])
    );
    assert_eq!(
        a.next_event().await.0,
        "task_created",
        "the sender gets the event too"
    );

    let id = task["id"].as_str().unwrap();
    let ack = a
        .call("update_task", json!({"id": id, "title": "renamed"}))
        .await;
    assert_eq!(
        (
            ack["ok"].as_bool(),
            ack["task"]["title"].as_str(),
            ack["task"]["version"].as_i64()
        ),
        (Some(true), Some("renamed"), Some(2))
    );
    assert_eq!(
        b.next_event().await,
        ("task_updated".to_owned(), vec![ack["task"].clone()])
    );
    let over_rest: Value = app
        .http
        .get(app.url(&format!("/api/tasks/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        over_rest, ack["task"],
        "the socket change is visible over REST"
    );

    let ack = a.call("delete_task", json!({"id": id})).await;
    assert_eq!(
        (ack["ok"].as_bool(), ack["task"]["id"].as_str()),
        (Some(true), Some(id))
    );
    assert_eq!(b.next_event().await.0, "task_deleted");
    let gone = app
        .http
        .get(app.url(&format!("/api/tasks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    a.close().await;
    b.close().await;
    app.stop().await;
}

async fn malformed_socket_commands_get_error_acks_and_keep_the_connection(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let existing = app.create(json!({"title": "keep"})).await;
    let before = app.all_tasks().await;
    let mut s = app.socket().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let cases: Vec<(&str, Vec<Value>, &str, Option<&str>)> = vec![
        ("create_task", vec![], "validation_failed", None),
        (
            "create_task",
            vec![json!(5)],
            "validation_failed",
            Some("body"),
        ),
        (
            "create_task",
            vec![json!("title")],
            "validation_failed",
            Some("body"),
        ),
        (
            "create_task",
            vec![json!([1, 2])],
            "validation_failed",
            Some("body"),
        ),
        (
            "create_task",
            vec![json!({})],
            "validation_failed",
            Some("title"),
        ),
        (
            "create_task",
            vec![json!({"title": "  "})],
            "validation_failed",
            Some("title"),
        ),
        (
            "create_task",
            vec![json!({"title": "x".repeat(501)})],
            "validation_failed",
            Some("title"),
        ),
        (
            "create_task",
            vec![json!({"title": "x", "status": "done"})],
            "validation_failed",
            Some("status"),
        ),
        (
            "update_task",
            vec![json!({})],
            "validation_failed",
            Some("id"),
        ),
        (
            "update_task",
            vec![json!({"id": 5})],
            "validation_failed",
            Some("id"),
        ),
        (
            "update_task",
            vec![json!({"id": "nope", "title": "x"})],
            "not_found",
            None,
        ),
        (
            "update_task",
            vec![json!({"id": unknown, "title": "x"})],
            "not_found",
            None,
        ),
        (
            "update_task",
            vec![json!({"id": existing["id"], "title": 7})],
            "validation_failed",
            Some("title"),
        ),
        ("delete_task", vec![json!(null)], "validation_failed", None),
        (
            "delete_task",
            vec![json!({"id": unknown})],
            "not_found",
            None,
        ),
    ];
    for (event, args, code, field) in cases {
        let ack = s.call_raw(event, &args).await;
        assert_eq!(ack.len(), 1, "{event} {args:?}");
        let ack = &ack[0];
        assert_eq!(ack["ok"], false, "{event} {args:?}: {ack}");
        assert_eq!(ack["error"]["code"], code, "{event} {args:?}: {ack}");
        if let Some(field) = field {
            assert!(
                ack["error"]["message"].as_str().unwrap().contains(field),
                "{event} {args:?}: {ack}"
            );
        }
    }
    assert_eq!(
        app.all_tasks().await,
        before,
        "no bad command changed anything"
    );
    let ack = s
        .call("create_task", json!({"title": "still connected"}))
        .await;
    assert_eq!(
        ack["ok"], true,
        "the socket still works after bad commands: {ack}"
    );
    s.close().await;
    app.stop().await;
}

async fn events_arrive_in_commit_order_under_concurrent_writers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut s = app.socket().await;
    let n = 40;
    let mut handles = Vec::new();
    for i in 0..n {
        let (http, url) = (app.http.clone(), app.url("/api/tasks"));
        handles.push(tokio::spawn(async move {
            let res = http
                .post(url)
                .json(&json!({"title": format!("t{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 201);
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..n {
        let (name, args) = s.next_event().await;
        assert_eq!(name, "task_created");
        seen.push(args[0]["id"].as_str().unwrap().to_owned());
    }
    assert!(
        s.next_event_within(Duration::from_millis(300))
            .await
            .is_none(),
        "no duplicates"
    );

    let store = app.store().await;
    let log = store.events_after("default", 0, 1000).await.unwrap();
    let seqs: Vec<i64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=n as i64).collect::<Vec<_>>(), "gapless sequence");
    let logged: Vec<String> = log.iter().map(|e| e.task.id.to_string()).collect();
    assert_eq!(seen, logged, "socket order is commit (seq) order");
    store.close().await;
    s.close().await;
    app.stop().await;
}

//! Several processes on one Postgres database and one Redis: what a change made on one does
//! on the others (events in `seq` order, `job_progress`, presence), and what is refused.
//! Broader multi-process runs with real socket.io clients and nginx live in
//! `tests/clients/cluster.test.mjs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::sio::Client;
use common::{Backend, TestApp, TestDb};
use serde_json::{Value, json};

/// The Redis every test shares, each under a prefix of its own.
fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Two apps on one new Postgres database and one new Redis prefix.
async fn two_processes() -> (TestApp, TestApp) {
    let db = TestDb::new(Backend::Postgres).await;
    let prefix = format!("taskwire-test-{}", uuid::Uuid::now_v7().simple());
    let cluster = |s: &mut taskwire::Settings| {
        s.redis_url = Some(redis_url().parse().expect("a URL"));
        s.redis_prefix = prefix.clone();
    };
    let second = db.shared();
    let a = TestApp::spawn_on(db, Arc::new(tempfile::tempdir().unwrap()), cluster, |_| {}).await;
    let b = TestApp::spawn_on(second, Arc::new(tempfile::tempdir().unwrap()), cluster, |_| {})
        .await;
    (a, b)
}

/// The next event called `name` on `client`, skipping others.
async fn next_named(client: &mut Client, name: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.next_event_within(left).await {
            Some((event, args)) if event == name => return args,
            Some(_) => {}
            None => panic!("no {name} within 10 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_on_one_process_reach_the_sockets_of_another_in_order() {
    let (a, b) = two_processes().await;
    let mut on_b = Client::connect(b.addr, Some(json!({"since": 0}))).await;
    let task = a.create(json!({"title": "made on A"})).await;
    let id = task["id"].as_str().unwrap();
    for i in 0..20 {
        assert_eq!(a.patch(id, json!({"description": format!("edit {i}")})).await.status(), 200);
    }
    let created = next_named(&mut on_b, "task_created").await;
    assert_eq!(created[0]["id"], task["id"]);
    assert_eq!(created[1]["seq"], 1);
    for seq in 2..=21 {
        let updated = next_named(&mut on_b, "task_updated").await;
        assert_eq!(updated[1]["seq"], seq, "in seq order, each once");
        assert_eq!(updated[0]["description"], format!("edit {}", seq - 2));
    }
    // The last change before a quiet period arrives too.
    assert_eq!(a.patch(id, json!({"title": "last before lunch"})).await.status(), 200);
    let last = next_named(&mut on_b, "task_updated").await;
    assert_eq!(last[0]["title"], "last before lunch");
    assert!(
        on_b.next_event_within(Duration::from_millis(1500)).await.is_none(),
        "nothing is delivered twice"
    );
    on_b.close().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_job_progress_span_processes() {
    let (a, b) = two_processes().await;
    let task = a.create(json!({"title": "watched"})).await;
    let id = task["id"].as_str().unwrap().to_owned();
    let mut on_a = Client::connect(a.addr, None).await;
    let mut on_b = Client::connect(b.addr, None).await;
    let joined = on_a.call("join-task", json!(id)).await;
    assert_eq!(joined["count"], 1, "{joined}");
    let joined = on_b.call("join-task", json!(id)).await;
    // Both sockets are anonymous (auth off): one user, in the room from two processes.
    assert_eq!(joined["count"], 1, "{joined}");
    let presence = next_named(&mut on_a, "presence").await;
    assert_eq!(presence[0]["taskId"], json!(id), "A's room hears of B's join");
    let stats = b.get_json("/api/tasks/socket/stats").await;
    assert_eq!(stats["data"]["totalRooms"], 1, "{stats}");
    assert_eq!(stats["data"]["userRooms"]["anonymous"], json!([id]), "{stats}");

    let res = a
        .http
        .post(a.url("/api/jobs"))
        .json(&json!({"kind": "export", "params": {"format": "json"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    loop {
        let job = next_named(&mut on_b, "job_progress").await;
        if job[0]["state"] == "succeeded" {
            break;
        }
    }
    on_a.close().await;
    on_b.close().await;
    b.stop().await;
    a.stop().await;
}

#[tokio::test]
async fn redis_with_a_sqlite_database_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .env("PORT", "0")
        .env("DATABASE_URL", format!("sqlite://{}/t.db", dir.path().display()))
        .env("REDIS_URL", "redis://:hunter2@127.0.0.1:6379")
        .output()
        .expect("the binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("REDIS_URL"), "{stderr}");
    assert!(stderr.contains("PostgreSQL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "never the password: {stderr}");
    assert!(
        !dir.path().join("t.db").exists(),
        "nothing is created for a refused start"
    );
}

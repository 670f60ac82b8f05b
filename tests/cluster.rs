//! Several processes on one Postgres database and one Redis: what a change made on one does
//! on the others (events in `seq` order, `job_progress`, presence), and what is refused.
//! Broader multi-process runs with real socket.io clients and nginx live in
//! `tests/clients/cluster.test.mjs`.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::process::Server;
use common::sio::Client;
use common::webhook::Receiver;
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
    let b = TestApp::spawn_on(
        second,
        Arc::new(tempfile::tempdir().unwrap()),
        cluster,
        |_| {},
    )
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
        assert_eq!(
            a.patch(id, json!({"description": format!("edit {i}")}))
                .await
                .status(),
            200
        );
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
    assert_eq!(
        a.patch(id, json!({"title": "last before lunch"}))
            .await
            .status(),
        200
    );
    let last = next_named(&mut on_b, "task_updated").await;
    assert_eq!(last[0]["title"], "last before lunch");
    assert!(
        on_b.next_event_within(Duration::from_millis(1500))
            .await
            .is_none(),
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
    assert_eq!(
        presence[0]["taskId"],
        json!(id),
        "A's room hears of B's join"
    );
    let stats = b.get_json("/api/tasks/socket/stats").await;
    assert_eq!(stats["data"]["totalRooms"], 1, "{stats}");
    assert_eq!(
        stats["data"]["userRooms"]["anonymous"],
        json!([id]),
        "{stats}"
    );

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
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/t.db", dir.path().display()),
        )
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

async fn json_of(res: reqwest::Response) -> Value {
    res.json().await.expect("a JSON body")
}

/// With the default lease (`NOTIFY_LEASE_SECONDS` 60) and job heartbeat (10 s): a process
/// killed with deliveries in flight and a job running leaves both to the process that lives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_process_leaves_its_deliveries_and_its_job_to_the_others() {
    let db = TestDb::new(Backend::Postgres).await;
    let prefix = format!("taskwire-test-{}", uuid::Uuid::now_v7().simple());
    let receiver = Receiver::start_holding_first().await;
    let files = tempfile::tempdir().unwrap();
    let env = |name: &str| {
        vec![
            ("REDIS_URL", redis_url()),
            ("REDIS_PREFIX", prefix.clone()),
            ("WEBHOOK_URL", receiver.url()),
            (
                "JOB_RESULT_DIR",
                files.path().join(name).display().to_string(),
            ),
        ]
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let a = Server::start(&db.url, env("a")).await;

    let mut csv = String::from("title\n");
    for i in 0..5000 {
        csv.push_str(&format!("task {i}\n"));
    }
    let submit = |body: Value| {
        let (http, url) = (http.clone(), a.url("/api/jobs"));
        async move {
            let res = http.post(url).json(&body).send().await.unwrap();
            assert_eq!(res.status(), 202);
            json_of(res).await["id"].as_str().unwrap().to_owned()
        }
    };
    let job = |server: &Server, id: &str| {
        let (http, url) = (http.clone(), server.url(&format!("/api/jobs/{id}")));
        async move { json_of(http.get(url).send().await.unwrap()).await }
    };
    let import = submit(json!({"kind": "import", "params": {"format": "csv", "data": csv}})).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while job(&a, &import).await["state"] != "succeeded" {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the import finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bulk = submit(json!({"kind": "bulk_update",
        "params": {"filter": {}, "patch": {"status": "completed"}}}))
    .await;
    loop {
        let current = job(&a, &bulk).await;
        assert!(
            matches!(current["state"].as_str(), Some("queued" | "running")),
            "killed while it runs: {current}"
        );
        if current["progress"]["done"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The import's summary is in flight at the receiver, which holds first deliveries.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while receiver.hits() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "a delivery started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = Server::start(&db.url, env("b")).await;
    a.kill9();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(50);
    let after = loop {
        let current = job(&b, &bulk).await;
        if current["state"] != "running" {
            break current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still running on a dead process: {current}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(after["state"], "interrupted", "{after}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let outbox = loop {
        let all = json_of(http.get(b.url("/api/notifications")).send().await.unwrap()).await;
        let rows = all.as_array().cloned().unwrap_or_default();
        if !rows.is_empty() && rows.iter().all(|n| n["status"] == "delivered") {
            break rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries left by the killed process were not taken over: {all}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let ids = receiver.ids();
    for n in &outbox {
        let id = n["id"].as_str().unwrap();
        let times = ids.iter().filter(|seen| *seen == id).count();
        assert!(times >= 1, "{id} reached the receiver");
    }
    let held = ids.first().unwrap();
    assert_eq!(
        ids.iter().filter(|seen| *seen == held).count(),
        2,
        "the delivery cut short is sent again with the same webhook-id, once"
    );
    drop(b);
    db.drop_database().await;
}

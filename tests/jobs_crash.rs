//! `kill -9` of the real binary while a bulk update runs, with the default job heartbeat:
//! after a restart the job is `interrupted` (at once on SQLite, never `running` forever), every
//! batch it committed is whole, and every committed change has its event in the log.

mod common;

use std::time::{Duration, Instant};

use common::process::Server;
use common::{Backend, TestDb};
use serde_json::{Value, json};

const TASKS: usize = 8000;

async fn start_server(db: &TestDb, results: &std::path::Path) -> Server {
    Server::start(
        &db.url,
        vec![
            ("JOB_RESULT_DIR", results.display().to_string()),
            ("REST_RATE_LIMIT", "0".to_owned()),
        ],
    )
    .await
}

async fn job(http: &reqwest::Client, base: &str, id: &str) -> Value {
    http.get(format!("{base}/api/jobs/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn submit(http: &reqwest::Client, base: &str, body: Value) -> String {
    let res = http
        .post(format!("{base}/api/jobs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let job: Value = res.json().await.unwrap();
    job["id"].as_str().unwrap().to_owned()
}

async fn a_killed_server_leaves_no_job_running(backend: Backend) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::new(backend).await;
    let files = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let server = start_server(&db, files.path()).await;

    let mut csv = String::from("title\n");
    for i in 0..TASKS {
        csv.push_str(&format!("task {i}\n"));
    }
    let import = submit(
        &http,
        &server.base,
        json!({"kind": "import", "params": {"format": "csv", "data": csv}}),
    )
    .await;
    let start = Instant::now();
    while job(&http, &server.base, &import).await["state"] != "succeeded" {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "import finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let bulk = submit(
        &http,
        &server.base,
        json!({"kind": "bulk_update", "params": {"filter": {}, "patch": {"status": "completed"}}}),
    )
    .await;
    let start = Instant::now();
    loop {
        let current = job(&http, &server.base, &bulk).await;
        assert!(
            matches!(current["state"].as_str(), Some("queued" | "running")),
            "killed while it runs: {current}"
        );
        if current["progress"]["done"].as_i64().unwrap() > 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();

    let server = start_server(&db, files.path()).await;
    let start = Instant::now();
    // With the default heartbeat (10 s): SQLite has one process, so the restart itself
    // recovers the job; Postgres waits for the dead process's claim to run out (3 heartbeats,
    // 30 s), as another live process may still hold it.
    let limit = match backend {
        Backend::Sqlite => Duration::from_secs(3),
        Backend::Postgres => Duration::from_secs(50),
    };
    let after = loop {
        let current = job(&http, &server.base, &bulk).await;
        if current["state"] != "running" {
            break current;
        }
        assert!(
            start.elapsed() < limit,
            "still running {:?} after the restart: {current}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(after["state"], "interrupted", "{after}");
    assert_eq!(after["error"]["code"], "interrupted");

    let done: Value = http
        .get(format!(
            "{}/api/tasks?status=completed&limit=0",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .headers()["x-total-count"]
        .to_str()
        .unwrap()
        .parse::<i64>()
        .map(Value::from)
        .unwrap();
    let done = done.as_i64().unwrap();
    assert!(done > 0 && done < TASKS as i64, "cut short: {done}");
    let store = taskwire::store::connect(&db.url, 2).await.unwrap();
    let events = store
        .events_after("default", TASKS as i64, 100_000)
        .await
        .unwrap();
    assert_eq!(
        events.len() as i64,
        done,
        "every committed change has its event"
    );
    store.close().await;

    server.kill9();
    db.drop_database().await;
}

on_both_backends!(a_killed_server_leaves_no_job_running);

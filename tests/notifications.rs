//! Notifications with real peers, no mocks: a webhook receiver (an axum server on loopback that
//! checks the Standard Webhooks signature with its own HMAC) and an SMTP server
//! (`mailin-embedded`) in the test, the app in-process or as the real binary (crash and
//! shutdown tests). Outbox state is read through the store, except in the API test.

mod common;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::process::Server;
use common::smtp::parse_mail;
use common::{Backend, TestApp, TestDb};
use futures::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::Sha256;
use taskwire::Settings;
use taskwire::domain::notification::{Attempt, Channel, Notification, Status};
use taskwire::store::Store;
use tokio::sync::watch;

on_both_backends!(
    every_change_is_delivered_once_per_url_and_signed,
    failures_are_retried_or_dead_as_the_receiver_says,
    e_mail_goes_to_the_right_person_over_real_smtp,
    a_slow_receiver_never_blocks_requests,
    changes_that_do_not_commit_notify_nobody,
    nothing_is_lost_when_the_process_is_killed,
    api_lists_shows_and_retries_notifications,
    a_job_sends_one_summary_instead_of_one_per_task,
);

/// The raw webhook signing key; `WEBHOOK_SECRET` is `whsec_` + its base64.
const KEY: &[u8] = b"taskwire notification test key!!";
const JWT: &str = "notification-test-jwt-secret";
const DEFAULT_WS: &str = "default";

fn webhook_secret() -> String {
    format!("whsec_{}", STANDARD.encode(KEY))
}

/// Webhooks to `urls`, signed, retried after ~1 s.
fn webhooks(s: &mut Settings, urls: &[String]) {
    s.webhook_url = urls.to_vec();
    s.webhook_secret = Some(webhook_secret().parse().unwrap());
    s.notify_backoff_seconds = vec![1];
    s.notify_poll_seconds = 1;
}

fn token(sub: &str, workspace: &str, name: &str, email: &str) -> String {
    let claims = json!({
        "sub": sub,
        "exp": jsonwebtoken::get_current_timestamp() + 600,
        "workspace": workspace,
        "name": name,
        "email": email,
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(JWT.as_bytes()),
    )
    .unwrap()
}

/// Polls `probe` every 50 ms until it yields a value; fails the test after `limit`.
async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn outbox_rows(store: &Arc<dyn Store>, workspace: &str) -> Vec<Notification> {
    store
        .outbox()
        .list_notifications(workspace, None, None, 100_000)
        .await
        .expect("outbox lists")
}

async fn attempts_log(store: &Arc<dyn Store>, workspace: &str, n: &Notification) -> Vec<Attempt> {
    store
        .outbox()
        .get_notification(workspace, n.id)
        .await
        .expect("outbox reads")
        .expect("notification exists")
        .1
}

fn is_final(n: &Notification) -> bool {
    matches!(n.status, Status::Delivered | Status::Dead)
}

/// Waits until the workspace holds `count` notifications, all delivered or dead.
async fn all_final(
    store: &Arc<dyn Store>,
    workspace: &str,
    count: usize,
    limit: Duration,
) -> Vec<Notification> {
    let deadline = Instant::now() + limit;
    loop {
        let rows = outbox_rows(store, workspace).await;
        if rows.len() == count && rows.iter().all(is_final) {
            return rows;
        }
        if Instant::now() >= deadline {
            let states: Vec<String> = rows
                .iter()
                .filter(|n| !is_final(n))
                .take(10)
                .map(|n| {
                    format!(
                        "{} {} {:?} attempts={} error={:?}",
                        n.target, n.event_type, n.status, n.attempts, n.last_error
                    )
                })
                .collect();
            panic!(
                "timed out after {limit:?} waiting for {count} notifications delivered or dead; \
                 {} rows, not final: {states:#?}",
                rows.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client for the test's own requests (reqwest here has no default TLS provider; the app
/// installs one when it builds, a test that only runs the binary must do it itself).
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

// ---------------------------------------------------------------------------------------------
// The webhook receiver: a real HTTP server with a scripted answer per request.

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    id: String,
    body: Value,
    at: Instant,
    /// What was wrong with its method, headers, signature or body; empty when all is well.
    problems: Vec<String>,
}

/// The receiver's answer to one request.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
}

impl Reply {
    fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Decides the answer from the request path and how many requests that path has had (1-based).
type Script = Arc<dyn Fn(&str, usize) -> Reply + Send + Sync>;

struct ReceiverState {
    script: Script,
    hits: Mutex<Vec<Hit>>,
    answered: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Requests wait while this is false.
    gate: watch::Sender<bool>,
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    state: Arc<ReceiverState>,
}

fn script(f: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Script {
    Arc::new(f)
}

fn always_ok() -> Script {
    script(|_, _| Reply::status(200))
}

impl Receiver {
    async fn start(script: Script) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, script)
    }

    async fn start_on(port: u16, script: Script) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the receiver's port is free again");
        Self::serve(listener, script)
    }

    fn serve(listener: tokio::net::TcpListener, script: Script) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ReceiverState {
            script,
            hits: Mutex::new(Vec::new()),
            answered: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            gate: watch::Sender::new(true),
        });
        let app = Router::new().fallback(receive).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    fn hits_on(&self, path: &str) -> Vec<Hit> {
        self.hits().into_iter().filter(|h| h.path == path).collect()
    }

    fn answered(&self) -> usize {
        self.state.answered.load(Ordering::SeqCst)
    }

    fn set_gate(&self, open: bool) {
        self.state.gate.send_replace(open);
    }
}

/// Counts a request in flight until its handler ends or is dropped.
struct InFlight(Arc<ReceiverState>);

impl InFlight {
    fn enter(state: &Arc<ReceiverState>) -> InFlight {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hit = inspect(&method, uri.path(), &headers, &body);
    let path = hit.path.clone();
    let nth = {
        let mut hits = state.hits.lock().unwrap();
        hits.push(hit);
        hits.iter().filter(|h| h.path == path).count()
    };
    let reply = (state.script)(&path, nth);
    let _flight = InFlight::enter(&state);
    let mut gate = state.gate.subscribe();
    let _ = gate.wait_for(|open| *open).await;
    tokio::time::sleep(reply.delay).await;
    state.answered.fetch_add(1, Ordering::SeqCst);
    let mut response = StatusCode::from_u16(reply.status).unwrap().into_response();
    for (name, value) in reply.headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

/// The Standard Webhooks signature, computed here independently of taskwire's code.
fn expected_signature(id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Checks everything a receiver should check and records what was wrong.
fn inspect(method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Hit {
    let mut problems = Vec::new();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    if method != Method::POST {
        problems.push(format!("method {method}"));
    }
    let id = header("webhook-id");
    if uuid::Uuid::parse_str(&id).is_err() {
        problems.push(format!("webhook-id {id:?} is not the notification's uuid"));
    }
    let timestamp = header("webhook-timestamp");
    match timestamp.parse::<i64>() {
        Ok(ts) if (chrono::Utc::now().timestamp() - ts).abs() <= 300 => {}
        _ => problems.push(format!("webhook-timestamp {timestamp:?} is not now")),
    }
    let signature = header("webhook-signature");
    let expected = expected_signature(&id, &timestamp, body);
    if !signature.split(' ').any(|s| s == expected) {
        problems.push(format!("webhook-signature {signature:?} != {expected:?}"));
    }
    if !header("content-type").starts_with("application/json") {
        problems.push(format!("content-type {:?}", header("content-type")));
    }
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let kind = body["type"].as_str().unwrap_or("");
    let summary = ["tasks.bulk_updated", "tasks.imported"].contains(&kind);
    if !summary && !["task.created", "task.updated", "task.deleted"].contains(&kind) {
        problems.push(format!("type {:?}", body["type"]));
    }
    if body["timestamp"]
        .as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_none()
    {
        problems.push(format!("timestamp {:?}", body["timestamp"]));
    }
    if summary && !body["data"]["job_id"].is_string() {
        problems.push("a job summary names its job".into());
    }
    if !summary && !body["data"]["task"]["id"].is_string() {
        problems.push("data.task is not a task".into());
    }
    let previous = &body["data"]["previous"];
    let previous_ok = match kind {
        "task.created" => previous.is_null(),
        _ => previous["id"] == body["data"]["task"]["id"],
    };
    if !previous_ok {
        problems.push(format!("data.previous {previous} for {kind}"));
    }
    if body.as_object().map(|o| o.len()) != Some(3) {
        problems.push("body has other keys than type, timestamp, data".into());
    }
    Hit {
        path: path.to_owned(),
        id,
        body,
        at: Instant::now(),
        problems,
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Healthy receiver: one signed delivery per change and URL.

async fn every_change_is_delivered_once_per_url_and_signed(backend: Backend) {
    let rx = Receiver::start(always_ok()).await;
    let urls = [rx.url("/a"), rx.url("/b")];
    let app = TestApp::spawn_with(backend, |s| webhooks(s, &urls)).await;
    let store = app.store().await;

    let created = app
        .create(json!({"title": "Write report", "assignee": "bob"}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let res = app.patch(&id, json!({"status": "completed"})).await;
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    let res = app
        .http
        .delete(app.url(&format!("/api/tasks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);

    let rows = all_final(&store, DEFAULT_WS, 6, Duration::from_secs(15)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 6, "3 changes × 2 URLs, each exactly once");
    for hit in &hits {
        assert!(
            hit.problems.is_empty(),
            "{:?}: {:?}",
            hit.path,
            hit.problems
        );
    }
    let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids.len(), 6, "every delivery has its own webhook-id");
    for n in &rows {
        assert_eq!(n.status, Status::Delivered);
        assert_eq!((n.channel, n.attempts), (Channel::Webhook, 1));
        assert!(n.delivered_at.is_some() && n.last_error.is_none());
        let hit = hits
            .iter()
            .find(|h| h.id == n.id.to_string())
            .expect("webhook-id is the notification id");
        assert_eq!(rx.url(&hit.path), n.target);
        assert_eq!(hit.body["type"], n.event_type.as_str());
        assert_eq!(n.task_id.to_string(), id);
    }
    for path in ["/a", "/b"] {
        let by_type: HashMap<String, Value> = rx
            .hits_on(path)
            .into_iter()
            .map(|h| (h.body["type"].as_str().unwrap().to_owned(), h.body))
            .collect();
        assert_eq!(by_type.len(), 3, "{path}: created, updated, deleted");
        assert_eq!(by_type["task.created"]["data"]["task"], created);
        assert_eq!(by_type["task.created"]["data"]["previous"], Value::Null);
        assert_eq!(by_type["task.updated"]["data"]["task"], updated);
        assert_eq!(by_type["task.updated"]["data"]["previous"], created);
        assert_eq!(by_type["task.deleted"]["data"]["task"], updated);
    }
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Scripted failures, one receiver path per behaviour, all from one change.

async fn failures_are_retried_or_dead_as_the_receiver_says(backend: Backend) {
    let rx = Receiver::start(script(|path, nth| match (path, nth) {
        ("/flaky", 1 | 2) => Reply::status(500),
        ("/gone", _) => Reply::status(410),
        ("/throttle", 1) => Reply::status(429).header("retry-after", "2"),
        ("/throttle-date", 1) => {
            let at = chrono::Utc::now() + chrono::Duration::seconds(3);
            Reply::status(503).header(
                "retry-after",
                at.format("%a, %d %b %Y %H:%M:%S GMT").to_string(),
            )
        }
        ("/hang", 1) => Reply::status(200).after(Duration::from_secs(3)),
        ("/redirect", _) => Reply::status(302).header("location", "/target"),
        ("/broken", _) => Reply::status(500),
        _ => Reply::status(200),
    }))
    .await;
    let paths = [
        "/flaky",
        "/gone",
        "/throttle",
        "/throttle-date",
        "/hang",
        "/redirect",
        "/broken",
    ];
    let urls: Vec<String> = paths.iter().map(|p| rx.url(p)).collect();
    let app = TestApp::spawn_with(backend, |s| {
        webhooks(s, &urls);
        s.webhook_timeout_seconds = 1;
        s.notify_max_attempts = 3;
    })
    .await;
    let store = app.store().await;
    app.create(json!({"title": "One change, seven receivers"}))
        .await;

    let rows = all_final(&store, DEFAULT_WS, paths.len(), Duration::from_secs(20)).await;
    let row = |path: &str| {
        rows.iter()
            .find(|n| n.target == rx.url(path))
            .unwrap()
            .clone()
    };
    // Every request of a notification carries its id, however many times it is sent.
    for path in paths {
        let n = row(path);
        let hits = rx.hits_on(path);
        assert_eq!(
            hits.len() as i64,
            n.attempts,
            "{path}: one request per attempt"
        );
        for hit in &hits {
            assert_eq!(
                hit.id,
                n.id.to_string(),
                "{path}: same webhook-id on retries"
            );
            assert!(hit.problems.is_empty(), "{path}: {:?}", hit.problems);
        }
    }
    let codes = |log: &[Attempt]| -> Vec<(String, Option<i64>)> {
        log.iter()
            .map(|a| (a.outcome.clone(), a.status_code))
            .collect()
    };
    let retry = |code: i64| ("retry".to_owned(), Some(code));

    let flaky = row("/flaky");
    assert_eq!((flaky.status, flaky.attempts), (Status::Delivered, 3));
    let log = attempts_log(&store, DEFAULT_WS, &flaky).await;
    assert_eq!(
        codes(&log),
        [retry(500), retry(500), ("delivered".into(), Some(200))]
    );

    let gone = row("/gone");
    assert_eq!((gone.status, gone.attempts), (Status::Dead, 1));
    assert!(gone.last_error.as_deref().unwrap().contains("410"));
    let log = attempts_log(&store, DEFAULT_WS, &gone).await;
    assert_eq!(codes(&log), [("dead".to_owned(), Some(410))]);

    for (path, code) in [("/throttle", 429), ("/throttle-date", 503)] {
        let n = row(path);
        assert_eq!((n.status, n.attempts), (Status::Delivered, 2), "{path}");
        let hits = rx.hits_on(path);
        let gap = hits[1].at - hits[0].at;
        assert!(
            gap >= Duration::from_millis(1950),
            "{path}: Retry-After honoured, second request came after {gap:?}"
        );
        let log = attempts_log(&store, DEFAULT_WS, &n).await;
        assert_eq!(log[0].status_code, Some(code));
        let waited = log[1].started_at - log[0].finished_at;
        assert!(
            waited >= chrono::Duration::milliseconds(1990),
            "{path}: next attempt scheduled {waited:?} after the answer"
        );
    }

    let hang = row("/hang");
    assert_eq!((hang.status, hang.attempts), (Status::Delivered, 2));
    let log = attempts_log(&store, DEFAULT_WS, &hang).await;
    assert_eq!(log[0].outcome, "retry");
    assert_eq!(log[0].status_code, None);
    assert!(
        log[0].error.as_deref().unwrap().contains("in time"),
        "{:?}",
        log[0].error
    );
    assert!(
        log[0].finished_at - log[0].started_at < chrono::Duration::milliseconds(2500),
        "the 1 s timeout cut the 3 s request short"
    );

    let redirect = row("/redirect");
    assert_eq!((redirect.status, redirect.attempts), (Status::Dead, 3));
    assert!(
        rx.hits_on("/target").is_empty(),
        "a redirect is never followed"
    );
    let log = attempts_log(&store, DEFAULT_WS, &redirect).await;
    assert!(log.iter().all(|a| a.status_code == Some(302)));

    let broken = row("/broken");
    assert_eq!((broken.status, broken.attempts), (Status::Dead, 3));
    assert!(broken.last_error.as_deref().unwrap().contains("500"));
    assert!(broken.delivered_at.is_none());
    let log = attempts_log(&store, DEFAULT_WS, &broken).await;
    assert_eq!(
        codes(&log),
        [retry(500), retry(500), ("dead".into(), Some(500))]
    );
    assert_eq!(log.iter().map(|a| a.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. E-mail over a real SMTP server.

/// A message as the SMTP server saw it, with the answer it gave.
#[derive(Debug, Clone)]
struct Mail {
    to: Vec<String>,
    data: String,
    code: u16,
}

#[derive(Default)]
struct Mailbox {
    sessions: Mutex<Vec<Mail>>,
}

/// One SMTP session: `temp@…` gets a 451 the first time, `perm@…` always a 554, in answer to
/// DATA. (Not to the final dot: after an error there mailin stays in the DATA state and never
/// answers the client's QUIT, which then waits for its timeout.)
#[derive(Clone)]
struct SmtpHandler {
    mailbox: Arc<Mailbox>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for SmtpHandler {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        use mailin_embedded::response;
        self.to = to.to_vec();
        self.data.clear();
        let mut sessions = self.mailbox.sessions.lock().unwrap();
        let before = sessions.iter().filter(|m| m.to == to).count();
        let joined = to.join(",");
        let refusal = if joined.contains("perm@") {
            Some(response::TRANSACTION_FAILED)
        } else if joined.contains("temp@") && before == 0 {
            Some(response::INTERNAL_ERROR)
        } else {
            None
        };
        match refusal {
            Some(answer) => {
                sessions.push(Mail {
                    to: to.to_vec(),
                    data: String::new(),
                    code: answer.code,
                });
                answer
            }
            None => response::START_DATA,
        }
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        self.mailbox.sessions.lock().unwrap().push(Mail {
            to: self.to.clone(),
            data: String::from_utf8_lossy(&self.data).into_owned(),
            code: 250,
        });
        mailin_embedded::response::OK
    }
}

/// Starts an SMTP server on a free loopback port (its thread lives as long as the test binary).
fn start_smtp() -> (u16, Arc<Mailbox>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mailbox = Arc::new(Mailbox::default());
    let handler = SmtpHandler {
        mailbox: mailbox.clone(),
        to: Vec::new(),
        data: Vec::new(),
    };
    std::thread::spawn(move || {
        let mut server = mailin_embedded::Server::new(handler);
        server
            .with_name("smtp.test")
            .with_tcp_listener(listener)
            .with_num_threads(4);
        let _ = server.serve();
    });
    (port, mailbox)
}

async fn e_mail_goes_to_the_right_person_over_real_smtp(backend: Backend) {
    let (port, mailbox) = start_smtp();
    let app = TestApp::spawn_with(backend, |s| {
        s.jwt_secret = Some(JWT.parse().unwrap());
        s.smtp_url = Some(format!("smtp://127.0.0.1:{port}").parse().unwrap());
        s.mail_from = "taskwire <noreply@taskwire.test>".into();
        s.notify_backoff_seconds = vec![1];
        s.notify_poll_seconds = 1;
        s.notify_max_attempts = 3;
    })
    .await;
    let store = app.store().await;
    let alice = token("alice", "acme", "Alice Smith", "alice@x.io");
    let bob = token("bob", "acme", "Bob", "BOB@x.io");
    let send = |method: reqwest::Method, path: String, who: &str, body: Value| {
        let request = app
            .http
            .request(method, app.url(&path))
            .bearer_auth(who)
            .json(&body);
        async move {
            let res = request.send().await.unwrap();
            assert!(res.status().is_success(), "{path}: {}", res.status());
            res.json::<Value>().await.unwrap()
        }
    };
    let emails_of = |task: &str| {
        let (store, task) = (store.clone(), uuid::Uuid::parse_str(task).unwrap());
        async move {
            let mut rows: Vec<Notification> = store
                .outbox()
                .list_notifications("acme", None, Some(task), 1000)
                .await
                .unwrap()
                .into_iter()
                .filter(|n| n.channel == Channel::Email)
                .collect();
            rows.sort_by_key(|n| n.created_at);
            rows
        }
    };

    // Alice creates a task for Bob, then completes it: Bob is told both times.
    let task = send(
        reqwest::Method::POST,
        "/api/tasks".into(),
        &alice,
        json!({"title": "Quarterly report", "assignee": "bob", "assignee_email": "bob@x.io"}),
    )
    .await;
    let id = task["id"].as_str().unwrap().to_owned();
    let path = format!("/api/tasks/{id}");
    send(
        reqwest::Method::PATCH,
        path.clone(),
        &alice,
        json!({"status": "completed"}),
    )
    .await;
    // Bob's own change (his token's e-mail differs only in case): no e-mail.
    send(
        reqwest::Method::PATCH,
        path.clone(),
        &bob,
        json!({"description": "Draft attached"}),
    )
    .await;
    let rows = emails_of(&id).await;
    assert_eq!(
        rows.iter()
            .map(|n| (n.target.as_str(), n.event_type.as_str()))
            .collect::<Vec<_>>(),
        [("bob@x.io", "task.created"), ("bob@x.io", "task.updated")],
        "no row for the assignee's own change"
    );
    // /update_task with user_email: that address is told instead of the assignee.
    send(
        reqwest::Method::POST,
        "/update_task".into(),
        &alice,
        json!({"task_id": id, "user_email": "carol@x.io", "title": "Quarterly report v2"}),
    )
    .await;
    assert_eq!(emails_of(&id).await[2].target, "carol@x.io");
    // Temporary and permanent SMTP failures.
    for who in ["temp@x.io", "perm@x.io"] {
        send(
            reqwest::Method::POST,
            "/api/tasks".into(),
            &alice,
            json!({"title": format!("For {who}"), "assignee_email": who}),
        )
        .await;
    }

    let rows = all_final(&store, "acme", 5, Duration::from_secs(20)).await;
    let row = |to: &str| rows.iter().find(|n| n.target == to).unwrap().clone();
    let temp = row("temp@x.io");
    assert_eq!((temp.status, temp.attempts), (Status::Delivered, 2));
    let log = attempts_log(&store, "acme", &temp).await;
    assert_eq!(
        log.iter()
            .map(|a| (a.outcome.as_str(), a.status_code))
            .collect::<Vec<_>>(),
        [("retry", Some(451)), ("delivered", Some(250))]
    );
    let perm = row("perm@x.io");
    assert_eq!((perm.status, perm.attempts), (Status::Dead, 1));
    assert!(
        perm.last_error.as_deref().unwrap().contains("554"),
        "{:?}",
        perm.last_error
    );

    let sessions = mailbox.sessions.lock().unwrap().clone();
    let accepted: Vec<&Mail> = sessions.iter().filter(|m| m.code == 250).collect();
    let mut recipients: Vec<String> = accepted.iter().map(|m| m.to.join(",")).collect();
    recipients.sort();
    assert_eq!(
        recipients,
        ["bob@x.io", "bob@x.io", "carol@x.io", "temp@x.io"],
        "exactly the expected mails, each once"
    );
    let tries = |to: &str| sessions.iter().filter(|m| m.to == [to]).count();
    assert_eq!((tries("temp@x.io"), tries("perm@x.io")), (2, 1));

    let parsed: Vec<(HashMap<String, String>, String)> =
        accepted.iter().map(|m| parse_mail(&m.data)).collect();
    for (headers, _) in &parsed {
        assert!(headers["from"].contains("noreply@taskwire.test"));
        assert!(
            headers["content-type"].starts_with("text/plain; charset=utf-8"),
            "{headers:?}"
        );
    }
    let find = |subject: &str, to: &str| {
        parsed
            .iter()
            .find(|(h, _)| h["subject"] == subject && h["to"].contains(to))
            .unwrap_or_else(|| panic!("a mail {subject:?} to {to}: {parsed:#?}"))
            .1
            .clone()
    };
    let completed = find("Task \"Quarterly report\" was updated", "bob@x.io");
    assert!(
        completed.contains("Alice Smith updated the task \"Quarterly report\""),
        "{completed}"
    );
    assert!(
        completed.contains("Status: pending → completed"),
        "{completed}"
    );
    assert!(completed.contains(&id), "{completed}");
    let created = find("Task \"Quarterly report\" was created", "bob@x.io");
    assert!(created.contains("Alice Smith created"), "{created}");
    let renamed = find("Task \"Quarterly report v2\" was updated", "carol@x.io");
    assert!(
        renamed.contains("Title: Quarterly report → Quarterly report v2"),
        "{renamed}"
    );
    assert!(
        parsed
            .iter()
            .all(|(_, t)| !t.contains("Description changed")),
        "nobody is told about Bob's own change"
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4. A receiver that does not answer never holds up a request.

async fn a_slow_receiver_never_blocks_requests(backend: Backend) {
    let rx = Receiver::start(always_ok()).await;
    rx.set_gate(false); // every webhook request hangs until the gate opens
    let urls = [rx.url("/slow")];
    let app = TestApp::spawn_with(backend, |s| {
        webhooks(s, &urls);
        s.notify_concurrency = 4;
    })
    .await;
    let store = app.store().await;
    let task = app.create(json!({"title": "busy"})).await;
    let id = task["id"].as_str().unwrap();
    for i in 0..20 {
        let res = app
            .patch(id, json!({"description": format!("edit {i}")}))
            .await;
        assert_eq!(res.status(), 200, "update {i}");
    }
    // Every update has answered although the receiver has answered nothing.
    assert_eq!(rx.answered(), 0);
    assert_eq!(outbox_rows(&store, DEFAULT_WS).await.len(), 21);
    let in_flight = rx.hits().len();
    assert!(
        in_flight <= 4,
        "at most NOTIFY_CONCURRENCY requests are in flight, saw {in_flight}"
    );

    rx.set_gate(true);
    all_final(&store, DEFAULT_WS, 21, Duration::from_secs(20)).await;
    let hits = rx.hits();
    let ids: HashSet<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    assert_eq!((ids.len(), hits.len()), (21, 21), "all arrive, once each");
    assert!(rx.state.max_in_flight.load(Ordering::SeqCst) <= 4);
    let descriptions: HashSet<String> = hits
        .iter()
        .filter_map(|h| h.body["data"]["task"]["description"].as_str())
        .filter(|d| d.starts_with("edit "))
        .map(str::to_owned)
        .collect();
    assert_eq!(descriptions.len(), 20, "one notification per update");
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5a. Only committed changes notify.

async fn changes_that_do_not_commit_notify_nobody(backend: Backend) {
    let rx = Receiver::start(always_ok()).await;
    let urls = [rx.url("/hook")];
    let app = TestApp::spawn_with(backend, |s| webhooks(s, &urls)).await;
    let store = app.store().await;
    let task = app.create(json!({"title": "Stable"})).await;
    let id = task["id"].as_str().unwrap();
    let path = app.url(&format!("/api/tasks/{id}"));
    let res = app.patch(id, json!({"status": "in_progress"})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(outbox_rows(&store, DEFAULT_WS).await.len(), 2);

    let missing = app.url(&format!("/api/tasks/{}", uuid::Uuid::now_v7()));
    let attempts = [
        (
            "stale If-Match",
            app.http
                .patch(&path)
                .header("if-match", "\"1\"")
                .json(&json!({"title": "lost"})),
            412,
        ),
        (
            "stale If-Match on delete",
            app.http.delete(&path).header("if-match", "\"1\""),
            412,
        ),
        (
            "bad status",
            app.http.patch(&path).json(&json!({"status": "bogus"})),
            422,
        ),
        (
            "empty title",
            app.http.patch(&path).json(&json!({"title": ""})),
            422,
        ),
        (
            "create without title",
            app.http
                .post(app.url("/api/tasks"))
                .json(&json!({"description": "x"})),
            422,
        ),
        ("delete of a missing task", app.http.delete(&missing), 404),
        (
            "update of a missing task",
            app.http.patch(&missing).json(&json!({"title": "x"})),
            404,
        ),
    ];
    for (what, request, status) in attempts {
        let res = request.send().await.unwrap();
        assert_eq!(res.status(), status, "{what}");
        assert_eq!(
            outbox_rows(&store, DEFAULT_WS).await.len(),
            2,
            "{what}: no notification"
        );
    }
    let rows = all_final(&store, DEFAULT_WS, 2, Duration::from_secs(10)).await;
    assert!(rows.iter().all(|n| n.status == Status::Delivered));
    let types: HashSet<String> = rx
        .hits()
        .iter()
        .map(|h| h.body["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(rx.hits().len(), 2);
    assert_eq!(
        types,
        HashSet::from(["task.created".to_owned(), "task.updated".to_owned()])
    );
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 5b/6. The real binary: kill -9 and graceful shutdown.

/// A loopback port nothing listens on (connections are refused).
fn refused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary_env(webhook_url: &str, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("WEBHOOK_URL", webhook_url.to_owned()),
        ("WEBHOOK_SECRET", webhook_secret()),
        ("NOTIFY_BACKOFF_SECONDS", "1".into()),
        ("NOTIFY_POLL_SECONDS", "1".into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

async fn nothing_is_lost_when_the_process_is_killed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let port = refused_port();
    let hook = format!("http://127.0.0.1:{port}/hook");
    let env = binary_env(
        &hook,
        &[
            ("NOTIFY_MAX_ATTEMPTS", "1000"),
            ("WEBHOOK_TIMEOUT_SECONDS", "1"),
            ("NOTIFY_LEASE_SECONDS", "1"),
        ],
    );
    let server = Server::start(&db.url, env.clone()).await;
    let http = http_client();

    // 120 creates, 60 updates, 30 deletes, 8 at a time, with the receiver down.
    let created: Vec<String> = futures::stream::iter(0..120)
        .map(|i| {
            let request = http
                .post(server.url("/api/tasks"))
                .json(&json!({"title": format!("task {i}")}));
            async move {
                let res = request.send().await.unwrap();
                assert_eq!(res.status(), 201);
                res.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let changes = created[..60]
        .iter()
        .map(|id| {
            http.patch(server.url(&format!("/api/tasks/{id}")))
                .json(&json!({"status": "completed"}))
        })
        .chain(
            created[60..90]
                .iter()
                .map(|id| http.delete(server.url(&format!("/api/tasks/{id}")))),
        )
        .collect::<Vec<_>>();
    futures::stream::iter(changes)
        .map(|request| async move {
            let res = request.send().await.unwrap();
            assert!(res.status().is_success(), "{}", res.status());
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;

    let store = taskwire::store::connect(&db.url, 2).await.unwrap();
    let expected = 210;
    // The dispatcher has been failing against the dead port.
    eventually("failed attempts", Duration::from_secs(10), || async {
        let rows = outbox_rows(&store, DEFAULT_WS).await;
        rows.iter()
            .any(|n| n.status == Status::Failed)
            .then_some(())
    })
    .await;
    server.kill9();

    let rows = outbox_rows(&store, DEFAULT_WS).await;
    assert_eq!(rows.len(), expected, "one row per committed change");
    assert!(rows.iter().all(|n| n.status != Status::Delivered));
    let ids: HashSet<String> = rows.iter().map(|n| n.id.to_string()).collect();

    let rx = Receiver::start_on(port, always_ok()).await;
    let server = Server::start(&db.url, env).await;
    let rows = all_final(&store, DEFAULT_WS, expected, Duration::from_secs(30)).await;
    assert!(rows.iter().all(|n| n.status == Status::Delivered));
    let hits = rx.hits();
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for hit in &hits {
        assert!(hit.problems.is_empty(), "{:?}", hit.problems);
        *per_id.entry(hit.id.as_str()).or_default() += 1;
    }
    let received: HashSet<String> = per_id.keys().map(|k| (*k).to_owned()).collect();
    assert_eq!(received, ids, "every notification arrived, and no other");
    let max = per_id.values().max().copied().unwrap_or(0);
    assert!(
        max <= 2,
        "at most one duplicate per notification (a lease), got {max}"
    );
    assert!(
        hits.len() <= expected + 8,
        "duplicates bounded by the concurrency: {} requests for {expected}",
        hits.len()
    );
    server.kill9();
    store.close().await;
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_a_delivery_in_flight() {
    let db = TestDb::new(Backend::Sqlite).await;
    let rx = Receiver::start(script(|_, nth| {
        let reply = Reply::status(200);
        if nth == 1 {
            reply.after(Duration::from_millis(1500))
        } else {
            reply
        }
    }))
    .await;
    let env = binary_env(
        &rx.url("/slow"),
        &[
            ("SHUTDOWN_TIMEOUT_SECONDS", "10"),
            ("WEBHOOK_TIMEOUT_SECONDS", "5"),
        ],
    );
    let server = Server::start(&db.url, env.clone()).await;
    let http = http_client();
    let first = http
        .post(server.url("/api/tasks"))
        .json(&json!({"title": "in flight at shutdown"}))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    eventually("the delivery is in flight", Duration::from_secs(10), || {
        let n = rx.hits().len();
        async move { (n == 1).then_some(()) }
    })
    .await;
    assert_eq!(rx.answered(), 0);
    let status = server.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");
    assert_eq!(
        rx.answered(),
        1,
        "shutdown waited for the receiver's answer"
    );

    let store = taskwire::store::connect(&db.url, 2).await.unwrap();
    let rows = outbox_rows(&store, DEFAULT_WS).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].status, rows[0].attempts), (Status::Delivered, 1));

    // After a restart the delivered one is not sent again, while a new one is.
    let server = Server::start(&db.url, env).await;
    let res = http
        .post(server.url("/api/tasks"))
        .json(&json!({"title": "after restart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    all_final(&store, DEFAULT_WS, 2, Duration::from_secs(10)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].id, rows[0].id.to_string());
    assert_ne!(hits[1].id, hits[0].id);
    let _ = server.terminate(Duration::from_secs(15)).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cut_short_leaves_the_delivery_to_the_next_process() {
    let db = TestDb::new(Backend::Sqlite).await;
    let rx = Receiver::start(script(|_, nth| {
        let reply = Reply::status(200);
        if nth == 1 {
            reply.after(Duration::from_secs(3))
        } else {
            reply
        }
    }))
    .await;
    // The lease is WEBHOOK_TIMEOUT_SECONDS + 5 = 9 s: that long after the cut attempt began,
    // the next process may send it again.
    let env = binary_env(
        &rx.url("/slow"),
        &[
            ("SHUTDOWN_TIMEOUT_SECONDS", "1"),
            ("WEBHOOK_TIMEOUT_SECONDS", "4"),
            ("NOTIFY_LEASE_SECONDS", "1"),
        ],
    );
    let server = Server::start(&db.url, env.clone()).await;
    let http = http_client();
    let res = http
        .post(server.url("/api/tasks"))
        .json(&json!({"title": "cut short"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    eventually("the delivery is in flight", Duration::from_secs(10), || {
        let n = rx.hits().len();
        async move { (n == 1).then_some(()) }
    })
    .await;
    let status = server.terminate(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}");

    let store = taskwire::store::connect(&db.url, 2).await.unwrap();
    let rows = outbox_rows(&store, DEFAULT_WS).await;
    assert_eq!(rows.len(), 1);
    assert_ne!(
        rows[0].status,
        Status::Delivered,
        "the receiver had not answered"
    );
    assert!(attempts_log(&store, DEFAULT_WS, &rows[0]).await.is_empty());

    let server = Server::start(&db.url, env).await;
    let rows = all_final(&store, DEFAULT_WS, 1, Duration::from_secs(20)).await;
    assert_eq!(rows[0].status, Status::Delivered);
    let hits = rx.hits();
    assert!(hits.len() >= 2);
    assert!(hits.iter().all(|h| h.id == rows[0].id.to_string()));
    let _ = server.terminate(Duration::from_secs(15)).await;
    store.close().await;
}

// ---------------------------------------------------------------------------------------------
// The notifications API (GET list, GET one with attempts, POST retry), workspace-scoped.

async fn api_lists_shows_and_retries_notifications(backend: Backend) {
    let healthy = Arc::new(AtomicBool::new(false));
    let up = healthy.clone();
    let rx = Receiver::start(script(move |path, _| {
        if path == "/down" && !up.load(Ordering::SeqCst) {
            Reply::status(503)
        } else {
            Reply::status(200)
        }
    }))
    .await;
    let urls = [rx.url("/ok"), rx.url("/down")];
    let app = TestApp::spawn_with(backend, |s| {
        webhooks(s, &urls);
        s.jwt_secret = Some(JWT.parse().unwrap());
        s.notify_max_attempts = 2;
    })
    .await;
    let acme = token("alice", "acme", "Alice", "alice@x.io");
    let globex = token("eve", "globex", "Eve", "eve@y.io");
    let get = |path: String, who: Option<&str>| {
        let mut request = app.http.get(app.url(&path));
        if let Some(who) = who {
            request = request.bearer_auth(who);
        }
        async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let retry = |id: &str, who: &str| {
        let request = app
            .http
            .post(app.url(&format!("/api/notifications/{id}/retry")))
            .bearer_auth(who);
        async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let res = app
        .http
        .post(app.url("/api/tasks"))
        .bearer_auth(&acme)
        .json(&json!({"title": "watched"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let task_id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let list = eventually("both final", Duration::from_secs(15), || async {
        let (status, body) = get("/api/notifications".into(), Some(&acme)).await;
        assert_eq!(status, 200, "{body}");
        let items = body.as_array().unwrap().clone();
        let done = items.len() == 2
            && items
                .iter()
                .all(|n| n["status"] == "delivered" || n["status"] == "dead");
        done.then_some(items)
    })
    .await;
    let keys = [
        "id",
        "channel",
        "target",
        "event_type",
        "task_id",
        "status",
        "attempts",
        "last_error",
        "created_at",
        "next_attempt_at",
        "delivered_at",
    ];
    let key_set =
        |v: &Value| -> HashSet<String> { v.as_object().unwrap().keys().cloned().collect() };
    let expected_keys: HashSet<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    for n in &list {
        assert_eq!(key_set(n), expected_keys, "{n}");
        assert_eq!(n["channel"], "webhook");
        assert_eq!(n["event_type"], "task.created");
        assert_eq!(n["task_id"], task_id.as_str());
    }
    let by_target = |url: String| list.iter().find(|n| n["target"] == url).unwrap().clone();
    let ok = by_target(rx.url("/ok"));
    let down = by_target(rx.url("/down"));
    assert_eq!(
        (&ok["status"], &ok["attempts"]),
        (&json!("delivered"), &json!(1))
    );
    assert!(ok["last_error"].is_null() && ok["delivered_at"].is_string());
    assert_eq!(
        (&down["status"], &down["attempts"]),
        (&json!("dead"), &json!(2))
    );
    assert!(down["last_error"].as_str().unwrap().contains("503"));
    assert!(down["delivered_at"].is_null());
    let (ok_id, down_id) = (
        ok["id"].as_str().unwrap().to_owned(),
        down["id"].as_str().unwrap().to_owned(),
    );

    // Filters.
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    };
    for (query, expected) in [
        ("?status=delivered", vec![ok_id.clone()]),
        ("?status=dead", vec![down_id.clone()]),
        ("?status=pending", vec![]),
        (&format!("?task_id={}", uuid::Uuid::now_v7()), vec![]),
    ] {
        let (status, body) = get(format!("/api/notifications{query}"), Some(&acme)).await;
        assert_eq!((status, ids(&body)), (200, expected), "{query}");
    }
    let (status, body) = get(
        format!("/api/notifications?task_id={task_id}&status=dead"),
        Some(&acme),
    )
    .await;
    assert_eq!((status, ids(&body)), (200, vec![down_id.clone()]));
    let (status, _) = get("/api/notifications?status=bogus".into(), Some(&acme)).await;
    assert_eq!(status, 422);

    // One notification with its attempts.
    let (status, detail) = get(format!("/api/notifications/{down_id}"), Some(&acme)).await;
    assert_eq!(status, 200);
    let mut detail_keys = expected_keys.clone();
    detail_keys.insert("attempts_log".into());
    assert_eq!(key_set(&detail), detail_keys);
    let log = detail["attempts_log"].as_array().unwrap();
    let attempt_keys: HashSet<String> = [
        "attempt",
        "started_at",
        "finished_at",
        "outcome",
        "status_code",
        "error",
    ]
    .iter()
    .map(|k| (*k).to_owned())
    .collect();
    assert_eq!(log.len(), 2);
    for (i, a) in log.iter().enumerate() {
        assert_eq!(key_set(a), attempt_keys);
        assert_eq!(a["attempt"], i + 1);
        assert_eq!(a["status_code"], 503);
        assert!(a["error"].is_string());
    }
    assert_eq!(
        (&log[0]["outcome"], &log[1]["outcome"]),
        (&json!("retry"), &json!("dead"))
    );

    // Other workspaces, unknown ids, no token.
    let (status, body) = get("/api/notifications".into(), Some(&globex)).await;
    assert_eq!((status, body), (200, json!([])));
    for id in [down_id.as_str(), &uuid::Uuid::now_v7().to_string(), "nope"] {
        let (status, _) = get(format!("/api/notifications/{id}"), Some(&globex)).await;
        assert_eq!(status, 404, "GET {id} from another workspace");
        let (status, _) = retry(id, &globex).await;
        assert_eq!(status, 404, "retry {id} from another workspace");
    }
    let (status, _) = get("/api/notifications".into(), None).await;
    assert_eq!(status, 401);
    let (_, detail) = get(format!("/api/notifications/{down_id}"), Some(&acme)).await;
    assert_eq!(
        detail["status"], "dead",
        "another workspace's retry did nothing"
    );

    // Retry: delivered → 409; dead → 202 and delivered once the receiver is back.
    let (status, body) = retry(&ok_id, &acme).await;
    assert_eq!((status, &body["error"]["code"]), (409, &json!("conflict")));
    healthy.store(true, Ordering::SeqCst);
    let (status, _) = retry(&down_id, &acme).await;
    assert_eq!(status, 202);
    let detail = eventually(
        "the retried one delivered",
        Duration::from_secs(10),
        || async {
            let (_, d) = get(format!("/api/notifications/{down_id}"), Some(&acme)).await;
            (d["status"] == "delivered").then_some(d)
        },
    )
    .await;
    assert_eq!(detail["attempts"], 3);
    assert_eq!(detail["attempts_log"][2]["outcome"], "delivered");
    let hits = rx.hits_on("/down");
    assert_eq!(hits.len(), 3);
    assert!(hits.iter().all(|h| h.id == down_id));
    assert_eq!(rx.hits_on("/ok").len(), 1);
    app.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Jobs: a bulk update or an import notifies once, with a summary, however many tasks it touched.

async fn a_job_sends_one_summary_instead_of_one_per_task(backend: Backend) {
    let rx = Receiver::start(always_ok()).await;
    let urls = [rx.url("/hook")];
    let app = TestApp::spawn_with(backend, |s| webhooks(s, &urls)).await;
    let store = app.store().await;
    let mut csv = String::from("title,status\n");
    for i in 0..250 {
        csv.push_str(&format!("task {i},pending\n"));
    }
    let submit = |body: Value| {
        let req = app.http.post(app.url("/api/jobs")).json(&body);
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 202);
            res.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let import = submit(json!({"kind": "import", "params": {"format": "csv", "data": csv}})).await;
    let job_state = |id: String| {
        let req = app.http.get(app.url(&format!("/api/jobs/{id}")));
        async move {
            let job: Value = req.send().await.unwrap().json().await.unwrap();
            (job["state"] != "queued" && job["state"] != "running").then_some(job)
        }
    };
    let done = eventually("the import", Duration::from_secs(30), || {
        job_state(import.clone())
    })
    .await;
    assert_eq!(done["result"]["accepted"], 250);
    let bulk = submit(json!({"kind": "bulk_update",
        "params": {"filter": {"status": "pending"}, "patch": {"status": "completed"}}}))
    .await;
    let done = eventually("the bulk update", Duration::from_secs(30), || {
        job_state(bulk.clone())
    })
    .await;
    assert_eq!(done["result"]["updated"], 250);

    let rows = all_final(&store, DEFAULT_WS, 2, Duration::from_secs(15)).await;
    assert_eq!(rows.len(), 2, "one summary per job, not one per task");
    let hits = rx.hits();
    assert_eq!(hits.len(), 2);
    let by_type: HashMap<String, Value> = hits
        .iter()
        .map(|h| {
            assert!(h.problems.is_empty(), "{:?}", h.problems);
            (h.body["type"].as_str().unwrap().to_owned(), h.body.clone())
        })
        .collect();
    let imported = &by_type["tasks.imported"]["data"];
    assert_eq!(imported["job_id"], import.as_str());
    assert_eq!(
        (imported["accepted"].clone(), imported["rejected"].clone()),
        (json!(250), json!(0))
    );
    let bulk_updated = &by_type["tasks.bulk_updated"]["data"];
    assert_eq!(bulk_updated["job_id"], bulk.as_str());
    assert_eq!(bulk_updated["updated"], 250);
    assert_eq!(bulk_updated["patch"], json!({"status": "completed"}));
    app.stop().await;
}

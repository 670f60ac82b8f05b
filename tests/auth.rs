//! Auth and isolation through the real server: the token matrix on REST, SSE and sockets,
//! workspaces that never see each other, task rooms and presence, event styles, the legacy
//! `/update_task` route, rate limits and the `taskwire token` command.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::sio::Client;
use common::sse::SseReader;
use common::{Backend, TestApp};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use taskwire::config::EventStyle;

const SECRET: &str = "test-secret-0123456789";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn sign(claims: &Value, alg: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("claims serialise")
}

/// A valid token for `sub` in `workspace`.
fn token(sub: &str, workspace: &str) -> String {
    sign(
        &json!({"sub": sub, "exp": now() + 600, "workspace": workspace, "name": sub.to_uppercase()}),
        Algorithm::HS256,
        SECRET,
    )
}

fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

/// Every kind of bad token the server must refuse, by name.
fn bad_tokens() -> Vec<(&'static str, String)> {
    let base = |extra: Value| {
        let mut c = json!({"sub": "alice", "exp": now() + 600});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    vec![
        (
            "expired",
            sign(
                &json!({"sub": "alice", "exp": now() - 10}),
                Algorithm::HS256,
                SECRET,
            ),
        ),
        (
            "nbf in the future",
            sign(&base(json!({"nbf": now() + 300})), Algorithm::HS256, SECRET),
        ),
        (
            "wrong secret",
            sign(&base(json!({})), Algorithm::HS256, "another-secret"),
        ),
        ("HS512", sign(&base(json!({})), Algorithm::HS512, SECRET)),
        ("alg none", unsigned(&base(json!({})))),
        (
            "missing sub",
            sign(&json!({"exp": now() + 600}), Algorithm::HS256, SECRET),
        ),
        (
            "missing exp",
            sign(&json!({"sub": "alice"}), Algorithm::HS256, SECRET),
        ),
        ("garbage", "not-a-token".to_owned()),
        ("three garbage parts", "a.b.c".to_owned()),
    ]
}

async fn with_auth(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |s| {
        s.jwt_secret = Some(SECRET.parse().unwrap());
    })
    .await
}

async fn get(app: &TestApp, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app.http.get(app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("GET")
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("POST")
}

async fn socket_as(app: &TestApp, token: &str, since: Option<i64>) -> Client {
    let mut auth = json!({ "token": token });
    if let Some(since) = since {
        auth["since"] = json!(since);
    }
    Client::connect(app.addr, Some(auth)).await
}

async fn token_matrix_on_rest_sse_and_sockets(backend: Backend) {
    let app = with_auth(backend).await;
    let mut cases = bad_tokens();
    cases.push(("none", String::new()));
    for (name, bad) in &cases {
        let token = (!bad.is_empty()).then_some(bad.as_str());
        for path in ["/api/tasks", "/api/tasks/stream", "/task_updates"] {
            let res = get(&app, path, token).await;
            assert_eq!(res.status(), 401, "{name} on {path}");
            assert!(
                res.headers()
                    .get("www-authenticate")
                    .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
                "{name} on {path}: WWW-Authenticate"
            );
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized", "{name} on {path}");
        }
        let res = app
            .http
            .post(app.url("/update_task"))
            .header("authorization", format!("Bearer {bad}"))
            .json(&json!({"task_id": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{name} on /update_task");
        let refused = Client::try_connect(app.addr, Some(json!({ "token": bad })))
            .await
            .err()
            .unwrap_or_else(|| panic!("socket with a {name} token was accepted"));
        assert_eq!(refused["message"], "unauthorized", "{name} on a socket");
        let query = format!("&token={bad}");
        let refused = Client::try_connect_query(app.addr, &query, None)
            .await
            .err()
            .unwrap_or_else(|| panic!("socket with a {name} query token was accepted"));
        assert_eq!(
            refused["message"], "unauthorized",
            "{name} on a socket query"
        );
    }

    let good = token("alice", "acme");
    assert_eq!(get(&app, "/api/tasks", Some(&good)).await.status(), 200);
    let by_query = get(&app, &format!("/api/tasks?token={good}"), None).await;
    assert_eq!(by_query.status(), 200, "?token= works for REST too");
    let stream = get(&app, &format!("/api/tasks/stream?token={good}"), None).await;
    assert_eq!(stream.status(), 200, "SSE with ?token=");
    let mut sse = SseReader::new(stream);
    let mut s = socket_as(&app, &good, None).await;
    let mut q = Client::try_connect_query(app.addr, &format!("&token={good}"), None)
        .await
        .expect("a good query token connects");
    let created = post(&app, "/api/tasks", &good, json!({"title": "hello"})).await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["created_by"], "alice");
    assert_eq!(s.next_event().await.1[0]["id"], created["id"]);
    assert_eq!(q.next_event().await.1[0]["id"], created["id"]);
    let ev = sse
        .next_data_within(Duration::from_secs(5))
        .await
        .expect("an SSE event");
    assert!(ev.data.contains(created["id"].as_str().unwrap()));
    for open in ["/healthz", "/metrics"] {
        assert_eq!(
            get(&app, open, None).await.status(),
            200,
            "{open} stays open"
        );
    }
    s.close().await;
    q.close().await;
    drop(sse);
    app.stop().await;
}

async fn issuer_and_audience_are_enforced(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.jwt_secret = Some(SECRET.parse().unwrap());
        s.jwt_issuer = Some("https://id.example".into());
        s.jwt_audience = Some("taskwire".into());
    })
    .await;
    let claims = |iss: &str, aud: &str| {
        sign(
            &json!({"sub": "a", "exp": now() + 60, "iss": iss, "aud": aud}),
            Algorithm::HS256,
            SECRET,
        )
    };
    let ok = claims("https://id.example", "taskwire");
    assert_eq!(get(&app, "/api/tasks", Some(&ok)).await.status(), 200);
    for bad in [
        claims("https://evil.example", "taskwire"),
        claims("https://id.example", "other"),
        token("a", "default"),
    ] {
        assert_eq!(get(&app, "/api/tasks", Some(&bad)).await.status(), 401);
    }
    app.stop().await;
}

async fn workspaces_never_see_each_other(backend: Backend) {
    let app = with_auth(backend).await;
    let (acme, globex) = (token("alice", "acme"), token("gina", "globex"));
    let mut acme_plain = socket_as(&app, &acme, None).await;
    let mut acme_seq = socket_as(&app, &acme, Some(0)).await;
    let mut globex_seq = socket_as(&app, &globex, Some(0)).await;
    let acme_sse = SseReader::new(get(&app, "/api/tasks/stream", Some(&acme)).await);
    let mut acme_sse = acme_sse;

    let mut acme_ids = Vec::new();
    for i in 0..3 {
        let res = post(
            &app,
            "/api/tasks",
            &acme,
            json!({"title": format!("acme {i}"), "created_by": "mallory"}),
        )
        .await;
        let task: Value = res.json().await.unwrap();
        assert_eq!(
            task["created_by"], "alice",
            "created_by comes from the token"
        );
        acme_ids.push(task["id"].as_str().unwrap().to_owned());
    }
    let globex_task: Value = post(&app, "/api/tasks", &globex, json!({"title": "globex 0"}))
        .await
        .json()
        .await
        .unwrap();
    let gid = globex_task["id"].as_str().unwrap();

    // Across workspaces a task is not found, never forbidden.
    let path = format!("/api/tasks/{gid}");
    assert_eq!(get(&app, &path, Some(&acme)).await.status(), 404);
    let patched = app
        .http
        .patch(app.url(&path))
        .bearer_auth(&acme)
        .json(&json!({"title": "hijack"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 404);
    let deleted = app
        .http
        .delete(app.url(&path))
        .bearer_auth(&acme)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 404);
    let legacy = post(
        &app,
        "/update_task",
        &acme,
        json!({"task_id": gid, "title": "x"}),
    )
    .await;
    assert_eq!(legacy.status(), 404);
    let ack = acme_plain
        .call("update_task", json!({"id": gid, "title": "hijack"}))
        .await;
    assert_eq!(ack["error"]["code"], "not_found");
    let ack = acme_plain.call("join-task", json!(gid)).await;
    assert_eq!(ack["error"]["code"], "not_found");
    let users = get(&app, &format!("/api/tasks/socket/users/{gid}"), Some(&acme)).await;
    assert_eq!(users.status(), 404);

    let listed: Value = get(&app, "/api/tasks", Some(&acme))
        .await
        .json()
        .await
        .unwrap();
    let titles: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(titles.len(), 3);
    assert!(titles.iter().all(|t| t.starts_with("acme")), "{titles:?}");
    let untouched: Value = get(&app, &path, Some(&globex)).await.json().await.unwrap();
    assert_eq!(untouched["title"], "globex 0");
    assert_eq!(untouched["version"], 1);

    // Live: each socket sees exactly its workspace's events, numbered from 1 per workspace.
    for (i, id) in acme_ids.iter().enumerate() {
        let (name, args) = acme_seq.next_event().await;
        assert_eq!(name, "task_created");
        assert_eq!(&args[0]["id"], id);
        assert_eq!(args[1]["seq"], i as i64 + 1);
        let (_, args) = acme_plain.next_event().await;
        assert_eq!(&args[0]["id"], id);
        assert_eq!(args.len(), 1);
        let ev = acme_sse
            .next_data_within(Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(ev.id.as_deref(), Some((i + 1).to_string().as_str()));
    }
    let (_, args) = globex_seq.next_event().await;
    assert_eq!(args[0]["id"], gid);
    assert_eq!(args[1]["seq"], 1);
    for client in [&mut acme_plain, &mut acme_seq, &mut globex_seq] {
        assert!(
            client
                .next_event_within(Duration::from_millis(300))
                .await
                .is_none(),
            "no event crosses workspaces"
        );
    }

    // Replay: globex from 0 gets only globex's one event.
    let mut replayed = socket_as(&app, &globex, Some(0)).await;
    let (_, args) = replayed.next_event().await;
    assert_eq!(args[0]["id"], gid);
    assert!(
        replayed
            .next_event_within(Duration::from_millis(300))
            .await
            .is_none()
    );
    let sse = app
        .http
        .get(app.url("/api/tasks/stream?lastEventId=0"))
        .bearer_auth(&globex)
        .send()
        .await
        .unwrap();
    let mut sse = SseReader::new(sse);
    let ev = sse.next_data_within(Duration::from_secs(5)).await.unwrap();
    assert!(ev.data.contains(gid));
    assert!(
        sse.next_data_within(Duration::from_millis(300))
            .await
            .is_none()
    );

    for c in [acme_plain, acme_seq, globex_seq, replayed] {
        c.close().await;
    }
    drop((acme_sse, sse));
    app.stop().await;
}

/// Next event named `name`, skipping others.
async fn next_named(client: &mut Client, name: &str) -> Vec<Value> {
    loop {
        let (got, args) = client.next_event().await;
        if got == name {
            return args;
        }
    }
}

async fn task_rooms_and_presence(backend: Backend) {
    let app = with_auth(backend).await;
    let (alice, bob, eve) = (
        token("alice", "acme"),
        token("bob", "acme"),
        token("eve", "globex"),
    );
    let task: Value = post(&app, "/api/tasks", &alice, json!({"title": "shared"}))
        .await
        .json()
        .await
        .unwrap();
    let id = task["id"].as_str().unwrap();
    let mut a = socket_as(&app, &alice, None).await;
    let mut b = socket_as(&app, &bob, None).await;
    let mut e = socket_as(&app, &eve, None).await;

    let ack = a.call("join-task", json!(id)).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["taskId"], id);
    assert_eq!(ack["count"], 1);
    let own = next_named(&mut a, "presence").await;
    assert_eq!(own[0]["count"], 1, "the joiner hears its own join too");
    let ack = b.call("join_task", json!({ "taskId": id })).await;
    assert_eq!(ack["count"], 2, "{ack}");
    let presence = next_named(&mut a, "presence").await;
    assert_eq!(presence.len(), 1);
    assert_eq!(presence[0]["count"], 2);
    assert_eq!(
        presence[0]["users"],
        json!([{"id": "alice", "name": "ALICE"}, {"id": "bob", "name": "BOB"}])
    );
    for bad in [
        json!(5),
        json!("not-a-uuid"),
        json!({"taskId": 7}),
        json!(null),
    ] {
        let ack = a.call("join-task", bad.clone()).await;
        assert_eq!(ack["ok"], false, "{bad}");
    }
    let ack = e.call("join-task", json!(id)).await;
    assert_eq!(
        ack["error"]["code"], "not_found",
        "another workspace's room"
    );

    let stats: Value = get(&app, "/api/tasks/socket/stats", Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(stats["success"], true);
    assert_eq!(stats["data"]["connectedUsers"], 2);
    assert_eq!(stats["data"]["totalRooms"], 1);
    assert_eq!(stats["data"]["userRooms"]["alice"], json!([id]));
    let theirs: Value = get(&app, "/api/tasks/socket/stats", Some(&eve))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs["data"]["connectedUsers"], 1);
    assert_eq!(theirs["data"]["totalRooms"], 0);
    assert!(theirs["data"]["userRooms"].get("alice").is_none());
    let users: Value = get(&app, &format!("/api/tasks/socket/users/{id}"), Some(&alice))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        users,
        json!({"success": true, "data": {"taskId": id, "count": 2,
            "users": [{"id": "alice", "name": "ALICE"}, {"id": "bob", "name": "BOB"}]}})
    );

    // In the task room and the workspace room, an event still arrives once.
    let res = app
        .http
        .patch(app.url(&format!("/api/tasks/{id}")))
        .bearer_auth(&bob)
        .json(&json!({"status": "done"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422, "`done` is not a status");
    let res = app
        .http
        .patch(app.url(&format!("/api/tasks/{id}")))
        .bearer_auth(&bob)
        .json(&json!({"status": "completed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let args = next_named(&mut a, "task_updated").await;
    assert_eq!(args[0]["updated_by"], "bob");
    assert!(
        a.next_event_within(Duration::from_millis(300))
            .await
            .is_none(),
        "delivered once"
    );

    let ack = b.call("leave-task", json!(id)).await;
    assert_eq!(ack["count"], 1, "{ack}");
    assert_eq!(next_named(&mut a, "presence").await[0]["count"], 1);
    b.call("join-task", json!(id)).await;
    assert_eq!(next_named(&mut a, "presence").await[0]["count"], 2);
    b.close().await;
    let presence = next_named(&mut a, "presence").await;
    assert_eq!(presence[0]["count"], 1, "a disconnect leaves the room");
    assert!(
        e.next_event_within(Duration::from_millis(200))
            .await
            .is_none()
    );
    a.close().await;
    e.close().await;
    app.stop().await;
}

async fn event_styles_send_each_set_once(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.event_style = vec![EventStyle::Default, EventStyle::Node, EventStyle::Flask];
    })
    .await;
    let mut plain = app.socket().await;
    let mut seq = Client::connect(app.addr, Some(json!({"since": 0}))).await;
    let task = app
        .create(json!({"title": "styled", "assignee_email": "a@x.io"}))
        .await;
    let id = task["id"].as_str().unwrap();
    app.patch(id, json!({"status": "in progress"})).await;
    let mut names = Vec::new();
    for _ in 0..6 {
        let (name, args) = plain.next_event().await;
        assert_eq!(args.len(), 1, "{name}: one argument");
        if name == "task-updated" {
            let p = &args[0];
            assert_eq!(p["taskId"], id);
            assert_eq!(p["status"], "in_progress");
            assert_eq!(p["previousStatus"], "pending");
            assert_eq!(p["assigneeEmail"], "a@x.io");
            assert!(p["timestamp"].is_string() && p["updatedAt"].is_string());
        }
        if name == "task_update" {
            assert_eq!(args[0]["assignee_email"], "a@x.io");
        }
        names.push(name);
    }
    assert_eq!(
        names,
        [
            "task_created",
            "task-created",
            "task_update",
            "task_updated",
            "task-updated",
            "task_update"
        ]
    );
    assert!(
        plain
            .next_event_within(Duration::from_millis(300))
            .await
            .is_none()
    );
    for _ in 0..6 {
        let (name, args) = seq.next_event().await;
        assert_eq!(
            args.len(),
            2,
            "{name}: `since` sockets get the seq argument"
        );
    }
    plain.close().await;
    seq.close().await;
    app.stop().await;
}

async fn legacy_update_task_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let task = app.create(json!({"title": "old"})).await;
    let id = task["id"].as_str().unwrap();
    let before = app.all_tasks().await;
    let bad: Vec<(Value, u16, &str)> = vec![
        (json!({"title": "x"}), 422, "task_id"),
        (json!({"task_id": 5, "title": "x"}), 404, ""),
        (json!({"task_id": [1], "title": "x"}), 422, "task_id"),
        (
            json!({"task_id": id, "user_email": "nope"}),
            422,
            "user_email",
        ),
        (json!({"task_id": id, "title": ""}), 422, "title"),
        (
            json!({"task_id": uuid::Uuid::now_v7().to_string()}),
            404,
            "",
        ),
        (json!([1, 2]), 422, "body"),
    ];
    for (body, status, field) in bad {
        let res = app
            .http
            .post(app.url("/update_task"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{body}");
        let err: Value = res.json().await.unwrap();
        if !field.is_empty() {
            assert_eq!(err["error"]["field"], field, "{body}");
        }
    }
    assert_eq!(
        app.all_tasks().await,
        before,
        "bad requests changed nothing"
    );
    let mut s = app.socket().await;
    let res = app
        .http
        .post(app.url("/update_task"))
        .json(&json!({"task_id": id, "user_email": "bob@example.com", "status": "Completed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let updated: Value = res.json().await.unwrap();
    assert_eq!(updated["status"], "completed");
    assert_eq!(updated["version"], 2);
    // The create's event may still be on its way (fan-out follows the REST reply).
    let args = next_named(&mut s, "task_updated").await;
    assert_eq!(args[0]["status"], "completed");
    s.close().await;
    app.stop().await;
}

async fn rate_limits_answer_429_and_rate_limited_acks(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.jwt_secret = Some(SECRET.parse().unwrap());
        s.rest_rate_limit = 3;
        s.rest_rate_burst = 3;
        s.socket_rate_limit = 3;
        s.socket_rate_burst = 3;
    })
    .await;
    let (alice, bob) = (token("alice", "acme"), token("bob", "acme"));
    let mut statuses = Vec::new();
    for i in 0..6 {
        let res = post(
            &app,
            "/api/tasks",
            &alice,
            json!({"title": format!("t{i}")}),
        )
        .await;
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            let retry: u64 = res.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
        }
    }
    assert_eq!(&statuses[..3], [201, 201, 201]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    assert_eq!(
        post(&app, "/api/tasks", &bob, json!({"title": "bob's"}))
            .await
            .status(),
        201,
        "another user has their own budget"
    );
    assert_eq!(
        get(&app, "/api/tasks", Some(&alice)).await.status(),
        200,
        "reads are not limited"
    );

    let mut s = socket_as(&app, &alice, None).await;
    let mut codes = Vec::new();
    for i in 0..6 {
        let ack = s
            .call("create_task", json!({"title": format!("s{i}")}))
            .await;
        codes.push(ack["error"]["code"].as_str().unwrap_or("ok").to_owned());
    }
    assert_eq!(&codes[..3], ["ok", "ok", "ok"]);
    assert!(codes[3..].iter().any(|c| c == "rate_limited"), "{codes:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let ack = s.call("create_task", json!({"title": "later"})).await;
    assert_eq!(ack["ok"], true, "the socket works again after a pause");
    s.close().await;
    app.stop().await;
}

on_both_backends!(
    token_matrix_on_rest_sse_and_sockets,
    issuer_and_audience_are_enforced,
    workspaces_never_see_each_other,
    task_rooms_and_presence,
    event_styles_send_each_set_once,
    legacy_update_task_route,
    rate_limits_answer_429_and_rate_limited_acks,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_mints_what_the_server_accepts() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args([
            "token",
            "--sub",
            "carol",
            "--workspace",
            "acme",
            "--name",
            "Carol",
        ])
        .env("JWT_SECRET", SECRET)
        .output()
        .expect("taskwire runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minted = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let app = with_auth(Backend::Sqlite).await;
    let res = post(&app, "/api/tasks", &minted, json!({"title": "by carol"})).await;
    assert_eq!(res.status(), 201);
    let task: Value = res.json().await.unwrap();
    assert_eq!(task["created_by"], "carol");
    app.stop().await;

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskwire"))
        .args(["token", "--sub", "carol"])
        .env_remove("JWT_SECRET")
        .output()
        .expect("taskwire runs");
    assert!(!out.status.success(), "no secret, no token");
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT_SECRET"));
}

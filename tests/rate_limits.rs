//! REST rate limits as users meet them. With default settings ordinary automation is never
//! cut off (the real binary, no rate-limit settings); with auth a flooding user gets 429 +
//! `Retry-After` while another user writes; per client address only when asked for, believing
//! a forwarding header only from a trusted proxy.

mod common;

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::Server;
use common::{Backend, TestApp, TestDb};
use futures::{StreamExt, stream};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use taskwire::config::{ForwardedHeader, RateLimitBy};

const SECRET: &str = "rate-limit-secret-0123456789";

/// The binary with none of taskwire's settings inherited from the caller's shell.
fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskwire"));
    for name in taskwire::config::setting_env_names() {
        cmd.env_remove(name);
    }
    cmd.env("LOG_LEVEL", "warn");
    cmd
}

/// The real binary on a fresh SQLite file, with no rate-limit settings: what users run.
struct Binary {
    server: Server,
    _db: TestDb,
    _files: tempfile::TempDir,
}

impl std::ops::Deref for Binary {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

async fn start_binary(env: &[(&'static str, &str)]) -> Binary {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let db = TestDb::new(Backend::Sqlite).await;
    let files = tempfile::tempdir().expect("temp dir");
    let mut vars = vec![(
        "JOB_RESULT_DIR",
        files.path().join("results").display().to_string(),
    )];
    vars.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let server = Server::start(&db.url, vars).await;
    Binary {
        server,
        _db: db,
        _files: files,
    }
}

fn token(sub: &str) -> String {
    let exp = jsonwebtoken::get_current_timestamp() + 3600;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": exp, "workspace": "acme"}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("claims serialise")
}

/// `POST /api/tasks` `count` times, `in_flight` at once, as a seeding script does; the statuses
/// and the created tasks' ids.
async fn seed(
    http: &reqwest::Client,
    base: &str,
    bearer: Option<&str>,
    count: usize,
    in_flight: usize,
) -> (Vec<u16>, Vec<String>) {
    let results: Vec<(u16, Option<String>)> = stream::iter(0..count)
        .map(|i| async move {
            let mut req = http
                .post(format!("{base}/api/tasks"))
                .json(&json!({"title": format!("seeded {i}")}));
            if let Some(token) = bearer {
                req = req.bearer_auth(token);
            }
            let res = req.send().await.expect("POST /api/tasks");
            let status = res.status().as_u16();
            let id = if status == 201 {
                let task: Value = res.json().await.expect("task JSON");
                task["id"].as_str().map(str::to_owned)
            } else {
                None
            };
            (status, id)
        })
        .buffer_unordered(in_flight)
        .collect()
        .await;
    let statuses = results.iter().map(|(s, _)| *s).collect();
    let ids = results.into_iter().filter_map(|(_, id)| id).collect();
    (statuses, ids)
}

/// How many of each status, for assertion messages.
fn tally(statuses: &[u16]) -> std::collections::BTreeMap<u16, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for s in statuses {
        *counts.entry(*s).or_insert(0) += 1;
    }
    counts
}

/// Checks a 429 the way a client reads it: `rate_limited` JSON and whole-second `Retry-After`.
async fn assert_rate_limited(res: reqwest::Response, what: &str) -> u64 {
    assert_eq!(res.status(), 429, "{what}");
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: 429 without Retry-After"))
        .to_str()
        .expect("ASCII header")
        .parse()
        .unwrap_or_else(|e| panic!("{what}: Retry-After is not whole seconds: {e}"));
    assert!(retry >= 1, "{what}: Retry-After {retry}");
    let body: Value = res.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "rate_limited", "{what}: {body}");
    retry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_default_settings_a_script_seeds_2000_tasks_and_sends_200_concurrent_patches() {
    let server = start_binary(&[]).await;
    let http = reqwest::Client::new();

    let (statuses, ids) = seed(&http, &server.base, None, 2000, 8).await;
    assert!(
        statuses.iter().all(|s| *s == 201),
        "every create succeeds with default settings: {:?}",
        tally(&statuses)
    );

    let patches = ids.iter().take(200).map(|id| {
        http.patch(format!("{}/api/tasks/{id}", server.base))
            .json(&json!({"status": "In Progress", "assignee": "migration"}))
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(patches)
        .await
        .into_iter()
        .map(|r| r.expect("PATCH").status().as_u16())
        .collect();
    assert_eq!(statuses.len(), 200);
    assert!(
        statuses.iter().all(|s| *s == 200),
        "every concurrent PATCH succeeds with default settings: {:?}",
        tally(&statuses)
    );

    let res = http
        .get(format!(
            "{}/api/tasks?status=in_progress&limit=1",
            server.base
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.headers()["x-total-count"], "200", "every PATCH applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_and_default_limits_a_bulk_script_passes_a_flood_is_cut_off_and_others_write() {
    let server = start_binary(&[("JWT_SECRET", SECRET)]).await;
    let http = reqwest::Client::new();
    let (alice, bob) = (token("alice"), token("bob"));

    // A user's bulk script fits in the default burst.
    let (statuses, _) = seed(&http, &server.base, Some(&alice), 2000, 8).await;
    assert!(
        statuses.iter().all(|s| *s == 201),
        "a 2 000-task seed of one user is not cut off: {:?}",
        tally(&statuses)
    );

    // Going on at full speed is a flood: it outruns the sustained rate and is refused.
    let start = Instant::now();
    let limited = loop {
        let (statuses, _) = seed(&http, &server.base, Some(&alice), 200, 16).await;
        if statuses.contains(&429) {
            break statuses;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "a user writing flat out for a minute was never limited"
        );
    };
    assert!(
        limited.iter().all(|s| [201, 429].contains(s)),
        "{:?}",
        tally(&limited)
    );

    let res = http
        .post(format!("{}/api/tasks", server.base))
        .bearer_auth(&alice)
        .json(&json!({"title": "one more"}))
        .send()
        .await
        .expect("POST");
    // The bucket refills at 100/s, so a lone write may slip through; a quick burst may not.
    let retry = if res.status() == 429 {
        assert_rate_limited(res, "alice while flooding").await
    } else {
        let (statuses, _) = seed(&http, &server.base, Some(&alice), 50, 16).await;
        assert!(statuses.contains(&429), "{:?}", tally(&statuses));
        1
    };

    let res = http
        .post(format!("{}/api/tasks", server.base))
        .bearer_auth(&bob)
        .json(&json!({"title": "bob's"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        res.status(),
        201,
        "another user writes while alice is limited"
    );
    let res = http
        .get(format!("{}/api/tasks?limit=1", server.base))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200, "reads are not limited");

    tokio::time::sleep(Duration::from_secs(retry)).await;
    let res = http
        .post(format!("{}/api/tasks", server.base))
        .bearer_auth(&alice)
        .json(&json!({"title": "after Retry-After"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 201, "alice writes again after Retry-After");
}

/// The burst of [`per_ip_app`].
const PER_IP_BURST: u32 = 3;

/// An app limited per client address: 1 write/s after a burst of [`PER_IP_BURST`].
async fn per_ip_app(trusted: &[&str], header: ForwardedHeader) -> TestApp {
    let trusted: Vec<_> = trusted
        .iter()
        .map(|r| r.parse().expect("a valid range in the test"))
        .collect();
    TestApp::spawn_with(Backend::Sqlite, |s| {
        s.rest_rate_limit = 1;
        s.rest_rate_burst = PER_IP_BURST;
        s.rest_rate_limit_by = RateLimitBy::Ip;
        s.trusted_proxies = trusted;
        s.forwarded_header = header;
    })
    .await
}

/// `POST /api/tasks` with extra headers, from `client`.
async fn post_with(
    app: &TestApp,
    client: &reqwest::Client,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client
        .post(app.url("/api/tasks"))
        .json(&json!({"title": "from behind a proxy"}));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("POST")
}

/// Writes with `headers` until one is refused; panics if none is within 30.
async fn exhaust(app: &TestApp, headers: &[(&str, &str)]) {
    for _ in 0..30 {
        let res = post_with(app, &app.http, headers).await;
        if res.status() == 429 {
            assert_rate_limited(res, &format!("{headers:?}")).await;
            return;
        }
        assert_eq!(res.status(), 201, "{headers:?}");
    }
    panic!("30 writes with {headers:?} at 1/s were never limited");
}

/// Asserts that writes with `headers` spend an exhausted budget: of a full burst sent at once,
/// at least one is refused. (A fresh budget would take them all; a slow machine may have
/// refilled a token or two since the budget ran out, so not all need be refused.)
async fn assert_spends_exhausted_budget(
    app: &TestApp,
    client: &reqwest::Client,
    headers: &[(&str, &str)],
    what: &str,
) {
    let burst = (0..PER_IP_BURST).map(|_| post_with(app, client, headers));
    let mut refused = 0;
    for res in futures::future::join_all(burst).await {
        if res.status() == 429 {
            assert_rate_limited(res, what).await;
            refused += 1;
        } else {
            assert_eq!(res.status(), 201, "{what}");
        }
    }
    assert!(refused > 0, "{what}: a fresh budget took the whole burst");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_behind_a_trusted_proxy_the_forwarded_client_address_is_believed() {
    let app = per_ip_app(&["127.0.0.1"], ForwardedHeader::XForwardedFor).await;
    exhaust(&app, &[("x-forwarded-for", "198.51.100.1")]).await;

    // Addresses the client wrote itself, left of what the proxy appended, change nothing.
    assert_spends_exhausted_budget(
        &app,
        &app.http,
        &[("x-forwarded-for", "198.51.100.2, 198.51.100.1")],
        "a spoofed left-hand entry",
    )
    .await;
    // Only the configured header is read: a client-sent `Forwarded` passes nginx untouched.
    assert_spends_exhausted_budget(
        &app,
        &app.http,
        &[
            ("forwarded", "for=198.51.100.3"),
            ("x-forwarded-for", "198.51.100.1"),
        ],
        "Forwarded while FORWARDED_HEADER=x-forwarded-for",
    )
    .await;

    let res = post_with(&app, &app.http, &[("x-forwarded-for", "198.51.100.2")]).await;
    assert_eq!(
        res.status(),
        201,
        "another client behind the same proxy has its own budget"
    );
    let res = post_with(&app, &app.http, &[]).await;
    assert_eq!(
        res.status(),
        201,
        "the proxy's own requests are its own caller"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_with_forwarded_header_rfc_7239_is_read_instead() {
    let app = per_ip_app(&["127.0.0.0/8", "::1"], ForwardedHeader::Forwarded).await;
    exhaust(
        &app,
        &[("forwarded", "for=\"198.51.100.1:4711\";proto=http")],
    )
    .await;
    assert_spends_exhausted_budget(
        &app,
        &app.http,
        &[
            ("forwarded", "for=198.51.100.1"),
            ("x-forwarded-for", "198.51.100.9"),
        ],
        "X-Forwarded-For while FORWARDED_HEADER=forwarded",
    )
    .await;
    let res = post_with(
        &app,
        &app.http,
        &[("forwarded", "for=\"[2001:db8::7]\", for=127.0.0.5")],
    )
    .await;
    assert_eq!(
        res.status(),
        201,
        "the right-most untrusted hop is the client"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_from_an_untrusted_peer_the_forwarded_header_is_ignored() {
    let app = per_ip_app(&["10.0.0.0/8"], ForwardedHeader::XForwardedFor).await;
    exhaust(&app, &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_spends_exhausted_budget(
        &app,
        &app.http,
        &[("x-forwarded-for", "198.51.100.2")],
        "a made-up X-Forwarded-For from an untrusted peer",
    )
    .await;

    // 127.0.0.2 is another loopback address on Linux: another client, with its own budget.
    let other = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().expect("address"))
        .build()
        .expect("client");
    let res = post_with(&app, &other, &[("x-forwarded-for", "198.51.100.1")]).await;
    assert_eq!(res.status(), 201, "another peer address is another caller");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_with_auth_off_nobody_is_limited_even_with_a_tiny_limit() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.rest_rate_limit = 1;
        s.rest_rate_burst = 1;
        s.rest_rate_limit_by = RateLimitBy::User;
    })
    .await;
    for i in 0..20 {
        let res = post_with(&app, &app.http, &[]).await;
        assert_eq!(res.status(), 201, "write {i}");
    }
    app.stop().await;
}

#[test]
fn invalid_trusted_proxies_are_refused_at_start_up_naming_the_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = binary()
        .env("TRUSTED_PROXIES", "10.0.0.0/8,proxy.internal")
        .env("PORT", "0")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}/taskwire.db", dir.path().display()),
        )
        .env("JOB_RESULT_DIR", dir.path().join("results"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server started with TRUSTED_PROXIES=10.0.0.0/8,proxy.internal");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("piped stderr"), &mut stderr)
        .expect("stderr");
    assert!(stderr.contains("proxy.internal"), "{stderr}");
    assert!(stderr.contains("TRUSTED_PROXIES"), "{stderr}");
    assert!(
        stderr.contains("not an IP address or CIDR range"),
        "{stderr}"
    );
}

//! E-mail over TLS against real SMTP servers that speak TLS with certificates the test makes (a
//! private CA): implicit TLS (`smtps://`) and STARTTLS (`smtp://…?tls=required`), a certificate
//! the app must refuse, and start-up refusals of a broken `SMTP_CA_FILE` by the real binary.
//! Outbox state is read over the REST API, as an operator would.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::smtp::{Pki, parse_mail, start_smtps, start_starttls};
use common::{Backend, TestApp};
use serde_json::{Value, json};

const FROM: &str = "taskwire <noreply@taskwire.test>";

/// Polls the task's e-mail notification every 50 ms until `done` holds; fails after `limit`.
async fn email_row(
    app: &TestApp,
    task_id: &str,
    limit: Duration,
    done: fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let rows = app
            .get_json(&format!("/api/notifications?task_id={task_id}"))
            .await;
        let row = rows
            .as_array()
            .expect("a JSON array")
            .iter()
            .find(|n| n["channel"] == "email")
            .cloned();
        if let Some(row) = &row
            && done(row)
        {
            return row.clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for the e-mail notification; last seen: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn settled(row: &Value) -> bool {
    matches!(row["status"].as_str(), Some("delivered" | "dead"))
}

async fn create_task_for(app: &TestApp, title: &str, to: &str) -> String {
    let task = app
        .create(json!({"title": title, "assignee_email": to}))
        .await;
    task["id"].as_str().expect("task id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtps_with_the_relays_ca_file_delivers_the_mail_and_logs_in() {
    let pki = Pki::new("Relay CA");
    let (port, inbox) = start_smtps(&pki.server_cert(&["127.0.0.1"]));
    let ca = pki.ca_file();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        // User and password percent-encoded, as a provider's often need to be.
        let url = format!("smtps://taskwire%40example.org:p%40ss%20w0rd@127.0.0.1:{port}");
        s.smtp_url = Some(url.parse().unwrap());
        s.smtp_ca_file = Some(ca);
        s.mail_from = FROM.into();
    })
    .await;

    let id = create_task_for(&app, "Ship the TLS relay", "bob@x.io").await;
    let row = email_row(&app, &id, Duration::from_secs(20), settled).await;
    assert_eq!(row["status"], "delivered", "{row}");
    assert_eq!(row["attempts"], 1, "{row}");
    assert_eq!(row["last_error"], Value::Null, "{row}");

    let mails = inbox.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(mails[0].to, ["bob@x.io"]);
    assert_eq!(
        mails[0].login,
        Some(("taskwire@example.org".into(), "p@ss w0rd".into())),
        "logged in with the decoded credentials"
    );
    let (headers, body) = parse_mail(&mails[0].data);
    assert_eq!(
        headers["subject"],
        "Task \"Ship the TLS relay\" was created"
    );
    assert!(
        headers["from"].contains("noreply@taskwire.test"),
        "{headers:?}"
    );
    assert!(body.contains("Ship the TLS relay"), "{body}");
    assert!(body.contains(&id), "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_upgrades_before_logging_in_and_delivers() {
    let pki = Pki::new("Relay CA");
    let (port, inbox) = start_starttls(&pki.server_cert(&["127.0.0.1"]));
    // `tls=required` is lettre's spelling; `tls=starttls` is accepted as the same.
    for (i, form) in ["required", "starttls"].into_iter().enumerate() {
        let ca = pki.ca_file();
        let app = TestApp::spawn_with(Backend::Sqlite, |s| {
            let url = format!("smtp://mailer:s3cret@127.0.0.1:{port}?tls={form}");
            s.smtp_url = Some(url.parse().unwrap());
            s.smtp_ca_file = Some(ca);
            s.mail_from = FROM.into();
        })
        .await;
        let title = format!("Over STARTTLS ({form})");
        let id = create_task_for(&app, &title, "carol@x.io").await;
        let row = email_row(&app, &id, Duration::from_secs(20), settled).await;
        assert_eq!(row["status"], "delivered", "tls={form}: {row}");
        assert_eq!(row["attempts"], 1, "tls={form}: {row}");

        let mails = inbox.mails();
        assert_eq!(mails.len(), i + 1, "tls={form}: {mails:#?}");
        let mail = &mails[i];
        assert_eq!(mail.to, ["carol@x.io"]);
        // The server offers AUTH only after STARTTLS, so a login means the session was
        // encrypted before the password was sent.
        assert_eq!(mail.login, Some(("mailer".into(), "s3cret".into())));
        let (headers, body) = parse_mail(&mail.data);
        assert_eq!(headers["subject"], format!("Task \"{title}\" was created"));
        assert!(body.contains(&id), "{body}");
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_fails_the_delivery_and_is_retried() {
    let pki = Pki::new("Somebody else's CA");
    let (port, inbox) = start_smtps(&pki.server_cert(&["127.0.0.1"]));
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        // No SMTP_CA_FILE: only the system's roots, which never signed this certificate.
        let url = format!("smtps://mailer:hunter2@127.0.0.1:{port}");
        s.smtp_url = Some(url.parse().unwrap());
        s.mail_from = FROM.into();
        // Short waits so that the retry happens within the test; the default schedule is
        // covered by the back-off unit tests.
        s.notify_backoff_seconds = vec![1];
        s.notify_poll_seconds = 1;
    })
    .await;

    let id = create_task_for(&app, "Refused", "dave@x.io").await;
    let row = email_row(&app, &id, Duration::from_secs(30), |r| {
        r["attempts"].as_i64().unwrap_or(0) >= 2 && r["status"] == "failed"
    })
    .await;
    let error = row["last_error"].as_str().expect("last_error is set");
    for part in [
        &format!("TLS with 127.0.0.1:{port} failed"),
        "not signed by a trusted CA",
        "SMTP_CA_FILE",
        "UnknownIssuer",
    ] {
        assert!(error.contains(part), "{part:?} missing from {error:?}");
    }
    assert!(!error.contains("hunter2"), "the password leaked: {error:?}");
    assert!(row["next_attempt_at"].is_string(), "{row}");

    let detail = app
        .get_json(&format!(
            "/api/notifications/{}",
            row["id"].as_str().unwrap()
        ))
        .await;
    let outcomes: Vec<&str> = detail["attempts_log"]
        .as_array()
        .expect("attempts_log")
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert!(
        outcomes.len() >= 2 && outcomes.iter().all(|o| *o == "retry"),
        "{detail}"
    );
    assert!(inbox.mails().is_empty(), "nothing was sent in the clear");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_name_is_refused() {
    let pki = Pki::new("Relay CA");
    let (port, inbox) = start_smtps(&pki.server_cert(&["mail.example.test"]));
    let ca = pki.ca_file();
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        let url = format!("smtps://mailer:hunter2@127.0.0.1:{port}");
        s.smtp_url = Some(url.parse().unwrap());
        s.smtp_ca_file = Some(ca);
        s.mail_from = FROM.into();
    })
    .await;

    let id = create_task_for(&app, "Wrong name", "erin@x.io").await;
    // `attempts` counts an attempt from its start; `failed` is recorded when it ends.
    let row = email_row(&app, &id, Duration::from_secs(20), |r| {
        r["status"] != "pending"
    })
    .await;
    assert_eq!(row["status"], "failed", "to be retried, not dead: {row}");
    let error = row["last_error"].as_str().expect("last_error is set");
    for part in [
        "not valid for the host name",
        "127.0.0.1",
        "mail.example.test",
    ] {
        assert!(error.contains(part), "{part:?} missing from {error:?}");
    }
    assert!(!error.contains("hunter2"), "the password leaked: {error:?}");
    assert!(inbox.mails().is_empty());
    app.stop().await;
}

/// Environment variables for one run of the binary.
type Env = Vec<(&'static str, String)>;

/// Runs the real binary with `env`, expecting it to refuse to start; returns its stderr.
fn refused_start(db_dir: &Path, env: &[(&str, String)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskwire"));
    cmd.env(
        "DATABASE_URL",
        format!("sqlite://{}/taskwire.db", db_dir.display()),
    )
    .env("HOST", "127.0.0.1")
    .env("PORT", "0")
    .env("LOG_LEVEL", "error")
    .env_remove("JWT_SECRET")
    .env_remove("SMTP_URL")
    .env_remove("SMTP_CA_FILE")
    .env_remove("WEBHOOK_URL")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().expect("taskwire runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("taskwire did not exit with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!status.success(), "taskwire started with {env:?}: {stdout}");
    assert!(!stdout.contains("listening"), "{stdout}");
    stderr
}

#[test]
fn a_broken_smtp_setting_stops_the_binary_at_start_up() {
    let pki = Pki::new("Relay CA");
    let db = tempfile::tempdir().unwrap();
    let smtps = || {
        (
            "SMTP_URL",
            "smtps://mailer:hunter2@127.0.0.1:465".to_owned(),
        )
    };
    let missing = pki
        .write("placeholder", "")
        .with_file_name("no-such-ca.pem");
    let not_pem = pki.write("notes.txt", "this is not a certificate\n");
    let garbage = pki.write(
        "garbage.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    // (environment, what stderr must say)
    let cases: Vec<(Env, Vec<String>)> = vec![
        (
            vec![smtps(), ("SMTP_CA_FILE", missing.display().to_string())],
            vec![
                format!("SMTP_CA_FILE {}", missing.display()),
                "cannot be read".into(),
            ],
        ),
        (
            vec![smtps(), ("SMTP_CA_FILE", not_pem.display().to_string())],
            vec!["holds no certificate".into()],
        ),
        (
            vec![smtps(), ("SMTP_CA_FILE", garbage.display().to_string())],
            vec!["certificate 1 of 1 is not a valid X.509 certificate".into()],
        ),
        (
            vec![
                ("SMTP_URL", "smtp://mailer:hunter2@127.0.0.1:25".into()),
                ("SMTP_CA_FILE", pki.ca_file().display().to_string()),
            ],
            vec!["SMTP_CA_FILE is set but SMTP_URL does not use TLS".into()],
        ),
        (
            vec![(
                "SMTP_URL",
                "smtp://mailer:hunter2@127.0.0.1:587?tls=maybe".into(),
            )],
            vec!["tls=\"maybe\" is not known".into()],
        ),
        (
            vec![(
                "SMTP_URL",
                "smtps://mailer:hunter2@127.0.0.1?tls=required".into(),
            )],
            vec!["drop the `tls` parameter".into()],
        ),
    ];
    for (env, expected) in cases {
        let stderr = refused_start(db.path(), &env);
        assert!(stderr.contains("taskwire could not start"), "{stderr}");
        for part in &expected {
            assert!(stderr.contains(part.as_str()), "{part:?} missing: {stderr}");
        }
        assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
    }
}

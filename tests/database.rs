//! The database at start-up and while running, through the real binary: start-up failures say
//! what failed and how to fix it, quickly and without a password; a SQLite file serves one
//! process; and a Postgres that goes away mid-run turns requests into 503 `unavailable` with
//! `Retry-After` until it is back, when taskwire carries on without a restart.
//!
//! The outage test runs its own Postgres server (Debian's binaries, a temp data folder, a free
//! port) so it can stop and start it; the machine's Postgres is only used for refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use common::sse::SseReader;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

const SECRET: &str = "hunter2secret";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A client; reqwest is built without a default TLS provider, so install one first.
fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn taskwire(database_url: &str, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_taskwire"));
    cmd.env("PORT", port.to_string())
        .env("DATABASE_URL", database_url)
        .env("REST_RATE_LIMIT", "0")
        .env("LOG_LEVEL", "warn")
        .env_remove("JWT_SECRET")
        .env_remove("DATABASE_TIMEOUT_SECONDS")
        .kill_on_drop(true);
    cmd
}

/// What a taskwire that is expected to give up printed, and how long it took.
struct Refusal {
    status: ExitStatus,
    stderr: String,
    took: Duration,
}

/// Runs taskwire on `database_url` and waits (at most `within`) for it to exit.
async fn refusal(database_url: &str, within: Duration) -> Refusal {
    let started = Instant::now();
    let output = tokio::time::timeout(
        within,
        taskwire(database_url, free_port())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("taskwire on {database_url} did not exit within {within:?}"))
    .expect("the taskwire binary runs");
    let refusal = Refusal {
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
    };
    assert!(
        !refusal.status.success(),
        "taskwire on {database_url} must fail, stderr:\n{}",
        refusal.stderr
    );
    assert!(
        !refusal.stderr.contains(SECRET),
        "the password leaked:\n{}",
        refusal.stderr
    );
    refusal
}

/// A taskwire server process, its base URL and the file its stderr goes to.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    async fn start(database_url: &str, log: &Path) -> Server {
        let port = free_port();
        let child = taskwire(database_url, port)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("log file"))
            .spawn()
            .expect("the taskwire binary starts");
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        };
        server
            .wait_until_ready(Duration::from_secs(20), "server never became ready")
            .await;
        server
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_until_ready(&self, within: Duration, what: &str) {
        let http = http();
        let start = Instant::now();
        loop {
            if let Ok(res) = http.get(self.url("/readyz")).send().await
                && res.status() == 200
            {
                return;
            }
            assert!(start.elapsed() < within, "{what}; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then the exit status (graceful shutdown must end within 15 s).
    async fn stop(mut self) -> ExitStatus {
        let pid = self.child.id().expect("the server is still running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("taskwire stops within 15 s of SIGTERM")
            .expect("wait for taskwire")
    }
}

#[tokio::test]
async fn a_second_server_on_one_sqlite_file_is_refused_and_one_starts_after_the_first_stops() {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("taskwire.db");
    let url = format!("sqlite://{}", database.display());
    let first = Server::start(&url, &dir.path().join("first.log")).await;

    let second = refusal(&url, Duration::from_secs(10)).await;
    assert!(
        second.took < Duration::from_secs(5),
        "took {:?}",
        second.took
    );
    for needle in [
        &database.display().to_string(),
        "another taskwire process",
        "PostgreSQL",
        "REDIS_URL",
    ] {
        assert!(
            second.stderr.contains(needle),
            "the refusal lacks {needle:?}:\n{}",
            second.stderr
        );
    }
    let ready = http().get(first.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the first server is unaffected");

    assert!(first.stop().await.success());
    let third = Server::start(&url, &dir.path().join("third.log")).await;
    assert!(third.stop().await.success());
}

#[tokio::test]
async fn an_unreachable_postgres_fails_start_up_within_seconds_naming_host_and_port() {
    let port = free_port();
    let url = format!("postgres://postgres:{SECRET}@127.0.0.1:{port}/test");
    let out = refusal(&url, Duration::from_secs(20)).await;
    // The default DATABASE_TIMEOUT_SECONDS is 5: taskwire retries that long, then gives up.
    assert!(out.took < Duration::from_secs(10), "took {:?}", out.took);
    let text = out.stderr.to_lowercase();
    for needle in [
        format!("cannot reach postgres at 127.0.0.1:{port}"),
        "connection refused".to_owned(),
        "database_timeout_seconds".to_owned(),
    ] {
        assert!(text.contains(&needle), "lacks {needle:?}:\n{}", out.stderr);
    }
    assert!(!text.contains("internal error"), "{}", out.stderr);
}

#[tokio::test]
async fn a_role_that_does_not_exist_is_named_at_once() {
    let admin = common::postgres_admin_url();
    let (_, rest) = admin.split_once('@').expect("an admin URL with a user");
    let url = format!("postgres://no_such_role_xyz:{SECRET}@{rest}");
    let out = refusal(&url, Duration::from_secs(10)).await;
    assert!(out.took < Duration::from_secs(3), "took {:?}", out.took);
    for needle in [
        "refused user \"no_such_role_xyz\"",
        "role \"no_such_role_xyz\" does not exist",
        "Check the user name and password in DATABASE_URL",
    ] {
        assert!(
            out.stderr.contains(needle),
            "lacks {needle:?}:\n{}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("internal error"), "{}", out.stderr);
}

#[tokio::test]
async fn a_database_that_does_not_exist_is_named_at_once() {
    let admin = common::postgres_admin_url();
    let (base, _) = admin
        .rsplit_once('/')
        .expect("an admin URL with a database");
    let out = refusal(
        &format!("{base}/no_such_database_xyz"),
        Duration::from_secs(10),
    )
    .await;
    assert!(out.took < Duration::from_secs(3), "took {:?}", out.took);
    assert!(
        out.stderr
            .contains("has no database \"no_such_database_xyz\": create it"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn an_unknown_scheme_is_refused_without_printing_the_password() {
    let out = refusal(
        &format!("mysql://root:{SECRET}@db.internal/tasks"),
        Duration::from_secs(10),
    )
    .await;
    assert!(
        out.stderr.contains(
            "DATABASE_URL must start with sqlite:// or postgres:// (got \"mysql://root:***@db.internal/tasks\")"
        ),
        "{}",
        out.stderr
    );
    // `--help` shows the environment's values next to the settings; not this one's.
    let help = taskwire(&format!("postgres://app:{SECRET}@db/tasks"), 0)
        .arg("--help")
        .output()
        .await
        .expect("taskwire --help runs");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("DATABASE_URL"), "{help}");
    assert!(
        !help.contains(SECRET),
        "--help leaked the password:\n{help}"
    );
}

#[tokio::test]
async fn a_missing_sqlite_folder_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder");
    let out = refusal(
        &format!("sqlite://{}/taskwire.db", missing.display()),
        Duration::from_secs(10),
    )
    .await;
    assert!(
        out.stderr.contains(&missing.display().to_string())
            && out.stderr.contains("Check that the folder exists"),
        "{}",
        out.stderr
    );
}

/// A Postgres server of this test's own, which it can stop and start again on the same port.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// uid and gid to run the server as when the tests run as root (Postgres refuses root).
    owner: Option<(u32, u32)>,
}

impl PrivatePostgres {
    fn start() -> PrivatePostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("the Postgres server binaries (/usr/lib/postgresql/*/bin) are required")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("pg_ctl").exists())
            .max()
            .expect("a Postgres version under /usr/lib/postgresql");
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let owner = (unsafe { libc::geteuid() } == 0).then(postgres_user);
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown data dir");
        }
        let pg = PrivatePostgres {
            dir,
            bin,
            port: free_port(),
            owner,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        pg.start_server();
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(self.bin.join(program));
        cmd.args(args)
            .stdout(Stdio::null())
            .current_dir(self.dir.path());
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.output().expect("a Postgres program runs");
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    fn stop_server(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(self.bin.join("pg_ctl"));
        cmd.args([
            "-D",
            self.data().to_str().unwrap(),
            "-m",
            "immediate",
            "stop",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            cmd.uid(uid).gid(gid);
        }
        let _ = cmd.status();
    }
}

/// The `postgres` system user that Debian's packages create.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| (fields[2].parse().ok(), fields[3].parse().ok()))
                .and_then(|(uid, gid)| Some((uid?, gid?)))
        })
        .expect("a postgres user to run a private Postgres server as")
}

async fn expect_unavailable(res: reqwest::Response, what: &str) {
    assert_eq!(res.status(), 503, "{what}");
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: a 503 carries Retry-After"))
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry >= 1, "{what}: Retry-After {retry}");
    let body: Value = res.json().await.expect("a JSON error body");
    assert_eq!(body["error"]["code"], "unavailable", "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgres_is_down_requests_answer_503_and_after_it_is_back_writes_work_again() {
    let pg = PrivatePostgres::start();
    let server = Server::start(&pg.url(), &pg.dir.path().join("taskwire.log")).await;
    let http = http();
    let before = http
        .post(server.url("/api/tasks"))
        .json(&json!({"title": "before the outage"}))
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 201);
    let before: Value = before.json().await.unwrap();
    let id = before["id"].as_str().unwrap();
    let mut stream = SseReader::new(
        http.get(server.url("/api/tasks/stream"))
            .send()
            .await
            .unwrap(),
    );

    pg.stop_server();
    let started = Instant::now();
    let write = http
        .post(server.url("/api/tasks"))
        .json(&json!({"title": "during the outage"}))
        .send()
        .await
        .unwrap();
    // DATABASE_TIMEOUT_SECONDS (5) bounds the wait for a connection.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a write waited {:?}",
        started.elapsed()
    );
    expect_unavailable(write, "POST /api/tasks").await;
    let update = http
        .patch(server.url(&format!("/api/tasks/{id}")))
        .json(&json!({"status": "completed"}))
        .send()
        .await
        .unwrap();
    expect_unavailable(update, "PATCH /api/tasks/{id}").await;
    let read = http.get(server.url("/api/tasks")).send().await.unwrap();
    expect_unavailable(read, "GET /api/tasks").await;
    let started = Instant::now();
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    let reason = ready["error"]["message"].as_str().unwrap_or_default();
    assert!(
        reason.contains("postgres database is not reachable"),
        "{ready}"
    );

    pg.start_server();
    server
        .wait_until_ready(
            Duration::from_secs(30),
            "taskwire did not become ready after Postgres came back",
        )
        .await;
    let after = http
        .post(server.url("/api/tasks"))
        .json(&json!({"title": "after the outage"}))
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 201, "log:\n{}", server.log());
    let update = http
        .patch(server.url(&format!("/api/tasks/{id}")))
        .json(&json!({"status": "completed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), 200);
    let tasks: Value = http
        .get(server.url("/api/tasks?sort=created_at"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let titles: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["before the outage", "after the outage"]);
    // Live delivery carries on over the stream opened before the outage, in order.
    for expected in ["task_created", "task_updated"] {
        let event = stream
            .next_data_within(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no {expected} after the outage"));
        let data: Value = serde_json::from_str(&event.data).unwrap();
        assert_eq!(data["type"], expected, "{data}");
    }

    assert!(server.stop().await.success());
}

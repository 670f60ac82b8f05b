//! Test helpers: start the real app on port 0 over a fresh database (a temp SQLite file or a
//! new Postgres database), small REST helpers, and a minimal Socket.IO client.

#![allow(dead_code)]

pub mod process;
pub mod sio;
pub mod smtp;
pub mod sse;
pub mod webhook;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use taskwire::store::Store;
use taskwire::{Application, Settings};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Postgres server the tests create their databases on (trust auth on this machine and in CI).
pub fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database made for one test; dropped by [`TestApp::stop`].
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/taskwire.db", dir.path().display());
                TestDb {
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let name = format!("taskwire_test_{}", uuid::Uuid::now_v7().simple());
                let pool = sqlx::PgPool::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("Postgres at {admin} is required for these tests: {e}")
                });
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await
                    .expect("create test database");
                pool.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                TestDb {
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// Another handle on the same database for a second app (a second process on it); it
    /// does not drop the database, its owner does.
    pub fn shared(&self) -> TestDb {
        TestDb {
            url: self.url.clone(),
            pg_name: None,
            _dir: None,
        }
    }

    pub async fn drop_database(&self) {
        let Some(name) = &self.pg_name else { return };
        if let Ok(pool) = sqlx::PgPool::connect(&postgres_admin_url()).await {
            let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
            pool.close().await;
        }
    }
}

/// A running app and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    /// Where this app writes job results.
    pub files: Arc<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

pub fn settings_for(db: &TestDb) -> Settings {
    let mut settings = Settings::defaults();
    settings.port = 0;
    settings.database_url = db.url.clone().into();
    settings.shutdown_timeout_seconds = 5;
    // Tests hammer the server on purpose; the rate-limit tests turn limits back on.
    settings.rest_rate_limit = 0;
    settings.socket_rate_limit = 0;
    settings
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        Self::spawn_full(backend, tweak, |_| {}).await
    }

    /// Like [`TestApp::spawn_with`], with a hook that sees the application before it serves
    /// (to register job kinds).
    pub async fn spawn_full(
        backend: Backend,
        tweak: impl FnOnce(&mut Settings),
        setup: impl FnOnce(&Application),
    ) -> TestApp {
        let db = TestDb::new(backend).await;
        Self::spawn_on(
            db,
            Arc::new(tempfile::tempdir().expect("temp dir")),
            tweak,
            setup,
        )
        .await
    }

    /// Starts an app on an existing database and result folder (a restart).
    pub async fn spawn_on(
        db: TestDb,
        files: Arc<tempfile::TempDir>,
        tweak: impl FnOnce(&mut Settings),
        setup: impl FnOnce(&Application),
    ) -> TestApp {
        // reqwest has rustls without a default provider; the server installs ring when it
        // starts, but a test's own client may be built first.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut settings = settings_for(&db);
        settings.job_result_dir = files.path().join("results");
        tweak(&mut settings);
        let app = Application::build(settings).await.expect("app builds");
        setup(&app);
        let addr = app.local_addr();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        TestApp {
            addr,
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            db,
            files,
            stop: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Shuts down gracefully but keeps the database and result folder, for a restart.
    pub async fn stop_keeping_data(mut self) -> (TestDb, Arc<tempfile::TempDir>) {
        self.shut_down().await;
        let db = std::mem::replace(
            &mut self.db,
            TestDb {
                url: String::new(),
                pg_name: None,
                _dir: None,
            },
        );
        (db, self.files.clone())
    }

    async fn shut_down(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("server stops within 10 s")
                .expect("server task did not panic");
            result.expect("server returns Ok on graceful shutdown");
        }
    }

    /// Signals shutdown and waits for the server to return; panics if it does not in time.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            let result = tokio::time::timeout(Duration::from_secs(10), server)
                .await
                .expect("server stops within 10 s")
                .expect("server task did not panic");
            result.expect("server returns Ok on graceful shutdown");
        }
        self.db.drop_database().await;
    }

    pub async fn create(&self, body: Value) -> Value {
        let res = self
            .http
            .post(self.url("/api/tasks"))
            .json(&body)
            .send()
            .await
            .expect("POST");
        assert_eq!(res.status(), 201, "create {body}");
        res.json().await.expect("task JSON")
    }

    pub async fn patch(&self, id: &str, body: Value) -> reqwest::Response {
        self.http
            .patch(self.url(&format!("/api/tasks/{id}")))
            .json(&body)
            .send()
            .await
            .expect("PATCH")
    }

    /// The JSON body of `GET path` (any status).
    pub async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON")
    }

    /// Every task, in creation order, as raw JSON (for before/after comparisons).
    pub async fn all_tasks(&self) -> Value {
        self.get_json("/api/tasks?limit=1000").await
    }

    pub async fn socket(&self) -> sio::Client {
        sio::Client::connect(self.addr, None).await
    }

    /// Opens the test's database directly (for event-log assertions).
    pub async fn store(&self) -> Arc<dyn Store> {
        taskwire::store::connect(&self.db.url, 2)
            .await
            .expect("store opens")
    }
}

/// Generates one `#[tokio::test]` per backend for each listed async fn taking a [`Backend`].
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::common::Backend::Sqlite).await }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() { super::$name($crate::common::Backend::Postgres).await }
            )*
        }
    };
}

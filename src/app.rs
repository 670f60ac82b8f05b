//! Assembly: [`Taskwire`] wires store, hub, service, Socket.IO and routes into one router that
//! can be mounted in any axum app; [`Application`] adds a listener and the shutdown sequence
//! for the `taskwire` binary and for tests (port 0).
//!
//! Shutdown sequence: stop readiness and long-lived streams (cancel token), close Socket.IO
//! sockets cleanly and end every other engine.io session ([`SocketCloser`]), let axum finish
//! in-flight requests, stop background tasks, close the pool — all within
//! `SHUTDOWN_TIMEOUT_SECONDS`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use engineioxide::SessionCloser;
use socketioxide::SocketIo;
use socketioxide::layer::SocketIoLayer;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::cluster::Cluster;
use crate::config::{RateLimitBy, Settings};
use crate::domain::error::{Error, Result};
use crate::domain::service::TaskService;
use crate::http::{self, AppState};
use crate::jobs::{JobManager, Registry, kinds};
use crate::notify::{self, Dispatcher};
use crate::ratelimit::KeyedLimit;
use crate::realtime::hub::Hub;
use crate::realtime::presence::Presence;
use crate::realtime::runtime::RealtimeRuntime;
use crate::realtime::socket::{self, SocketContext};
use crate::store::{self, Store, retention};
use crate::telemetry;

/// Why `REDIS_URL` is refused with a SQLite database.
fn several_processes_need_postgres() -> Error {
    Error::invalid(
        "REDIS_URL",
        "REDIS_URL runs several processes as one, which needs a PostgreSQL DATABASE_URL \
         (postgres://…): a SQLite file belongs to one process. Unset REDIS_URL to run one \
         process on SQLite.",
    )
}

/// Connection bursts (a deploy reconnecting thousands of tabs) need more than tokio's 128.
const LISTEN_BACKLOG: u32 = 4096;

/// Bytes read from a WebSocket at a time. Clients send only pongs (7 bytes) and small
/// commands; a larger message is read in several calls, and every connection keeps 3.75 KiB
/// less than engine.io's default 4 KiB.
const WS_READ_BUFFER: usize = 256;

/// Says at start-up when the REST limit does not do what an operator may expect.
fn report_rest_limit(settings: &Settings, auth_on: bool) {
    let by_user = settings.rest_rate_limit_by == RateLimitBy::User;
    if settings.rest_rate_limit > 0 && by_user && !auth_on {
        tracing::info!(
            "REST writes are not rate limited: REST_RATE_LIMIT counts per user and auth is off \
             (REST_RATE_LIMIT_BY=ip counts per client address)"
        );
    }
    if by_user && !settings.trusted_proxies.is_empty() {
        tracing::warn!("TRUSTED_PROXIES is only used with REST_RATE_LIMIT_BY=ip");
    }
}

/// A running taskwire instance without a listener: mount [`Taskwire::router`] anywhere.
pub struct Taskwire {
    settings: Arc<Settings>,
    store: Arc<dyn Store>,
    io: SocketIo,
    layer: Option<SocketIoLayer>,
    /// Reaches the engine.io sessions that no namespace knows about.
    sessions: SessionCloser,
    service: TaskService,
    hub: Arc<Hub>,
    auth: Arc<Authenticator>,
    presence: Arc<Presence>,
    rest_limit: Arc<KeyedLimit>,
    jobs: JobManager,
    cluster: Option<Arc<Cluster>>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Keeps a SQLite file to this process until it shuts down (`None` otherwise).
    _database_lock: Option<store::DatabaseLock>,
    /// Last field, so it is dropped after everything that spawns on it.
    realtime: RealtimeRuntime,
}

impl Taskwire {
    /// Connects to the database (migrating it) and starts the background tasks. A SQLite file
    /// is locked first: a second server on it would miss this one's events and, at start-up,
    /// mark its running jobs interrupted, so it is refused before it touches anything.
    pub async fn new(settings: Settings) -> Result<Self> {
        if settings.redis_url.is_some() && settings.database_url.starts_with("sqlite:") {
            return Err(several_processes_need_postgres());
        }
        let lock = store::open::lock(&settings.database_url)?;
        let store = store::connect_with_timeout(
            &settings.database_url,
            settings.database_max_connections,
            settings.database_timeout(),
        )
        .await?;
        let mut taskwire = Self::with_store(settings, store).await?;
        taskwire._database_lock = lock;
        Ok(taskwire)
    }

    /// Like [`Taskwire::new`] over an already opened store.
    pub async fn with_store(settings: Settings, store: Arc<dyn Store>) -> Result<Self> {
        telemetry::prometheus();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let cluster = match &settings.redis_url {
            Some(_) if store.backend() != "postgres" => {
                return Err(several_processes_need_postgres());
            }
            Some(url) => Some(
                Cluster::connect(
                    url.expose(),
                    &settings.redis_prefix,
                    shutdown.clone(),
                    &tracker,
                )
                .await?,
            ),
            None => None,
        };
        let settings = Arc::new(settings);
        let realtime = RealtimeRuntime::start(settings.realtime_threads(), settings.realtime_nice)
            .map_err(|e| Error::Unavailable(format!("cannot start the realtime runtime: {e}")))?;
        let (layer, io) = SocketIo::builder()
            .max_payload(settings.body_limit as u64)
            .max_buffer_size(settings.socket_buffer)
            .ws_read_buffer_size(WS_READ_BUFFER)
            .build_layer();
        let hub = Hub::start(
            io.clone(),
            store.clone(),
            shutdown.clone(),
            &tracker,
            realtime.handle(),
            &settings.event_style,
            cluster.clone(),
        )
        .await?;
        let outbox_ready = Arc::new(tokio::sync::Notify::new());
        let dispatcher = Dispatcher::new(&settings, store.clone(), outbox_ready.clone())?;
        let service = TaskService::new(store.clone(), hub.clone())
            .with_notifications(notify::plan(&settings), outbox_ready);
        let auth = Arc::new(Authenticator::from_settings(&settings));
        if !auth.required() {
            tracing::warn!(
                "JWT_SECRET is not set: authentication is OFF and every caller shares the \
                 `default` workspace. Set JWT_SECRET before exposing taskwire to anyone."
            );
        }
        let presence = match &cluster {
            Some(cluster) => Presence::shared(cluster.clone(), shutdown.clone(), &tracker),
            None => Arc::new(Presence::default()),
        };
        socket::register(
            &io,
            SocketContext {
                service: service.clone(),
                hub: hub.clone(),
                auth: auth.clone(),
                presence: presence.clone(),
                commands_per_second: settings.socket_rate_limit,
                command_burst: settings.socket_rate_burst,
            },
        );
        let rest_limit = Arc::new(KeyedLimit::new(
            settings.rest_rate_limit,
            settings.rest_rate_burst,
        ));
        report_rest_limit(&settings, auth.required());
        let registry = Arc::new(Registry::default());
        kinds::register_builtin(&registry);
        let jobs = JobManager::new(
            &settings,
            store.clone(),
            service.clone(),
            registry,
            hub.clone(),
        );
        tracker.spawn(jobs.clone().run(shutdown.clone(), tracker.clone()));
        tracker.spawn(jobs.clone().clean_up(shutdown.clone()));
        tracker.spawn(dispatcher.run(shutdown.clone(), tracker.clone()));
        tracker.spawn(retention::run(
            store.clone(),
            settings.clone(),
            shutdown.clone(),
        ));
        Ok(Taskwire {
            settings,
            store,
            io,
            layer: Some(layer),
            sessions: SessionCloser::new(),
            service,
            hub,
            auth,
            presence,
            rest_limit,
            jobs,
            cluster,
            shutdown,
            tracker,
            _database_lock: None,
            realtime,
        })
    }

    /// The full router (REST, SSE, Socket.IO, ops). Call once: the Socket.IO layer moves into it.
    pub fn router(&mut self) -> Router {
        let state = AppState {
            service: self.service.clone(),
            settings: self.settings.clone(),
            shutdown: self.shutdown.clone(),
            hub: self.hub.clone(),
            auth: self.auth.clone(),
            rest_limit: self.rest_limit.clone(),
            presence: self.presence.clone(),
            jobs: self.jobs.clone(),
            cluster: self.cluster.clone(),
        };
        let layer = self.layer.take().expect(
            "Taskwire::router is called once; the Socket.IO layer cannot be shared by two routers",
        );
        http::router(
            state,
            layer,
            self.sessions.clone(),
            self.realtime.handle().clone(),
        )
    }

    /// The task service, for apps that change tasks from their own code.
    pub fn service(&self) -> &TaskService {
        &self.service
    }

    /// The job manager; register an app's own job kinds on its registry.
    pub fn jobs(&self) -> &JobManager {
        &self.jobs
    }

    /// The Socket.IO handle, for apps that emit their own events.
    pub fn io(&self) -> &SocketIo {
        &self.io
    }

    /// What ends every Socket.IO connection; run it when the shutdown signal arrives, before
    /// waiting for in-flight requests, so that open long-polling requests do not hold them up.
    pub fn socket_closer(&self) -> SocketCloser {
        SocketCloser {
            io: self.io.clone(),
            sessions: self.sessions.clone(),
        }
    }

    /// Begins shutting down: readiness turns false and long-lived streams end.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Disconnects every socket, stops background tasks and closes the database, waiting at
    /// most the shutdown timeout for background tasks.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.socket_closer().close().await;
        self.tracker.close();
        if tokio::time::timeout(self.settings.shutdown_timeout(), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop in time");
        }
        self.store.close().await;
    }
}

/// Ends every Socket.IO connection of one [`Taskwire`] at shutdown, from a future that cannot
/// borrow it (a shutdown signal handler).
#[derive(Clone)]
pub struct SocketCloser {
    io: SocketIo,
    sessions: SessionCloser,
}

impl SocketCloser {
    /// Disconnects every socket from its namespace (disconnect handlers run, clients see a
    /// clean close), then ends every remaining engine.io session and refuses new ones.
    /// `SocketIo::close` alone leaves the sessions of clients whose CONNECT was refused: they
    /// are in no namespace, and their long-polling requests would stay pending until the
    /// next ping, holding up the HTTP server's graceful shutdown.
    pub async fn close(&self) {
        self.io.close().await;
        let ended = self.sessions.close_all();
        if ended > 0 {
            tracing::info!(
                sessions = ended,
                "ended engine.io sessions outside any namespace"
            );
        }
    }
}

/// The taskwire server: a bound listener plus a [`Taskwire`].
pub struct Application {
    listener: TcpListener,
    taskwire: Taskwire,
}

impl Application {
    /// Binds `HOST:PORT` (port 0 picks a free one) and builds the app.
    pub async fn build(settings: Settings) -> Result<Self> {
        let addr = SocketAddr::new(settings.host, settings.port);
        let listener =
            bind(addr).map_err(|e| Error::Unavailable(format!("cannot listen on {addr}: {e}")))?;
        let taskwire = Taskwire::new(settings).await?;
        Ok(Application { listener, taskwire })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener always has a local address")
    }

    /// The job manager, to register an app's own job kinds before serving.
    pub fn jobs(&self) -> &JobManager {
        self.taskwire.jobs()
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// Serves until `signal` resolves, then shuts down gracefully within the configured time.
    pub async fn run_until_stopped(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            listener,
            mut taskwire,
        } = self;
        let router = taskwire.router();
        let deadline = taskwire.settings.shutdown_timeout();
        let stop = CancellationToken::new();
        let (sockets, token) = (taskwire.socket_closer(), taskwire.shutdown.clone());
        let sessions = taskwire.sessions.clone();
        let stopping = stop.clone();
        tokio::spawn(async move {
            signal.await;
            tracing::info!("shutting down");
            token.cancel();
            sockets.close().await;
            stopping.cancel();
        });
        let limit = taskwire.settings.connection_limit();
        tracing::info!(max_connections = limit, "serving");
        let serve = http::serve::serve(listener, router, stop.clone(), limit, sessions);
        tokio::select! {
            () = serve => {},
            () = async { stop.cancelled().await; tokio::time::sleep(deadline).await } => {
                tracing::warn!("in-flight requests did not finish within the shutdown timeout");
            }
        };
        taskwire.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called (not when
/// the future is first polled), so a signal that arrives right after start-up is not lost to
/// the default action; call it before announcing that the server listens.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {},
                        _ = int.recv() => {},
                    }
                }
                (term, int) => {
                    tracing::error!(term = ?term.err(), int = ?int.err(), "cannot install signal handlers");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

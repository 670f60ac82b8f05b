//! taskwire: a real-time task server. Axum serves a REST task API, a Socket.IO layer on the
//! same port pushes `task_created` / `task_updated` / `task_deleted`, and everything is stored
//! in SQLite (default) or Postgres.
//!
//! Layout — where a request goes, by file name:
//! - [`config`]: settings, parsed once from flags and environment.
//! - [`app`]: wiring ([`Taskwire`], mountable router) and the server ([`Application`]).
//! - [`http`]: REST routes, extractors, error → response mapping, middleware.
//! - [`realtime`]: Socket.IO namespace and the hub that fans committed events out in order.
//! - [`auth`]: bearer tokens → the calling [`Actor`](domain::task::Actor) and its workspace.
//! - [`domain`]: task rules, queries, events and the [`TaskService`](domain::service::TaskService)
//!   every transport calls.
//! - [`notify`]: the notification dispatcher (webhook, e-mail) draining the outbox.
//! - [`jobs`]: background jobs (bulk update, export, import, an app's own kinds) with progress.
//! - [`ratelimit`]: per-caller and per-connection limits on writes.
//! - [`store`]: the [`Store`](store::Store) trait with SQLite and Postgres implementations.
//! - [`cluster`]: several processes on Postgres + Redis: news between hubs, shared presence.
//! - [`telemetry`]: tracing and Prometheus metrics.

pub mod app;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod domain;
/// Entry points for the fuzz targets in `fuzz/`; not a supported API.
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod jobs;
pub mod notify;
pub mod ratelimit;
pub mod realtime;
pub mod store;
pub mod telemetry;

pub use app::{Application, Taskwire};
pub use config::Settings;
pub use domain::error::{Error, Result};

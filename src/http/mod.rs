//! HTTP: one `router()` per resource, merged here with the cross-cutting layers (tracing,
//! metrics, CORS, body limit, timeout) and the Socket.IO layer on the same router.
//!
//! Every REST, SSE and ops route is registered through utoipa-axum's `OpenApiRouter` with its
//! `#[utoipa::path]`, so the OpenAPI document (`openapi/`, served at `/api/openapi.json`, shown
//! at `/api/docs` by `docs.rs`) is collected from the routes themselves; only the pages for
//! people (the board, the docs page) are plain routes.
//!
//! Layout: `tasks.rs` (task resource), `legacy.rs` (`POST /update_task`), `presence.rs`
//! (socket stats), `notifications.rs` (the outbox), `jobs.rs` (background jobs), `sse/` (the task and job event streams), `caller.rs` (who is calling), `client_addr.rs` (the client address behind trusted proxies), `health.rs` (ops endpoints), `extract.rs` (body and
//! header extractors), `error.rs` (error → response), `middleware.rs` (metrics, CORS, 404s), `socket_runtime.rs` (Socket.IO requests onto the
//! realtime runtime).

mod board;
mod caller;
mod client_addr;
mod docs;
mod error;
mod extract;
mod health;
mod heap_trim;
mod jobs;
mod legacy;
mod middleware;
mod notifications;
pub mod openapi;
mod presence;
pub mod serve;
mod socket_runtime;
mod sse;
mod tasks;

use std::sync::Arc;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::{Extension, Router};
use engineioxide::SessionCloser;
use socketioxide::layer::SocketIoLayer;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::status_of;

pub use tasks::query_pairs;

pub(crate) use jobs::read_submission;
pub(crate) use sse::stream_options;

pub use caller::{Caller, Writer};

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::domain::service::TaskService;
use crate::jobs::JobManager;
use crate::ratelimit::KeyedLimit;
use crate::realtime::hub::Hub;
use crate::realtime::presence::Presence;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The task service.
    pub service: TaskService,
    /// Settings, parsed once.
    pub settings: Arc<Settings>,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Live event fan-out, for SSE subscriptions.
    pub hub: Arc<Hub>,
    /// Verifies bearer tokens.
    pub auth: Arc<Authenticator>,
    /// REST write limit per caller.
    pub rest_limit: Arc<KeyedLimit>,
    /// Who is connected and which task rooms they are in.
    pub presence: Arc<Presence>,
    /// Background jobs.
    pub jobs: JobManager,
    /// The other processes, in several-process mode.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Every documented route: REST within the request timeout, then the SSE streams (outside it,
/// a stream lasts as long as its client), the ops endpoints and the document itself.
fn api_router(settings: &Settings) -> OpenApiRouter<AppState> {
    let rest = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(tasks::router())
        .merge(legacy::router())
        .merge(presence::router())
        .merge(notifications::router())
        .merge(jobs::router(settings.job_upload_limit))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(middleware::timed_out))
                .timeout(settings.request_timeout()),
        );
    rest.merge(sse::router())
        .merge(health::router())
        .routes(routes!(openapi::document))
}

/// The complete HTTP surface: REST, ops endpoints and Socket.IO (through `socketio`).
/// Socket.IO requests are served on `realtime` (see [`crate::realtime::runtime`]) and carry
/// `sessions`, which engine.io attaches itself to so that shutdown can end every session.
pub fn router(
    state: AppState,
    socketio: SocketIoLayer,
    sessions: SessionCloser,
    realtime: Handle,
) -> Router {
    let settings = state.settings.clone();
    let (routes, document) = api_router(&settings).split_for_parts();
    let document = openapi::finish(document, &settings);
    let mut routes = routes
        .layer(Extension(openapi::DocumentJson::new(&document)))
        .merge(docs::router());
    if settings.board {
        routes = routes.merge(board::router());
    }
    routes
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .layer(axum::middleware::from_fn(middleware::track))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .with_state(state)
        .layer(socketio)
        .layer(Extension(sessions))
        .layer(axum::middleware::from_fn_with_state(
            realtime,
            socket_runtime::on_realtime_runtime,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(middleware::OriginPolicy::new(&settings)),
            middleware::guard_socket_origin,
        ))
        .layer(middleware::cors(&settings))
        .layer(middleware::trace())
}

//! Operational endpoints: liveness, readiness (the database answers and we are not shutting
//! down) and Prometheus metrics.

use std::time::Duration;

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use engineioxide::{SessionCloser, SessionCounts};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::openapi::errors::Unavailable;
use crate::domain::error::{Error, Result};
use crate::telemetry;

/// How long `/readyz` waits for the database: shorter than the connection timeout, so a probe
/// with a few seconds' budget gets a 503 with the reason rather than timing out itself.
const READY_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// `/healthz`, `/readyz`, `/metrics`, with their descriptions.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// `/healthz`'s answer.
#[derive(Serialize, ToSchema)]
struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// `/readyz`'s answer.
#[derive(Serialize, ToSchema)]
struct Ready {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// `sqlite` or `postgres`.
    #[schema(example = "sqlite")]
    database: &'static str,
    /// `ok`, with several processes (`REDIS_URL`) only.
    #[serde(skip_serializing_if = "Option::is_none")]
    redis: Option<&'static str>,
}

/// Liveness: the process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "ops",
    security(()),
    responses(
        (status = 200, description = "The process is up.", body = Health),
        Unavailable,
    )
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database (and Redis) answer and the server is not shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "ops",
    security(()),
    responses(
        (status = 200, description = "Ready to serve.", body = Ready),
        (status = 503, description = "`unavailable`: shutting down, or the database or Redis does not answer; the message says which.",
            body = super::openapi::errors::ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>> {
    if state.shutdown.is_cancelled() {
        return Err(Error::Unavailable("shutting down".into()));
    }
    let store = state.service.store();
    let problem = match tokio::time::timeout(READY_PING_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => None,
        Ok(Err(Error::Unavailable(_))) => Some("no connection".to_owned()),
        Ok(Err(err)) => Some(err.public_message()),
        Err(_) => Some(format!(
            "no answer within {} s",
            READY_PING_TIMEOUT.as_secs()
        )),
    };
    if let Some(problem) = problem {
        return Err(Error::Unavailable(format!(
            "{} database is not reachable ({problem})",
            store.backend()
        )));
    }
    if let Some(cluster) = &state.cluster {
        cluster.check().await.map_err(Error::Unavailable)?;
        return Ok(Json(Ready {
            status: "ready",
            database: store.backend(),
            redis: Some("ok"),
        }));
    }
    Ok(Json(Ready {
        status: "ready",
        database: store.backend(),
        redis: None,
    }))
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "ops",
    security(()),
    responses(
        (status = 200, description = "Prometheus text format.", content_type = "text/plain", body = String),
        Unavailable,
    )
)]
async fn metrics(Extension(sessions): Extension<SessionCloser>) -> impl IntoResponse {
    let mut text = telemetry::prometheus().render();
    render_sessions(&mut text, sessions.count_sessions());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// Appends this app's engine.io sessions by write path, and how many of the direct ones were
/// upgraded from polling. Written from the app's own engine rather than through the
/// process-wide recorder, which several apps in one process share. A v4 WebSocket session
/// counted under `write_path="queue"` means the direct write path of the vendored engine.io
/// was not taken (see `vendor/engineioxide/PATCHES.md`).
fn render_sessions(text: &mut String, counts: SessionCounts) {
    let name = telemetry::metric::ENGINEIO_SESSIONS;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let rows = [
        ("polling", "queue", counts.polling),
        ("websocket", "queue", counts.websocket_queued),
        ("websocket", "direct", counts.websocket_direct),
    ];
    // Writing to a String cannot fail.
    let _ = writeln!(
        text,
        "# HELP {name} Open engine.io sessions by transport and write path.\n# TYPE {name} gauge"
    );
    for (transport, write_path, count) in rows {
        let _ = writeln!(
            text,
            "{name}{{transport=\"{transport}\",write_path=\"{write_path}\"}} {count}"
        );
    }
    let upgraded = telemetry::metric::ENGINEIO_UPGRADED_DIRECT;
    let _ = writeln!(
        text,
        "# HELP {upgraded} Direct WebSocket sessions that started on long-polling.\n\
         # TYPE {upgraded} gauge\n{upgraded} {}",
        counts.websocket_direct_upgraded
    );
}

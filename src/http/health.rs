//! Operational endpoints: liveness, readiness (the database answers and we are not shutting
//! down) and Prometheus metrics.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

use super::AppState;
use crate::domain::error::{Error, Result};
use crate::telemetry;

/// `/healthz`, `/readyz`, `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(state): State<AppState>) -> Result<Json<Value>> {
    if state.shutdown.is_cancelled() {
        return Err(Error::Unavailable("shutting down".into()));
    }
    let store = state.service.store();
    store.ping().await.map_err(|_| {
        Error::Unavailable(format!("{} database is not reachable", store.backend()))
    })?;
    if let Some(cluster) = &state.cluster {
        cluster.check().await.map_err(Error::Unavailable)?;
        return Ok(Json(
            json!({"status": "ready", "database": store.backend(), "redis": "ok"}),
        ));
    }
    Ok(Json(
        json!({"status": "ready", "database": store.backend()}),
    ))
}

async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry::prometheus().render(),
    )
}

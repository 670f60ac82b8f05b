//! Cross-cutting HTTP layers: per-request spans and metrics keyed by the matched route, CORS
//! from `FRONTEND_URL`, and JSON answers for unknown routes and methods.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::config::Settings;
use crate::domain::error::Error;
use crate::telemetry::metric;

/// Records request count and latency by method, matched route and status.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    Span::current().record("route", route.as_str());
    let method = req.method().to_string();
    let started = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(metric::HTTP_LATENCY, "method" => method.clone(), "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(metric::HTTP_REQUESTS, "method" => method, "route" => route, "status" => status).increment(1);
    response
}

/// A span per request; `route` is filled in once routing has matched.
pub fn trace()
-> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, impl Fn(&Request) -> Span + Clone> {
    TraceLayer::new_for_http().make_span_with(|req: &Request| {
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            route = tracing::field::Empty,
        )
    })
}

/// CORS from `FRONTEND_URL`: exact origins (with credentials), `*` only when configured,
/// nothing (same-origin only) when unset.
pub fn cors(settings: &Settings) -> CorsLayer {
    let origins: Vec<&str> = settings
        .frontend_url
        .iter()
        .map(|o| o.trim().trim_end_matches('/'))
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return CorsLayer::new();
    }
    let base = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            HeaderName::from_static("x-total-count"),
        ])
        .max_age(std::time::Duration::from_secs(600));
    if origins.contains(&"*") {
        return base
            .allow_origin(AllowOrigin::any())
            .allow_headers(tower_http::cors::Any);
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| match HeaderValue::from_str(o) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::warn!(origin = %o, "ignoring an unusable FRONTEND_URL origin");
                None
            }
        })
        .collect();
    base.allow_origin(AllowOrigin::list(list))
        .allow_credentials(true)
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::IF_MATCH,
            HeaderName::from_static("last-event-id"),
        ])
}

/// JSON 404 for paths no route serves.
pub async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    Error::NotFound(format!("no route for {method} {}", uri.path())).into_response()
}

/// JSON 405 for a known path with an unsupported method.
pub async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> Response {
    Error::MethodNotAllowed(format!("{method} is not allowed on {}", uri.path())).into_response()
}

/// JSON 408 when a REST request outlives `REQUEST_TIMEOUT_SECONDS`.
pub async fn timed_out(err: tower::BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        Error::Timeout("the request took too long".into()).into_response()
    } else {
        Error::Internal(err).into_response()
    }
}

/// Which browser origins may open Socket.IO connections. CORS does not apply to WebSockets
/// and a polling POST has its effect before CORS blocks the reply, so the Origin header is
/// checked here: no Origin (not a browser), the same origin, or one listed in `FRONTEND_URL`.
#[derive(Debug)]
pub struct OriginPolicy {
    any: bool,
    allowed: Vec<String>,
}

impl OriginPolicy {
    /// The policy of `FRONTEND_URL`.
    pub fn new(settings: &Settings) -> Self {
        let allowed: Vec<String> = settings
            .frontend_url
            .iter()
            .map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase())
            .filter(|o| !o.is_empty())
            .collect();
        OriginPolicy {
            any: allowed.iter().any(|o| o == "*"),
            allowed,
        }
    }

    fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/').to_ascii_lowercase();
        if self.any || self.allowed.contains(&origin) {
            return true;
        }
        let authority = origin.split_once("://").map(|(_, rest)| rest);
        matches!((authority, host), (Some(a), Some(h)) if a == h.to_ascii_lowercase())
    }
}

/// Refuses Socket.IO requests from browser origins the policy does not allow (403).
pub async fn guard_socket_origin(
    axum::extract::State(policy): axum::extract::State<std::sync::Arc<OriginPolicy>>,
    req: Request,
    next: Next,
) -> Response {
    if req
        .uri()
        .path()
        .starts_with(crate::realtime::runtime::SOCKET_IO_PATH)
    {
        let headers = req.headers();
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
            if !policy.allows(origin, host) {
                return Error::Forbidden(format!(
                    "origin {origin} is not allowed; set FRONTEND_URL"
                ))
                .into_response();
            }
        }
    }
    next.run(req).await
}

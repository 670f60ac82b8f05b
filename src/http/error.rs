//! The one mapping from [`Error`] to an HTTP response: status, JSON body
//! `{"error": {"code", "message"}}` and the headers some statuses need. Internal errors are
//! logged here with their cause chain and shown to the client only as `internal`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::error::Error;

/// `Retry-After` of a 503: about the time a restarting database or a peer process takes to be
/// back, and no shorter than the wait for a database connection, so retries do not pile up.
pub const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 5;

/// The HTTP status for an error.
pub fn status_of(err: &Error) -> StatusCode {
    match err {
        Error::InvalidJson(_) => StatusCode::BAD_REQUEST,
        Error::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        Error::NotFound(_) => StatusCode::NOT_FOUND,
        Error::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
        Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        Error::Conflict(_) => StatusCode::CONFLICT,
        Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::ResyncRequired { .. } => StatusCode::GONE,
        Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        Error::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = status_of(&self);
        if let Error::Internal(cause) = &self {
            let mut chain = cause.to_string();
            let mut source = cause.source();
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            tracing::error!(error = %chain, "request failed");
        }
        let mut body = json!({"error": {"code": self.code(), "message": self.public_message()}});
        match &self {
            Error::Validation { field, .. } => body["error"]["field"] = json!(field),
            Error::PreconditionFailed {
                current: Some(v), ..
            } => body["error"]["current_version"] = json!(v),
            _ => {}
        }
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Error::RateLimited { retry_after } => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after.as_secs().max(1)),
                );
            }
            Error::Unavailable(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECONDS),
                );
            }
            Error::Unauthorized(_) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"taskwire\""),
                );
            }
            _ => {}
        }
        response
    }
}

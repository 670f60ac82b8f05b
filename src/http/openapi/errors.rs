//! The error responses of the document: the one `{"error": {"code", "message"}}` body and one
//! response type per status, listed by each route in its `#[utoipa::path(responses(...))]` so
//! a route says exactly which errors it can answer with. The statuses and codes are those of
//! [`crate::http::status_of`] and [`crate::Error::code`].

use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// `{"code", "message"}` plus the extra fields some errors carry.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code: `invalid_json`, `validation_failed`, `not_found`,
    /// `method_not_allowed`, `precondition_failed`, `conflict`, `payload_too_large`,
    /// `unsupported_media_type`, `unauthorized`, `forbidden`, `rate_limited`, `timeout`,
    /// `unavailable` or `internal`.
    #[schema(example = "not_found")]
    pub code: String,
    /// What went wrong, for a person.
    #[schema(example = "task 0193e2c4-5b1a-7c3e-9f00-1234567890ab does not exist")]
    pub message: String,
    /// The offending field or query parameter (`validation_failed` only; `body` when the body
    /// is not an object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The task's current version (`precondition_failed`, when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<i64>,
}

/// 400 `invalid_json`.
#[derive(IntoResponses)]
#[response(
    status = 400,
    description = "`invalid_json`: the body is not valid JSON (an empty body included)."
)]
pub struct BadJson(#[allow(dead_code)] ErrorBody);

/// 401 `unauthorized`.
#[derive(IntoResponses)]
#[response(
    status = 401,
    description = "`unauthorized`: the token is missing or invalid (only when `JWT_SECRET` is set).",
    headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"taskwire\"`"))
)]
pub struct Unauthorized(#[allow(dead_code)] ErrorBody);

/// 404 `not_found`.
#[derive(IntoResponses)]
#[response(
    status = 404,
    description = "`not_found`: no such thing in the caller's workspace, or an id that is not a UUID."
)]
pub struct NotFound(#[allow(dead_code)] ErrorBody);

/// 408 `timeout`.
#[derive(IntoResponses)]
#[response(
    status = 408,
    description = "`timeout`: the request ran longer than `REQUEST_TIMEOUT_SECONDS`."
)]
pub struct Timeout(#[allow(dead_code)] ErrorBody);

/// 409 `conflict`.
#[derive(IntoResponses)]
#[response(
    status = 409,
    description = "`conflict`: the change conflicts with the current state."
)]
pub struct Conflict(#[allow(dead_code)] ErrorBody);

/// 412 `precondition_failed`.
#[derive(IntoResponses)]
#[response(
    status = 412,
    description = "`precondition_failed`: `If-Match` names another version or cannot be parsed; nothing changed. `current_version` says the task's version when known."
)]
pub struct PreconditionFailed(#[allow(dead_code)] ErrorBody);

/// 413 `payload_too_large`.
#[derive(IntoResponses)]
#[response(
    status = 413,
    description = "`payload_too_large`: the body is larger than `BODY_LIMIT` (`JOB_UPLOAD_LIMIT` for job submissions)."
)]
pub struct TooLarge(#[allow(dead_code)] ErrorBody);

/// 415 `unsupported_media_type`.
#[derive(IntoResponses)]
#[response(
    status = 415,
    description = "`unsupported_media_type`: the body is not `application/json` (or `application/*+json`)."
)]
pub struct NotJson(#[allow(dead_code)] ErrorBody);

/// 422 `validation_failed`.
#[derive(IntoResponses)]
#[response(
    status = 422,
    description = "`validation_failed`: a field or query parameter is missing, has the wrong type or an invalid value, or the body is not an object; `field` names it. Nothing changed."
)]
pub struct Invalid(#[allow(dead_code)] ErrorBody);

/// 429 `rate_limited`.
#[derive(IntoResponses)]
#[response(
    status = 429,
    description = "`rate_limited`: the caller's REST write budget (`REST_RATE_LIMIT`, `REST_RATE_BURST`) is spent; nothing changed.",
    headers(("Retry-After" = u64, description = "Whole seconds to wait."))
)]
pub struct RateLimited(#[allow(dead_code)] ErrorBody);

/// 503 `unavailable`.
#[derive(IntoResponses)]
#[response(
    status = 503,
    description = "`unavailable`: shutting down, the database (or Redis) is unreachable, or more than `MAX_CONNECTIONS` are open.",
    headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))
)]
pub struct Unavailable(#[allow(dead_code)] ErrorBody);

//! The one error type of taskwire. Every failure a client can see is a variant here with a
//! stable `code`; transports (REST, Socket.IO acks) map it to their own shape in one place each.

use std::time::Duration;

/// A failure of a taskwire operation, whatever transport asked for it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request body was not valid JSON.
    #[error("malformed JSON: {0}")]
    InvalidJson(String),
    /// A field is missing, has the wrong type or an invalid value; `field` names it.
    #[error("{message}")]
    Validation {
        /// The offending field (dotted path), or `body` for the whole payload.
        field: String,
        /// What is wrong with it, for a person.
        message: String,
    },
    /// The named thing does not exist (or is not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// `If-Match` named a version that is not the current one.
    #[error("{message}")]
    PreconditionFailed {
        /// What did not match, for a person.
        message: String,
        /// The version the task has now, when known.
        current: Option<i64>,
    },
    /// The path exists but not with this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The change conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The request body is larger than the configured limit.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The request body is not JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// Missing or invalid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials that do not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The requested replay position is no longer in the event log.
    #[error("events after {since} are no longer kept; refetch and resume from {latest}")]
    ResyncRequired {
        /// The position asked for.
        since: i64,
        /// The latest sequence number.
        latest: i64,
    },
    /// Too many requests; try again after the given time.
    #[error("rate limit exceeded; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// When the client may try again.
        retry_after: Duration,
    },
    /// The request took longer than the configured timeout.
    #[error("{0}")]
    Timeout(String),
    /// The server is shutting down or a dependency is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an infrastructure failure; details are logged, never shown to clients.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidJson(_) => "invalid_json",
            Error::Validation { .. } => "validation_failed",
            Error::NotFound(_) => "not_found",
            Error::PreconditionFailed { .. } => "precondition_failed",
            Error::MethodNotAllowed(_) => "method_not_allowed",
            Error::Conflict(_) => "conflict",
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::Unauthorized(_) => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::ResyncRequired { .. } => "resync_required",
            Error::RateLimited { .. } => "rate_limited",
            Error::Timeout(_) => "timeout",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// Shorthand for a validation error on one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Wraps an infrastructure failure so it is logged with its cause chain and shown as
    /// `internal`.
    pub fn internal(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Internal(Box::new(err))
    }

    /// The field a validation error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::Validation { field, .. } => Some(field),
            _ => None,
        }
    }

    /// The message safe to show a client: internal details never leave the server.
    pub fn public_message(&self) -> String {
        self.to_string()
    }
}

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! Replies to socket commands: `{"ok": true, …}` or `{"ok": false, "error": {code, message}}`,
//! with the same codes as REST error bodies.

use serde::Serialize;

use crate::domain::error::{Error, Result};

/// Reply to a socket command.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Ack<T: Serialize> {
    /// The command worked.
    Ok {
        /// Always `true`.
        ok: bool,
        /// What the command produced.
        #[serde(flatten)]
        body: T,
    },
    /// The command failed.
    Err {
        /// Always `false`.
        ok: bool,
        /// Code and message, as in REST error bodies.
        error: AckError,
    },
}

/// The error part of a failed ack.
#[derive(Debug, Serialize)]
pub struct AckError {
    /// Stable code (`validation_failed`, `not_found`, …).
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The offending field, for validation errors (as in REST 422 bodies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl<T: Serialize> From<Result<T>> for Ack<T> {
    fn from(result: Result<T>) -> Self {
        match result {
            Ok(body) => Ack::Ok { ok: true, body },
            Err(err) => {
                if let Error::Internal(cause) = &err {
                    tracing::error!(error = %cause, "socket command failed");
                }
                Ack::Err {
                    ok: false,
                    error: AckError {
                        code: err.code(),
                        message: err.public_message(),
                        field: err.field().map(str::to_owned),
                    },
                }
            }
        }
    }
}

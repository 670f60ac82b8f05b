//! Request extractors whose failures are taskwire [`Error`]s, so a bad body or header gets the
//! same JSON error shape as everything else (never axum's plain-text rejections).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{StatusCode, header, request::Parts};
use serde_json::Value;

use super::AppState;
use crate::domain::error::Error;

/// A JSON request body, any JSON value (the domain decides which shapes it accepts).
/// Wrong Content-Type → 415, over the body limit → 413, not JSON → 400.
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|mime| {
                let mime = mime.trim().to_ascii_lowercase();
                mime == "application/json"
                    || (mime.starts_with("application/") && mime.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Error::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge {
                    limit: state.settings.body_limit,
                }
            } else {
                Error::InvalidJson(rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Error::InvalidJson(e.to_string()))
    }
}

/// The version named by `If-Match`: `Ok(None)` when the header is absent or `*`, `Ok(Some(v))`
/// for `"3"`, `W/"3"` or a bare `3`, and for anything else the 412 it earns, which the handler
/// returns only once the rest of the request has been found valid: a request for a task that
/// does not exist, or with a bad body, is told that first (RFC 9110 section 13.2.2 judges
/// preconditions last), and a tag that matches no version only means the precondition failed.
pub struct IfMatch(pub Result<Option<i64>, Error>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _: &S,
    ) -> Result<Self, std::convert::Infallible> {
        let Some(raw) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(Ok(None)));
        };
        let text = raw.to_str().unwrap_or("").trim();
        if text == "*" {
            return Ok(IfMatch(Ok(None)));
        }
        let tag = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
        Ok(IfMatch(tag.parse::<i64>().map(Some).map_err(|_| {
            Error::PreconditionFailed {
                message: format!("If-Match must be a version ETag such as \"3\" (got {text:?})"),
                current: None,
            }
        })))
    }
}

/// The `ETag` value for a version.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

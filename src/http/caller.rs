//! Who is calling a route: [`Caller`] authenticates the bearer token (header, or `?token=` for
//! clients such as EventSource that cannot set headers); [`Writer`] also takes one unit of the
//! caller's REST write limit.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{HeaderMap, header, request::Parts};

use super::AppState;
use crate::domain::error::Error;
use crate::domain::task::Actor;

/// The authenticated caller of a request.
pub struct Caller(pub Actor);

/// The authenticated caller of a write, within its rate limit.
pub struct Writer(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if let Some(actor) = parts.extensions.get::<Actor>() {
            return Ok(Caller(actor.clone()));
        }
        let actor = state.auth.authenticate(bearer(parts).as_deref())?;
        parts.extensions.insert(actor.clone());
        Ok(Caller(actor))
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let Caller(actor) = Caller::from_request_parts(parts, state).await?;
        let key = match &actor.user {
            Some(user) => format!("user:{}:{user}", actor.workspace),
            None => match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
                Some(ConnectInfo(addr)) => format!("ip:{}", addr.ip()),
                None => "anonymous".to_owned(),
            },
        };
        state.rest_limit.check(&key)?;
        Ok(Writer(actor))
    }
}

/// The token of a request: `Authorization: Bearer …`, else the `token` query parameter.
pub fn bearer(parts: &Parts) -> Option<String> {
    if parts.headers.contains_key(header::AUTHORIZATION) {
        // A malformed header is not silently replaced by a query token.
        return bearer_header(&parts.headers);
    }
    query_token(parts.uri.query())
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_header(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// The `token` query parameter, if any.
pub fn query_token(query: Option<&str>) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query?)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

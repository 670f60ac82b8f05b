//! Where a token travels: the `Authorization: Bearer …` header or the `token` query parameter
//! of the HTTP request that carries a REST call, an SSE stream or a Socket.IO handshake. Every
//! transport finds its token here and hands it to [`Authenticator`](super::Authenticator).

use http::request::Parts;
use http::{HeaderMap, header};

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

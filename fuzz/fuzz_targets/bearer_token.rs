//! Where a token travels: the `Authorization` header (bytes before the first NUL) and the
//! request's query string (after it, `?token=`). The token found is the trimmed remainder of a
//! `Bearer` header, else the first `token` query value; a header that is present is never
//! replaced by the query. Whatever is found, a server with a secret refuses it as 401 (it is
//! not signed), never anything else.
#![no_main]

use http::{HeaderValue, Request, header};
use libfuzzer_sys::fuzz_target;
use taskwire::auth::{Authenticator, bearer, bearer_header, query_token};
use taskwire::http::query_pairs;
use taskwire_fuzz::assert_rejected;

fuzz_target!(|data: &[u8]| {
    let (auth, query) = match data.iter().position(|&b| b == 0) {
        Some(at) => (Some(&data[..at]), std::str::from_utf8(&data[at + 1..]).ok()),
        None => (Some(data), None),
    };
    let mut builder = Request::builder().uri(match query {
        Some(query) => format!("/api/tasks?{query}"),
        None => "/api/tasks".to_owned(),
    });
    if let Some(auth) = auth.filter(|a| !a.is_empty()) {
        let Ok(value) = HeaderValue::from_bytes(auth) else {
            return;
        };
        builder = builder.header(header::AUTHORIZATION, value);
    }
    // A target the HTTP parser would refuse never reaches the extractor.
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();

    let from_header = bearer_header(&parts.headers);
    if let Some(token) = &from_header {
        assert_eq!(token, token.trim(), "a header token is trimmed");
        let value = parts.headers[header::AUTHORIZATION]
            .to_str()
            .expect("a header that yielded a token is text");
        let (scheme, rest) = value.trim().split_once(' ').expect("scheme and token");
        assert!(scheme.eq_ignore_ascii_case("bearer"));
        assert_eq!(token, rest.trim());
    }
    let from_query = query_token(parts.uri.query());
    if let Some(token) = &from_query {
        let pairs = query_pairs(parts.uri.query()).expect("a query that yielded a token decodes");
        let first = pairs.iter().find(|(k, _)| k == "token").map(|(_, v)| v);
        assert_eq!(first, Some(token), "the first `token` value is the token");
    }
    let token = bearer(&parts);
    if parts.headers.contains_key(header::AUTHORIZATION) {
        assert_eq!(token, from_header, "a present header decides");
    } else {
        assert_eq!(token, from_query);
    }

    let verifier = Authenticator::new(Some("fuzz-secret"), None, None);
    if let Err(err) = verifier.authenticate(token.as_deref()) {
        assert_rejected(&err, &["unauthorized"]);
    }
    let open = Authenticator::new(None, None, None);
    let actor = open
        .authenticate(token.as_deref())
        .expect("with auth off every caller is let in");
    assert_eq!(actor.workspace, "default");
});

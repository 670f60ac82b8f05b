//! Replay cursors: the SSE `Last-Event-ID` header and `?lastEventId=` / `?named=`, split at
//! the first NUL byte (header before, query after), and the socket's `{"since": n}` when the
//! input is JSON. A position is either refused naming `Last-Event-ID` or is a non-negative
//! number that is exactly the one the client sent.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use taskwire::fuzzing::{socket_since, sse_stream_options};
use taskwire::http::query_pairs;
use taskwire_fuzz::assert_rejected;

fuzz_target!(|data: &[u8]| {
    if let Ok(payload) = serde_json::from_slice::<Value>(data) {
        match socket_since(&payload) {
            Ok(Some(since)) => {
                assert!(since >= 0);
                assert_eq!(payload.get("since").and_then(Value::as_i64), Some(since));
            }
            Ok(None) => assert!(matches!(payload.get("since"), None | Some(Value::Null))),
            Err(err) => {
                assert_rejected(&err, &["validation_failed"]);
                assert_eq!(err.field(), Some("since"));
            }
        }
    }

    let (header, query) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let mut headers = HeaderMap::new();
    if !header.is_empty() {
        // Bytes no HTTP parser would hand over as a header value never reach the handler.
        let Ok(value) = HeaderValue::from_bytes(header) else {
            return;
        };
        headers.insert("last-event-id", value);
    }
    let query = match query.map(std::str::from_utf8) {
        Some(Ok(query)) => Some(query),
        Some(Err(_)) => return,
        None => None,
    };
    match sse_stream_options(&headers, query) {
        Ok((named, last_event_id)) => {
            let pairs = query_pairs(query).expect("the handler read this query");
            let get = |key: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k == key)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(named, matches!(get("named"), Some("1" | "true" | "yes")));
            let sent = headers
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
                .or_else(|| get("lastEventId"))
                .map(str::trim)
                .filter(|v| !v.is_empty());
            match (sent, last_event_id) {
                (None, None) => {}
                (Some(sent), Some(position)) => {
                    assert!(position >= 0, "a resume position is never negative");
                    assert_eq!(sent.parse::<i64>().ok(), Some(position));
                }
                other => panic!("position sent and read differ: {other:?}"),
            }
        }
        Err(err) => {
            assert_rejected(&err, &["validation_failed"]);
            assert!(
                matches!(err.field(), Some("Last-Event-ID" | "query")),
                "{err:?}"
            );
        }
    }
});

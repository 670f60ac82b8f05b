//! List query strings (`GET /api/tasks?…`, job filters): a query string either is refused
//! naming the key, or yields a query within limits whose canonical form parses back to the
//! same query; decoded pairs survive re-encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskwire::domain::query::{MAX_LIMIT, TaskQuery};
use taskwire::http::query_pairs;
use taskwire_fuzz::assert_rejected;

/// The query as a client would write it, every known key spelled out.
fn canonical(query: &TaskQuery) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    if let Some(status) = query.filter.status {
        pairs.push(("status".to_owned(), status.as_str().to_owned()));
    }
    if let Some(assignee) = &query.filter.assignee {
        pairs.push(("assignee".to_owned(), assignee.clone()));
    }
    if let Some(q) = &query.filter.q {
        pairs.push(("q".to_owned(), q.clone()));
    }
    pairs.push(("limit".to_owned(), query.limit.to_string()));
    pairs.push(("offset".to_owned(), query.offset.to_string()));
    let sort: Vec<String> = query
        .sort
        .iter()
        .map(|key| {
            format!(
                "{}{}",
                if key.descending { "-" } else { "" },
                key.field.column()
            )
        })
        .collect();
    pairs.push(("sort".to_owned(), sort.join(",")));
    pairs
}

fn parse(pairs: &[(String, String)]) -> taskwire::Result<TaskQuery> {
    TaskQuery::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

fuzz_target!(|data: &[u8]| {
    // A URI's query is ASCII by the time it reaches the handler; any str is a superset.
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let pairs = match query_pairs(Some(raw)) {
        Ok(pairs) => pairs,
        Err(err) => {
            assert_rejected(&err, &["validation_failed"]);
            assert_eq!(err.field(), Some("query"));
            return;
        }
    };
    let encoded = serde_urlencoded::to_string(&pairs).expect("string pairs encode");
    assert_eq!(
        query_pairs(Some(&encoded)).expect("an encoded query decodes"),
        pairs,
        "pairs survive re-encoding"
    );
    match parse(&pairs) {
        Ok(query) => {
            assert!(
                (0..=MAX_LIMIT).contains(&query.limit),
                "limit within 0..=1000"
            );
            assert!(query.offset >= 0, "offset is not negative");
            assert!(!query.sort.is_empty(), "there is always an order");
            if let Some(q) = &query.filter.q {
                assert!(
                    !q.is_empty() && q == q.trim(),
                    "search text is trimmed, not blank"
                );
            }
            let again = parse(&canonical(&query))
                .unwrap_or_else(|err| panic!("canonical form of {query:?} refused: {err}"));
            assert_eq!(
                again, query,
                "the canonical form parses back to the same query"
            );
        }
        Err(err) => {
            assert_rejected(&err, &["validation_failed"]);
            let field = err.field().expect("a validation error names its key");
            assert!(
                ["limit", "offset", "sort", "status"].contains(&field),
                "unexpected field {field}"
            );
        }
    }
});

//! Job submissions as `POST /api/jobs` reads them, then the import kind's checks. The first
//! byte picks the shape: 0 a multipart body (boundary `fuzzb`), 1 a raw `text/csv` body whose
//! query string is the bytes before the first NUL, 2 a raw body whose `Content-Type` is the
//! bytes before the first NUL. A submission is refused with a client error, or an accepted
//! import holds exactly the rows it counted, each readable.
#![no_main]

use axum::body::Body;
use axum::extract::Request;
use http::header;
use libfuzzer_sys::fuzz_target;
use taskwire::fuzzing::job_submission;
use taskwire::jobs::Job;
use taskwire::jobs::kinds::Import;
use taskwire::jobs::kinds::records::RowReader;
use taskwire_fuzz::{assert_rejected, check_import_row};

/// Every code a submission may be refused with before a job exists.
const SUBMISSION_ERRORS: [&str; 4] = [
    "validation_failed",
    "invalid_json",
    "unsupported_media_type",
    "payload_too_large",
];

fn split_at_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b""[..], data),
    }
}

fn request(data: &[u8]) -> Option<Request> {
    let (&shape, rest) = data.split_first()?;
    let builder = http::Request::builder().method("POST");
    let builder = match shape % 3 {
        0 => builder
            .uri("/api/jobs")
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=fuzzb"),
        1 => {
            let (query, _) = split_at_nul(rest);
            let query = std::str::from_utf8(query).ok()?;
            builder
                .uri(format!("/api/jobs?{query}"))
                .header(header::CONTENT_TYPE, "text/csv")
        }
        _ => {
            let (content_type, _) = split_at_nul(rest);
            let value = http::HeaderValue::from_bytes(content_type).ok()?;
            builder.uri("/api/jobs").header(header::CONTENT_TYPE, value)
        }
    };
    let body = if shape % 3 == 0 {
        rest
    } else {
        split_at_nul(rest).1
    };
    builder.body(Body::from(body.to_vec())).ok()
}

fuzz_target!(|data: &[u8]| {
    // Requests the HTTP parser would refuse (a bad URI or header) never reach the route.
    let Some(req) = request(data) else {
        return;
    };
    let (kind, job) = match futures::executor::block_on(job_submission(req)) {
        Ok(submission) => submission,
        Err(err) => return assert_rejected(&err, &SUBMISSION_ERRORS),
    };
    assert!(!kind.is_empty(), "a submission names its kind");
    assert!(job.params.is_object(), "params are an object");
    if kind != "import" {
        return;
    }
    let prepared = match Import.prepare(job) {
        Ok(prepared) => prepared,
        Err(err) => return assert_rejected(&err, &["validation_failed"]),
    };
    let input = prepared.input.expect("an import keeps its file");
    let mut reader = RowReader::open(prepared.params.format, &input, "file")
        .expect("an accepted import's file opens when the job runs");
    let mut rows = 0;
    while let Some(row) = reader.next_row("file") {
        rows += 1;
        let row = row.unwrap_or_else(|err| panic!("row {rows} of an accepted import: {err}"));
        check_import_row(&row);
    }
    assert_eq!(
        rows, prepared.params.rows,
        "the job reads the rows it was accepted with"
    );
});

//! `/api/jobs`: submit (JSON, multipart or a raw file), list, read, cancel, download the
//! result. Following a job over SSE is in `sse/jobs.rs`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{Map, Value};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use uuid::Uuid;

use super::AppState;
use super::caller::{Caller, Writer};
use super::openapi::errors::{
    BadJson, Conflict, Invalid, NotFound, NotJson, RateLimited, Timeout, TooLarge, Unauthorized,
    Unavailable,
};
use super::openapi::schemas::{JobForm, JobSubmission};
use super::tasks::query_pairs;
use crate::domain::error::{Error, Result};
use crate::domain::task::type_name;
use crate::jobs::{JobFilter, JobRecord, JobRequest, JobState, Upload};

/// Jobs one list returns by default (newest first).
const DEFAULT_LIMIT: i64 = 100;
/// The largest `limit` accepted.
const MAX_LIMIT: i64 = 1000;

/// Job routes answered within the request timeout, with their descriptions.
pub fn router(upload_limit: usize) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, submit).layer(axum::extract::DefaultBodyLimit::max(upload_limit)))
        .routes(routes!(read))
        .routes(routes!(cancel))
        .routes(routes!(result))
}

pub(super) fn parse_id(raw: &str) -> Result<Uuid> {
    Uuid::parse_str(raw.trim()).map_err(|_| Error::NotFound(format!("job {raw} does not exist")))
}

fn accepted(job: JobRecord, location: bool) -> Response {
    let mut headers = HeaderMap::new();
    if location && let Ok(value) = HeaderValue::from_str(&format!("/api/jobs/{}", job.id)) {
        headers.insert(header::LOCATION, value);
    }
    (StatusCode::ACCEPTED, headers, Json(job)).into_response()
}

/// A submission in any of its three shapes.
pub(crate) struct Submission {
    /// The job kind asked for.
    pub(crate) kind: String,
    /// Its params and upload.
    pub(crate) request: JobRequest,
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

fn too_large(upload_limit: usize) -> Error {
    Error::PayloadTooLarge {
        limit: upload_limit,
    }
}

impl FromRequest<AppState> for Submission {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        read_submission(req, state, state.settings.job_upload_limit).await
    }
}

/// Reads a submission from the request, whatever its shape; `upload_limit` is only named in
/// the 413 (the route's body limit enforces it). Generic over the state so it can be driven
/// without a server.
pub(crate) async fn read_submission<S: Send + Sync>(
    req: Request,
    state: &S,
    upload_limit: usize,
) -> Result<Submission> {
    check_query(req.uri().query())?;
    let mime = media_type(req.headers());
    if mime == "multipart/form-data" {
        let multipart = Multipart::from_request(req, state)
            .await
            .map_err(|e| Error::invalid("body", format!("malformed multipart body: {e}")))?;
        return from_multipart(multipart, upload_limit).await;
    }
    let query = req.uri().query().map(str::to_owned);
    let is_json = mime == "application/json" || mime.ends_with("+json");
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(upload_limit)
        } else {
            Error::InvalidJson(rejection.body_text())
        }
    })?;
    if is_json {
        let body: Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::InvalidJson(e.to_string()))?;
        return from_json(body);
    }
    if mime.is_empty() {
        return Err(Error::UnsupportedMediaType);
    }
    // A raw file (`text/csv`, say) with kind and params in the query string.
    from_raw(bytes, mime, query.as_deref())
}

fn from_json(body: Value) -> Result<Submission> {
    let Value::Object(mut fields) = body else {
        return Err(Error::invalid(
            "body",
            format!("the body must be a JSON object, got {}", type_name(&body)),
        ));
    };
    let kind = match fields.remove("kind") {
        Some(Value::String(kind)) if !kind.trim().is_empty() => kind.trim().to_owned(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(Error::invalid("kind", "field `kind` is required"));
        }
        Some(other) => {
            return Err(Error::invalid(
                "kind",
                format!("field `kind` must be a string, got {}", type_name(&other)),
            ));
        }
    };
    let params = match fields.remove("params") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(params @ Value::Object(_)) => params,
        Some(other) => {
            return Err(Error::invalid(
                "params",
                format!(
                    "field `params` must be an object, got {}",
                    type_name(&other)
                ),
            ));
        }
    };
    Ok(Submission {
        kind,
        request: JobRequest {
            params,
            upload: None,
        },
    })
}

/// Multipart: `kind`, optional `params` (JSON text), `file`, and any other text field as a
/// param (`format`, `atomic`), so a plain HTML form can submit an import.
async fn from_multipart(mut multipart: Multipart, upload_limit: usize) -> Result<Submission> {
    let mut kind = None;
    let mut params = Map::new();
    let mut upload = None;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| multipart_error(e, upload_limit, "body"))?;
        let Some(field) = field else { break };
        // A part without a name (no or a malformed Content-Disposition) cannot be a field.
        let Some(name) = field.name().filter(|n| !n.is_empty()).map(str::to_owned) else {
            return Err(Error::invalid(
                "body",
                "every part of a multipart body needs a name (Content-Disposition: form-data; \
                 name=\"…\")",
            ));
        };
        let filename = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let bytes = field
            .bytes()
            .await
            .map_err(|e| multipart_error(e, upload_limit, &name))?;
        let text = || {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| Error::invalid(name.clone(), format!("field `{name}` must be text")))
        };
        match name.as_str() {
            "file" => {
                upload = Some(Upload {
                    bytes: bytes.to_vec(),
                    filename,
                    content_type,
                })
            }
            "kind" => kind = Some(text()?.trim().to_owned()),
            "params" => match serde_json::from_str::<Value>(&text()?) {
                Ok(Value::Object(more)) => params.extend(more),
                Ok(other) => {
                    return Err(Error::invalid(
                        "params",
                        format!(
                            "field `params` must be a JSON object, got {}",
                            type_name(&other)
                        ),
                    ));
                }
                Err(e) => return Err(Error::InvalidJson(format!("field `params`: {e}"))),
            },
            _ => {
                params.insert(name.clone(), form_value(&text()?));
            }
        }
    }
    let kind = kind
        .filter(|k| !k.is_empty())
        .ok_or_else(|| Error::invalid("kind", "field `kind` is required"))?;
    Ok(Submission {
        kind,
        request: JobRequest {
            params: Value::Object(params),
            upload,
        },
    })
}

/// A multipart read that failed: over the upload limit → 413, anything else → 422 on `field`.
fn multipart_error(
    err: axum::extract::multipart::MultipartError,
    upload_limit: usize,
    field: &str,
) -> Error {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(upload_limit)
    } else {
        Error::invalid(field, format!("malformed multipart body: {err}"))
    }
}

/// The query parameters of a raw-file submission are checked whatever the body, so a bad
/// value is a 422 naming it rather than silently unused next to a JSON or multipart body.
fn check_query(query: Option<&str>) -> Result<()> {
    for (key, value) in query_pairs(query)? {
        let valid = match key.as_str() {
            "kind" => !value.trim().is_empty(),
            "format" => matches!(value.trim(), "csv" | "json"),
            "atomic" => matches!(value.trim(), "true" | "false"),
            _ => true,
        };
        if !valid {
            let expected = match key.as_str() {
                "kind" => "a job kind",
                "format" => "csv or json",
                _ => "true or false",
            };
            return Err(Error::invalid(
                key.clone(),
                format!("query parameter `{key}` must be {expected} (got {value:?})"),
            ));
        }
    }
    Ok(())
}

/// A form or query value: `true`/`false` become booleans, everything else stays text.
fn form_value(text: &str) -> Value {
    match text.trim() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        other => Value::String(other.to_owned()),
    }
}

/// A raw file body: `?kind=` (default `import`) and other query pairs as params.
fn from_raw(bytes: Bytes, mime: String, query: Option<&str>) -> Result<Submission> {
    let mut kind = "import".to_owned();
    let mut params = Map::new();
    for (key, value) in query_pairs(query)? {
        match key.as_str() {
            "kind" => kind = value.trim().to_owned(),
            "token" => {}
            _ => {
                params.insert(key, form_value(&value));
            }
        }
    }
    // `?kind=` names no kind: the same 422 as a JSON or multipart submission without one.
    if kind.is_empty() {
        return Err(Error::invalid("kind", "field `kind` is required"));
    }
    Ok(Submission {
        kind,
        request: JobRequest {
            params: Value::Object(params),
            upload: Some(Upload {
                bytes: bytes.to_vec(),
                filename: None,
                content_type: Some(mime),
            }),
        },
    })
}

/// Submits a job: JSON `{kind, params}`, a multipart form with the file, or a raw file.
#[utoipa::path(
    post,
    path = "/api/jobs",
    operation_id = "submit_job",
    tag = "jobs",
    description = "Three shapes: JSON `{\"kind\", \"params\"}`; a `multipart/form-data` form with `kind`, `file` and params as text fields; or the raw file (`text/csv`, for example) with `kind` (default `import`) and params in the query string.",
    params(
        ("kind" = Option<String>, Query, description = "Raw file only: the job kind (default `import`)."),
        ("format" = Option<String>, Query, description = "Raw file only: `csv` or `json`."),
        ("atomic" = Option<bool>, Query, description = "Raw file only: all rows or none."),
    ),
    request_body(content(
        (JobSubmission = "application/json"),
        (JobForm = "multipart/form-data"),
        (String = "text/csv"),
    )),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 202, description = "Accepted and queued.", body = JobRecord,
            headers(("Location" = String, description = "`/api/jobs/{id}`")),
            links(
                ("GetJob" = (operation_id = "get_job", parameters(("id" = "$response.body#/id")))),
                ("CancelJob" = (operation_id = "cancel_job", parameters(("id" = "$response.body#/id")))),
            )),
        BadJson, Unauthorized, Timeout, TooLarge, NotJson, Invalid, RateLimited, Unavailable,
    )
)]
async fn submit(
    State(state): State<AppState>,
    Writer(actor): Writer,
    submission: Submission,
) -> Result<Response> {
    let job = state
        .jobs
        .submit(&actor, &submission.kind, submission.request)
        .await?;
    Ok(accepted(job, true))
}

/// The caller's workspace's jobs, newest first.
#[utoipa::path(
    get,
    path = "/api/jobs",
    operation_id = "list_jobs",
    tag = "jobs",
    params(
        ("state" = Option<JobState>, Query, description = "Only jobs in this state."),
        ("kind" = Option<String>, Query, description = "Only jobs of this kind."),
        ("limit" = Option<i64>, Query, description = "At most this many (default 100; clamped to 0-1000)."),
    ),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "Jobs, newest first.", body = Vec<JobRecord>),
        Unauthorized, Timeout, Invalid, Unavailable,
    )
)]
async fn list(
    State(state): State<AppState>,
    Caller(actor): Caller,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<JobRecord>>> {
    let mut filter = JobFilter {
        limit: DEFAULT_LIMIT,
        ..JobFilter::default()
    };
    for (key, value) in query_pairs(raw.as_deref())? {
        match key.as_str() {
            "state" => filter.state = Some(JobState::parse("state", &value)?),
            "kind" => filter.kind = Some(value.trim().to_owned()),
            "limit" => {
                let limit: i64 = value.trim().parse().map_err(|_| {
                    Error::invalid(
                        "limit",
                        format!("limit must be a whole number (got {value:?})"),
                    )
                })?;
                filter.limit = limit.clamp(0, MAX_LIMIT);
            }
            _ => {}
        }
    }
    Ok(Json(state.jobs.list(&actor, &filter).await?))
}

/// One job.
#[utoipa::path(
    get,
    path = "/api/jobs/{id}",
    operation_id = "get_job",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job.")),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "The job.", body = JobRecord),
        Unauthorized, NotFound, Timeout, Unavailable,
    )
)]
async fn read(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>> {
    Ok(Json(state.jobs.get(&actor, parse_id(&id)?).await?))
}

/// Asks a job to stop: a queued job is cancelled at once, a running one at its next checkpoint.
#[utoipa::path(
    post,
    path = "/api/jobs/{id}/cancel",
    operation_id = "cancel_job",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job.")),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 202, description = "Cancelled, or asked to stop (`cancel_requested`).", body = JobRecord),
        Unauthorized, NotFound, Timeout, Conflict, RateLimited, Unavailable,
    )
)]
async fn cancel(
    State(state): State<AppState>,
    Writer(actor): Writer,
    Path(id): Path<String>,
) -> Result<Response> {
    let job = state.jobs.cancel(&actor, parse_id(&id)?).await?;
    Ok(accepted(job, false))
}

/// The file a job produced (exports).
#[utoipa::path(
    get,
    path = "/api/jobs/{id}/result",
    operation_id = "job_result",
    tag = "jobs",
    params(("id" = Uuid, Path, description = "The job.")),
    security(("bearer" = []), ("token_query" = [])),
    responses(
        (status = 200, description = "The file, as an attachment.",
            content(
                (String = "text/csv"),
                (Vec<Value> = "application/json"),
            ),
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"…\"`"))),
        Unauthorized, NotFound, Timeout, Conflict, Unavailable,
    )
)]
async fn result(
    State(state): State<AppState>,
    Caller(actor): Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let (file, parts) = state.jobs.result_file(&actor, id).await?;
    let mut headers = HeaderMap::new();
    if let Ok(ct) = HeaderValue::from_str(&file.content_type) {
        headers.insert(header::CONTENT_TYPE, ct);
    }
    let safe_name: String = file
        .filename
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\')
        .collect();
    if let Ok(cd) = HeaderValue::from_str(&format!("attachment; filename=\"{safe_name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, cd);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    // Headers are gone by the time a later part fails to load; the client sees the body
    // break off short of its Content-Length.
    let parts = parts.inspect(move |part| {
        if let Err(err) = part {
            tracing::warn!(job_id = %id, error = ?err, "a job's result file broke off while it was sent");
        }
    });
    let body = Body::from_stream(parts);
    Ok((headers, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_raw_upload_with_an_empty_kind_is_refused_naming_kind() {
        for query in ["kind=&format=csv", "kind=%20%20"] {
            let err = from_raw(
                Bytes::from_static(b"title\nx\n"),
                "text/csv".into(),
                Some(query),
            )
            .err()
            .expect("an empty kind is refused");
            assert_eq!(err.field(), Some("kind"), "{query}");
        }
        let ok = from_raw(Bytes::from_static(b"title\nx\n"), "text/csv".into(), None)
            .expect("no kind means import");
        assert_eq!(ok.kind, "import");
    }

    #[tokio::test]
    async fn a_multipart_part_without_a_name_is_refused_naming_the_body() {
        // The second part's Content-Disposition is garbled, so it has no name. It used to be
        // kept as a param named "" (or, when not text, a 422 naming the field "").
        let body = "--b\r\nContent-Disposition: form-data; name=\"kind\"\r\n\r\nimport\r\n\
                    --b\r\nContent-Disposition: for;ad- mtaname=\"file\"\r\n\r\n\u{94}\r\n\
                    --b--\r\n";
        let req = axum::http::Request::builder()
            .method("POST")
            .uri("/api/jobs")
            .header(header::CONTENT_TYPE, "multipart/form-data; boundary=b")
            .body(Body::from(body))
            .expect("a valid request");
        let err = read_submission(req, &(), 1024)
            .await
            .err()
            .expect("a nameless part is refused");
        assert_eq!(err.code(), "validation_failed");
        assert_eq!(err.field(), Some("body"));
    }
}

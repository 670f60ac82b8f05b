//! `import`: creates tasks from a CSV or JSON file with per-row validation. A bad row is
//! reported and skipped; with `atomic: true` any bad row means nothing is imported. The file
//! is checked for well-formedness when the job is submitted, so a malformed one is a 422.

use std::collections::HashSet;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::WRITE_BATCH as BATCH;
use super::records::{Format, RowReader, task_from_row};
use crate::domain::error::{Error, Result};
use crate::domain::task::{Task, type_name};
use crate::jobs::{Job, JobContext, JobError, JobRequest, Prepared, Upload, parse_params};

/// The `import` kind.
pub struct Import;

/// Stored params: the file itself is kept aside, not echoed in every job update.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportParams {
    /// File format.
    pub format: Format,
    /// All rows or none.
    #[serde(default)]
    pub atomic: bool,
    /// Rows in the file (set when the job is accepted).
    #[serde(default)]
    pub rows: usize,
}

/// What clients send besides `data`.
#[derive(Debug, Deserialize)]
struct Options {
    #[serde(default)]
    format: Option<Format>,
    #[serde(default)]
    atomic: bool,
}

fn format_of_upload(upload: &Upload) -> Option<Format> {
    let by_name = upload.filename.as_deref().and_then(|name| {
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(Format::Csv)
        } else if lower.ends_with(".json") {
            Some(Format::Json)
        } else {
            None
        }
    });
    let by_type = upload.content_type.as_deref().and_then(|ct| {
        let ct = ct.to_ascii_lowercase();
        if ct.starts_with("text/csv") {
            Some(Format::Csv)
        } else if ct.starts_with("application/json") {
            Some(Format::Json)
        } else {
            None
        }
    });
    by_name.or(by_type)
}

/// One rejected row of the report.
fn rejection(row: usize, err: &Error) -> Value {
    let field = err
        .field()
        .map(|f| format!(" (field `{f}`)"))
        .unwrap_or_default();
    json!({"row": row, "error": {"code": err.code(), "message": format!("{}{field}", err.public_message())}})
}

#[async_trait]
impl Job for Import {
    type Params = ImportParams;

    fn kind(&self) -> &'static str {
        "import"
    }

    fn prepare(&self, request: JobRequest) -> Result<Prepared<Self::Params>> {
        let mut params = request.params;
        let Some(fields) = params.as_object_mut() else {
            return Err(Error::invalid(
                "params",
                format!(
                    "field `params` must be an object, got {}",
                    type_name(&params)
                ),
            ));
        };
        let data = fields.remove("data").filter(|d| !d.is_null());
        let options: Options = parse_params(params)?;
        let (format, field, bytes) = match (data, request.upload) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "params.data",
                    "send the rows either in `params.data` or as a file, not both",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "params.data",
                    "field `params.data` is required (CSV text or an array of tasks), or \
                     upload the file as multipart field `file`",
                ));
            }
            (Some(data), None) => {
                let format = options.format.ok_or_else(|| {
                    Error::invalid(
                        "params.format",
                        "field `params.format` is required: csv or json",
                    )
                })?;
                let bytes = match (format, data) {
                    (Format::Csv, Value::String(text)) => text.into_bytes(),
                    (Format::Json, rows @ Value::Array(_)) => {
                        serde_json::to_vec(&rows).map_err(Error::internal)?
                    }
                    (Format::Csv, other) => {
                        return Err(Error::invalid(
                            "params.data",
                            format!(
                                "with format csv, `params.data` must be the CSV text, got {}",
                                type_name(&other)
                            ),
                        ));
                    }
                    (Format::Json, other) => {
                        return Err(Error::invalid(
                            "params.data",
                            format!(
                                "with format json, `params.data` must be an array of tasks, got {}",
                                type_name(&other)
                            ),
                        ));
                    }
                };
                (format, "params.data", bytes)
            }
            (None, Some(upload)) => {
                let format = options
                    .format
                    .or_else(|| format_of_upload(&upload))
                    .ok_or_else(|| {
                        Error::invalid(
                            "params.format",
                            "field `params.format` is required (csv or json) when the file name \
                         does not say",
                        )
                    })?;
                (format, "file", upload.bytes)
            }
        };
        let rows = RowReader::count(format, &bytes, field)?;
        Ok(Prepared {
            params: ImportParams {
                format,
                atomic: options.atomic,
                rows,
            },
            input: Some(bytes),
        })
    }

    async fn run(
        &self,
        params: ImportParams,
        ctx: &JobContext,
    ) -> std::result::Result<Option<Value>, JobError> {
        let bytes = ctx
            .input()
            .ok_or_else(|| JobError::failed("invalid_params", "the import's file is missing"))?;
        let mut reader = RowReader::open(params.format, bytes, "file")?;
        let total = params.rows as i64;
        let actor = ctx.actor();
        let service = ctx.service();
        ctx.progress(0, total, "checking rows");
        let mut rejected: Vec<Value> = Vec::new();
        let mut seen: HashSet<Uuid> = HashSet::new();
        let mut accepted = 0i64;
        let mut pending: Vec<(usize, Task)> = Vec::new();
        let mut read = 0usize;
        loop {
            ctx.checkpoint()?;
            let started = std::time::Instant::now();
            let mut chunk = Vec::with_capacity(BATCH);
            while chunk.len() < BATCH {
                match reader.next_row("file") {
                    Some(row) => chunk.push(row?),
                    None => break,
                }
            }
            if chunk.is_empty() {
                break;
            }
            let first = read + 1;
            read += chunk.len();
            let mut batch: Vec<(usize, Task)> = Vec::new();
            for (i, row) in chunk.iter().enumerate() {
                let number = first + i;
                match task_from_row(row, actor) {
                    Ok(task) if !seen.insert(task.id) => rejected.push(rejection(
                        number,
                        &Error::Conflict(format!("task {} appears twice in the file", task.id)),
                    )),
                    Ok(task) => batch.push((number, task)),
                    Err(err) => rejected.push(rejection(number, &err)),
                }
            }
            let ids: Vec<Uuid> = batch.iter().map(|(_, t)| t.id).collect();
            let taken: HashSet<Uuid> = service
                .store()
                .existing_ids(&ids)
                .await?
                .into_iter()
                .collect();
            batch.retain(|(number, task)| {
                let free = !taken.contains(&task.id);
                if !free {
                    rejected.push(rejection(
                        *number,
                        &Error::Conflict(format!("a task with id {} already exists", task.id)),
                    ));
                }
                free
            });
            if params.atomic {
                pending.extend(batch);
                let checked = read as i64;
                ctx.progress(checked, total, format!("checked {checked} of {total} rows"));
                continue;
            }
            accepted += store_batch(ctx, batch, &mut rejected).await?;
            let done = read as i64;
            ctx.progress(
                done,
                total,
                format!("imported {accepted}, rejected {}", rejected.len()),
            );
            ctx.pace(started).await;
        }
        if params.atomic {
            if !rejected.is_empty() {
                let report = json!({"accepted": 0, "rejected": rejected});
                return Err(JobError::failed(
                    "rows_rejected",
                    format!(
                        "{} of {total} rows were rejected, so nothing was imported (atomic); \
                         first: row {} — {}",
                        rejected.len(),
                        report["rejected"][0]["row"],
                        report["rejected"][0]["error"]["message"]
                            .as_str()
                            .unwrap_or(""),
                    ),
                ));
            }
            ctx.checkpoint()?;
            let tasks = pending.into_iter().map(|(_, t)| t).collect();
            accepted = service.insert_batch(tasks).await?.len() as i64;
        }
        rejected.sort_by_key(|r| r["row"].as_u64());
        ctx.progress(
            total,
            total,
            format!("imported {accepted}, rejected {}", rejected.len()),
        );
        service
            .notify_summary(
                actor,
                "tasks.imported",
                ctx.id(),
                json!({"job_id": ctx.id(), "accepted": accepted, "rejected": rejected.len()}),
            )
            .await?;
        Ok(Some(json!({"accepted": accepted, "rejected": rejected})))
    }
}

/// Stores one batch; if the batch fails as a whole (an id taken since it was checked), each
/// row is tried alone so one bad row does not sink the others.
async fn store_batch(
    ctx: &JobContext,
    batch: Vec<(usize, Task)>,
    rejected: &mut Vec<Value>,
) -> std::result::Result<i64, JobError> {
    if batch.is_empty() {
        return Ok(0);
    }
    let service = ctx.service();
    let tasks: Vec<Task> = batch.iter().map(|(_, t)| t.clone()).collect();
    if let Ok(stored) = service.insert_batch(tasks).await {
        return Ok(stored.len() as i64);
    }
    let mut stored = 0;
    for (number, task) in batch {
        let id = task.id;
        match service.insert_batch(vec![task]).await {
            Ok(_) => stored += 1,
            Err(err) => {
                tracing::info!(row = number, task_id = %id, error = %err, "import row refused");
                rejected.push(rejection(
                    number,
                    &Error::Conflict(format!("task {id} could not be stored")),
                ));
            }
        }
    }
    Ok(stored)
}

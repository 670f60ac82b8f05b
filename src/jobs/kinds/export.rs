//! `export`: writes the workspace's tasks (optionally filtered) to a CSV or JSON file, page by
//! page, so memory stays flat however many tasks there are.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufWriter};

use super::BATCH;
use super::records::{COLUMNS, Format, csv_record};
use crate::domain::error::{Error, Result};
use crate::domain::query::{TaskFilter, TaskQuery};
use crate::jobs::{Job, JobContext, JobError, JobRequest, Prepared, parse_params};

/// The `export` kind.
pub struct Export;

/// `{"format": "csv" | "json", "filter"?: {…}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportParams {
    /// File format.
    pub format: Format,
    /// Which tasks; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
}

fn filter_of(params: &ExportParams) -> Result<TaskFilter> {
    match &params.filter {
        None | Some(Value::Null) => Ok(TaskFilter::default()),
        Some(filter) => TaskFilter::from_json(filter, "params.filter"),
    }
}

#[async_trait]
impl Job for Export {
    type Params = ExportParams;

    fn kind(&self) -> &'static str {
        "export"
    }

    fn prepare(&self, request: JobRequest) -> Result<Prepared<Self::Params>> {
        if request.upload.is_some() {
            return Err(Error::invalid("file", "export takes no file"));
        }
        let params: ExportParams = parse_params(request.params)?;
        filter_of(&params)?;
        Ok(Prepared {
            params,
            input: None,
        })
    }

    /// Writing the file again from the start is harmless.
    fn restartable(&self) -> bool {
        true
    }

    async fn run(
        &self,
        params: ExportParams,
        ctx: &JobContext,
    ) -> std::result::Result<Option<Value>, JobError> {
        let filter = filter_of(&params)?;
        let actor = ctx.actor();
        let count = TaskQuery {
            filter: filter.clone(),
            limit: 0,
            ..TaskQuery::default()
        };
        let total = ctx.service().list(actor, &count).await?.total;
        ctx.progress(0, total, "exporting");
        let filename = format!(
            "tasks-{}.{}",
            chrono::Utc::now().format("%Y-%m-%d"),
            params.format.extension()
        );
        let file = ctx
            .create_result_file(&filename, params.format.content_type())
            .await?;
        let mut out = BufWriter::new(file);
        let mut written = 0i64;
        let mut bytes = 0u64;
        let mut after = None;
        let head: Vec<u8> = match params.format {
            Format::Csv => {
                let mut header = csv::Writer::from_writer(Vec::new());
                header.write_record(COLUMNS).map_err(csv_failure)?;
                header
                    .into_inner()
                    .map_err(|e| csv_failure(e.into_error().into()))?
            }
            Format::Json => b"[".to_vec(),
        };
        out.write_all(&head).await?;
        bytes += head.len() as u64;
        loop {
            ctx.checkpoint()?;
            let started = std::time::Instant::now();
            let page = ctx
                .service()
                .store()
                .tasks_after(&actor.workspace, &filter, after, BATCH as i64)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let chunk = match params.format {
                Format::Csv => {
                    let mut writer = csv::Writer::from_writer(Vec::new());
                    for task in &page {
                        writer.write_record(csv_record(task)).map_err(csv_failure)?;
                    }
                    writer
                        .into_inner()
                        .map_err(|e| csv_failure(e.into_error().into()))?
                }
                Format::Json => {
                    let mut chunk = Vec::new();
                    for (i, task) in page.iter().enumerate() {
                        if written > 0 || i > 0 {
                            chunk.push(b',');
                        }
                        chunk.push(b'\n');
                        serde_json::to_writer(&mut chunk, task)
                            .map_err(|e| JobError::failed("internal", e.to_string()))?;
                    }
                    chunk
                }
            };
            out.write_all(&chunk).await?;
            bytes += chunk.len() as u64;
            written += page.len() as i64;
            ctx.progress(
                written,
                total.max(written),
                format!("exported {written} of {total}"),
            );
            if page.len() < BATCH {
                break;
            }
            ctx.pace(started).await;
        }
        if params.format == Format::Json {
            out.write_all(b"\n]\n").await?;
            bytes += 3;
        }
        out.flush().await?;
        out.into_inner().sync_all().await?;
        ctx.progress(written, written, format!("exported {written} tasks"));
        Ok(Some(json!({
            "format": params.format,
            "rows": written,
            "bytes": bytes,
            "filename": filename,
            "url": format!("/api/jobs/{}/result", ctx.id()),
        })))
    }
}

fn csv_failure(err: csv::Error) -> JobError {
    JobError::failed("internal", format!("writing CSV failed: {err}"))
}

//! `bulk_update`: applies one patch to every task matching a filter, in batches through the
//! task service (versions, events, fan-out), then sends one summary notification.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::BatchSizer;
use crate::domain::error::{Error, Result};
use crate::domain::query::{TaskFilter, TaskQuery};
use crate::domain::task::TaskPatch;
use crate::jobs::{Job, JobContext, JobError, JobRequest, Prepared, parse_params};

/// The `bulk_update` kind.
pub struct BulkUpdate;

/// `{"filter": {"status"?, "assignee"?, "q"?}, "patch": {…task fields}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkUpdateParams {
    /// Which tasks (the list filters); `{}` means every task of the workspace.
    pub filter: Value,
    /// The fields to set on each.
    pub patch: Value,
}

fn checked(params: &BulkUpdateParams) -> Result<(TaskFilter, TaskPatch)> {
    let filter = TaskFilter::from_json(&params.filter, "params.filter")?;
    if !params.patch.is_object() {
        return Err(Error::invalid(
            "params.patch",
            "field `params.patch` must be an object of task fields",
        ));
    }
    let patch = TaskPatch::from_json(&params.patch).map_err(|err| match err {
        Error::Validation { field, message } => Error::Validation {
            field: format!("params.patch.{field}"),
            message,
        },
        other => other,
    })?;
    if patch == TaskPatch::default() {
        return Err(Error::invalid(
            "params.patch",
            "field `params.patch` changes nothing; give at least one of title, description, \
             status, assignee, assignee_email, due_date",
        ));
    }
    Ok((filter, patch))
}

#[async_trait]
impl Job for BulkUpdate {
    type Params = BulkUpdateParams;

    fn kind(&self) -> &'static str {
        "bulk_update"
    }

    fn prepare(&self, request: JobRequest) -> Result<Prepared<Self::Params>> {
        if request.upload.is_some() {
            return Err(Error::invalid("file", "bulk_update takes no file"));
        }
        let params: BulkUpdateParams = parse_params(request.params)?;
        checked(&params)?;
        Ok(Prepared {
            params,
            input: None,
        })
    }

    async fn run(
        &self,
        params: BulkUpdateParams,
        ctx: &JobContext,
    ) -> std::result::Result<Option<Value>, JobError> {
        let (filter, patch) = checked(&params)?;
        let actor = ctx.actor();
        let service = ctx.service();
        let count = TaskQuery {
            filter: filter.clone(),
            limit: 0,
            ..TaskQuery::default()
        };
        let total = service.list(actor, &count).await?.total;
        ctx.progress(0, total, "updating");
        // Ids are time-ordered: tasks created after the job started are not part of it.
        let bound = Uuid::now_v7();
        let mut after = None;
        let mut updated = 0i64;
        let mut sizer = BatchSizer::default();
        loop {
            ctx.checkpoint()?;
            let started = std::time::Instant::now();
            let page = service
                .store()
                .tasks_after(&actor.workspace, &filter, after, sizer.size() as i64)
                .await?;
            let ids: Vec<Uuid> = page.iter().map(|t| t.id).filter(|id| *id < bound).collect();
            let Some(&last) = ids.last() else { break };
            after = Some(last);
            let writing = std::time::Instant::now();
            updated += service.update_batch(actor, &ids, &patch).await?.len() as i64;
            sizer.record(writing.elapsed());
            ctx.progress(
                updated,
                total.max(updated),
                format!("updated {updated} of {total}"),
            );
            if ids.len() < page.len() {
                break;
            }
            ctx.pace(started).await;
        }
        ctx.progress(
            updated,
            total.max(updated),
            format!("updated {updated} tasks"),
        );
        let result = json!({"matched": total, "updated": updated});
        service
            .notify_summary(
                actor,
                "tasks.bulk_updated",
                ctx.id(),
                json!({"job_id": ctx.id(), "filter": params.filter, "patch": params.patch,
                       "matched": total, "updated": updated}),
            )
            .await?;
        Ok(Some(result))
    }
}

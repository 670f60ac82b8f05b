//! Add a job kind of your own: `tidy_titles` collapses runs of whitespace in every task title
//! of the caller's workspace, in batches, reporting progress and stopping promptly when
//! cancelled. It runs in taskwire's pool and shows up in `/api/jobs`, its SSE stream and
//! `job_progress` like the built-in kinds.
//!
//! Run: `cargo run --example custom_job` (listens on 127.0.0.1:5000, or `PORT`), then
//! `curl -X POST localhost:5000/api/jobs -H 'content-type: application/json'
//!  -d '{"kind":"tidy_titles","params":{"dry_run":false}}'`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use taskwire::domain::query::TaskFilter;
use taskwire::jobs::{Job, JobContext, JobError, JobManager};
use taskwire::{Application, Settings};

/// The kind: one struct, registered by name.
pub struct TidyTitles;

/// Its params, decoded from the request's `params` (bad types are a 422 naming the field).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TidyParams {
    /// Count what would change without changing it.
    #[serde(default)]
    pub dry_run: bool,
}

fn tidy(title: &str) -> String {
    title.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[async_trait]
impl Job for TidyTitles {
    type Params = TidyParams;

    fn kind(&self) -> &'static str {
        "tidy_titles"
    }

    async fn run(&self, params: TidyParams, ctx: &JobContext) -> Result<Option<Value>, JobError> {
        let actor = ctx.actor();
        let store = ctx.service().store();
        let everything = TaskFilter::default();
        let (mut after, mut checked, mut tidied) = (None, 0i64, 0i64);
        loop {
            // Between batches: a cancel or the timeout stops the job here.
            ctx.checkpoint()?;
            let page = store
                .tasks_after(&actor.workspace, &everything, after, 100)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for task in &page {
                checked += 1;
                let clean = tidy(&task.title);
                if clean != task.title {
                    tidied += 1;
                    if !params.dry_run {
                        // Through the task service: a new version, an event, notifications.
                        ctx.service()
                            .update(actor, task.id, &json!({"title": clean}), None)
                            .await?;
                    }
                }
            }
            ctx.progress(
                checked,
                checked,
                format!("checked {checked}, tidied {tidied}"),
            );
        }
        Ok(Some(json!({"checked": checked, "tidied": tidied})))
    }
}

/// Registers the example's kinds on a running taskwire.
pub fn register(jobs: &JobManager) {
    jobs.registry().register(TidyTitles);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mut settings = Settings::defaults();
    if let Some(port) = std::env::var("PORT").ok().and_then(|p| p.parse().ok()) {
        settings.port = port;
    }
    let app = Application::build(settings).await?;
    register(app.jobs());
    println!(
        "custom_job example listening on http://{}",
        app.local_addr()
    );
    app.run_until_stopped(taskwire::app::shutdown_signal())
        .await?;
    Ok(())
}

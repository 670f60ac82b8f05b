//! Background jobs: long work (bulk updates, exports, imports, an app's own kinds) that runs
//! outside requests, in a bounded pool, with live progress, cancellation, a timeout, and rows
//! in the database so nothing is lost across a restart.
//!
//! Layout:
//! - `model.rs`: job states, progress and the JSON clients see.
//! - `registry.rs`: the [`Job`] trait an app implements and the [`Registry`] of kinds.
//! - `context.rs`: the [`JobContext`] a running job reports through.
//! - `manager.rs`: the [`JobManager`]: submit, cancel, the worker pool, recovery, cleanup.
//! - `kinds/`: the built-in kinds and the task ⇄ file-row codec they share.

mod context;
pub mod kinds;
mod manager;
pub mod model;
mod registry;

pub use context::JobContext;
pub use manager::{JobManager, PUBLISH_EVERY};
pub use model::{JobFailure, JobFilter, JobRecord, JobState, Progress};
pub use registry::{Job, JobError, JobRequest, Prepared, Registry, Upload, parse_params};

/// Receives every job change worth showing (state changes and throttled progress), to push
/// it to sockets. Must not block.
pub trait JobSink: Send + Sync + 'static {
    /// Announces the job as it is now.
    fn job_changed(&self, job: &JobRecord);
}

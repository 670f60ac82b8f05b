//! What a job is: its states, progress and the JSON clients see. Plain data, no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::error::{Error, Result};

/// Where a job is in its life. Every state but `queued` and `running` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker is running it.
    Running,
    /// Finished; `result` says what it did.
    Succeeded,
    /// Stopped by an error; `error` says which.
    Failed,
    /// Stopped because someone asked.
    Cancelled,
    /// Ran longer than `TASK_TIMEOUT_SECONDS`.
    TimedOut,
    /// Its process stopped while it ran.
    Interrupted,
}

impl JobState {
    /// Every state, for parsing and metrics.
    pub const ALL: [JobState; 7] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::TimedOut,
        JobState::Interrupted,
    ];

    /// The name used in JSON, the database and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
            JobState::TimedOut => "timed_out",
            JobState::Interrupted => "interrupted",
        }
    }

    /// Parses a state name; `field` names the input in the error.
    pub fn parse(field: &str, raw: &str) -> Result<Self> {
        JobState::ALL
            .into_iter()
            .find(|s| s.as_str() == raw.trim())
            .ok_or_else(|| {
                let names: Vec<_> = JobState::ALL.iter().map(|s| s.as_str()).collect();
                Error::invalid(
                    field,
                    format!(
                        "`{field}` must be one of {} (got {raw:?})",
                        names.join(", ")
                    ),
                )
            })
    }

    /// Whether nothing will change this job any more.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// How far a job has come.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Progress {
    /// Units of work done.
    pub done: i64,
    /// Units of work in all (0 while unknown).
    pub total: i64,
    /// What it is doing, for a person.
    pub message: String,
}

/// Why a job did not succeed, in the same `{code, message}` shape as every API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobFailure {
    /// Stable machine-readable code.
    pub code: String,
    /// What happened, for a person.
    pub message: String,
}

/// A file a job produced, served by `GET /api/jobs/{id}/result`. Its bytes are in the
/// database (so every process can serve it), read with
/// [`JobStore::result_part`](crate::store::jobs::JobStore::result_part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultFile {
    /// Its `Content-Type`.
    pub content_type: String,
    /// The download name for `Content-Disposition`.
    pub filename: String,
    /// Its length in bytes, for `Content-Length`.
    pub size: i64,
}

/// A job as stored and as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct JobRecord {
    /// Time-ordered UUID v7.
    pub id: Uuid,
    /// The workspace that owns the job; implied by the caller's token, never sent.
    #[serde(skip)]
    pub workspace: String,
    /// Which registered kind runs it.
    pub kind: String,
    /// Where it is in its life.
    pub state: JobState,
    /// How far it has come.
    pub progress: Progress,
    /// What it was asked to do, as accepted (uploads are not echoed).
    pub params: Value,
    /// Why it did not succeed.
    pub error: Option<JobFailure>,
    /// What it did, when it succeeded (and for imports, what it rejected).
    pub result: Option<Value>,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When a worker started it.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    pub finished_at: Option<DateTime<Utc>>,
    /// Whether a cancel was asked for while it ran (it stops at its next checkpoint).
    pub cancel_requested: bool,
    /// The file it produced, if any.
    #[serde(skip)]
    pub result_file: Option<ResultFile>,
}

/// A job about to be stored as `queued`.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Its id.
    pub id: Uuid,
    /// Its workspace.
    pub workspace: String,
    /// Its kind.
    pub kind: String,
    /// Accepted params (JSON), shown in the job.
    pub params: Value,
    /// An upload the job reads (imports), kept out of `params`.
    pub input: Option<Vec<u8>>,
    /// Who submitted it, as JSON (`user`, `name`, `email`): the job acts as them.
    pub actor: Value,
    /// Whether a run cut short by a restart may simply run again.
    pub restartable: bool,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
}

/// Which jobs `GET /api/jobs` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// At most this many, newest first.
    pub limit: i64,
}

/// How a run ended, as the worker records it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The final state.
    pub state: JobState,
    /// Why, when not `succeeded`.
    pub error: Option<JobFailure>,
    /// What it did.
    pub result: Option<Value>,
    /// Progress at the end.
    pub progress: Progress,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_only_two_are_live() {
        for state in JobState::ALL {
            assert_eq!(JobState::parse("state", state.as_str()).unwrap(), state);
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                Value::String(state.as_str().into())
            );
        }
        let live: Vec<_> = JobState::ALL.iter().filter(|s| !s.is_final()).collect();
        assert_eq!(live, [&JobState::Queued, &JobState::Running]);
        let err = JobState::parse("state", "done").unwrap_err();
        assert!(err.to_string().contains("timed_out"), "{err}");
    }
}

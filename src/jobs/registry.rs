//! The job API an app implements: [`Job`] with typed params, and the [`Registry`] that maps a
//! kind name to its implementation. The built-in kinds register the same way an embedding
//! app's own kinds do.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::context::JobContext;
use crate::domain::error::{Error, Result};

/// An upload sent with `POST /api/jobs` as multipart or as a raw body.
#[derive(Debug, Clone, Default)]
pub struct Upload {
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Its name, when the client gave one.
    pub filename: Option<String>,
    /// Its media type, when the client gave one.
    pub content_type: Option<String>,
}

/// What a client asked for: `params` and, for kinds that read a file, the upload.
#[derive(Debug, Clone, Default)]
pub struct JobRequest {
    /// The `params` object (an empty object when absent).
    pub params: Value,
    /// A file sent beside the params.
    pub upload: Option<Upload>,
}

/// Params a kind accepted, and any input it wants stored beside them (not echoed to clients).
#[derive(Debug, Clone)]
pub struct Prepared<P> {
    /// The typed params, stored as JSON and shown in the job.
    pub params: P,
    /// Bytes the job reads when it runs (an import's file).
    pub input: Option<Vec<u8>>,
}

/// Why a run did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job stopped at a checkpoint because it was cancelled, timed out or the server is
    /// stopping; the manager records which.
    #[error("stopped before it finished")]
    Stopped,
    /// The job failed; recorded as `failed` with this code and message.
    #[error("{message}")]
    Failed {
        /// Stable machine-readable code.
        code: String,
        /// What went wrong, for a person.
        message: String,
    },
}

impl JobError {
    /// A failure with a code and a message.
    pub fn failed(code: impl Into<String>, message: impl Into<String>) -> Self {
        JobError::Failed {
            code: code.into(),
            message: message.into(),
        }
    }
}

impl From<Error> for JobError {
    fn from(err: Error) -> Self {
        if let Error::Internal(source) = &err {
            tracing::error!(error = %source, "job failed on an internal error");
        }
        JobError::failed(err.code(), err.to_string())
    }
}

impl From<std::io::Error> for JobError {
    fn from(err: std::io::Error) -> Self {
        tracing::error!(error = %err, "job failed on an I/O error");
        JobError::failed(
            "io_error",
            format!("reading or writing a file failed: {err}"),
        )
    }
}

/// A kind of background job. `Params` is what clients send in `params`; the default
/// [`Job::prepare`] decodes it with serde and names the offending field on error.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// The job's typed params.
    type Params: DeserializeOwned + Serialize + Send + Sync + 'static;

    /// The name clients use in `{"kind": …}`.
    fn kind(&self) -> &'static str;

    /// Checks a request when it is submitted, so bad params are a 422 instead of a failed job.
    fn prepare(&self, request: JobRequest) -> Result<Prepared<Self::Params>> {
        if request.upload.is_some() {
            return Err(Error::invalid(
                "file",
                format!("jobs of kind `{}` take no file", self.kind()),
            ));
        }
        Ok(Prepared {
            params: parse_params(request.params)?,
            input: None,
        })
    }

    /// Whether a run cut short by a restart may simply run again (`queued`), instead of
    /// being marked `interrupted`.
    fn restartable(&self) -> bool {
        false
    }

    /// Does the work, reporting progress and checking for cancellation through `ctx`.
    /// Returns the job's `result`.
    async fn run(
        &self,
        params: Self::Params,
        ctx: &JobContext,
    ) -> std::result::Result<Option<Value>, JobError>;
}

/// Decodes `params` into `P`; an error names the field as `params.<path>`.
pub fn parse_params<P: DeserializeOwned>(params: Value) -> Result<P> {
    serde_path_to_error::deserialize(params).map_err(|err| {
        let path = err.path().to_string();
        let mut field = if path == "." {
            "params".to_owned()
        } else {
            format!("params.{path}")
        };
        let inner = err.into_inner().to_string();
        // serde reports a missing field at its parent; name the field itself.
        if let Some(missing) = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
        {
            field = format!("{field}.{missing}");
        }
        Error::invalid(field.clone(), format!("field `{field}`: {inner}"))
    })
}

/// A [`Job`] with its params erased to JSON, so kinds of different types share one registry.
#[async_trait]
pub(crate) trait ErasedJob: Send + Sync {
    fn prepare(&self, request: JobRequest) -> Result<(Value, Option<Vec<u8>>)>;
    fn restartable(&self) -> bool;
    async fn run(
        &self,
        params: Value,
        ctx: &JobContext,
    ) -> std::result::Result<Option<Value>, JobError>;
}

#[async_trait]
impl<J: Job> ErasedJob for J {
    fn prepare(&self, request: JobRequest) -> Result<(Value, Option<Vec<u8>>)> {
        let prepared = Job::prepare(self, request)?;
        let params = serde_json::to_value(&prepared.params).map_err(Error::internal)?;
        Ok((params, prepared.input))
    }

    fn restartable(&self) -> bool {
        Job::restartable(self)
    }

    async fn run(
        &self,
        params: Value,
        ctx: &JobContext,
    ) -> std::result::Result<Option<Value>, JobError> {
        let params = parse_params(params).map_err(|err| {
            JobError::failed(
                "invalid_params",
                format!("stored params no longer fit: {err}"),
            )
        })?;
        Job::run(self, params, ctx).await
    }
}

/// Job kinds by name. Registering a kind that exists replaces it.
#[derive(Default)]
pub struct Registry {
    kinds: RwLock<HashMap<&'static str, Arc<dyn ErasedJob>>>,
}

impl Registry {
    /// Adds (or replaces) a kind.
    pub fn register<J: Job>(&self, job: J) -> &Self {
        let kind = job.kind();
        self.kinds
            .write()
            .expect("job registry lock is never poisoned")
            .insert(kind, Arc::new(job));
        self
    }

    /// The registered kind names, sorted.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self
            .kinds
            .read()
            .expect("job registry lock is never poisoned")
            .keys()
            .copied()
            .collect();
        kinds.sort_unstable();
        kinds
    }

    pub(crate) fn get(&self, kind: &str) -> Option<Arc<dyn ErasedJob>> {
        self.kinds
            .read()
            .expect("job registry lock is never poisoned")
            .get(kind)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Serialize)]
    struct P {
        #[allow(dead_code)]
        count: u32,
    }

    #[test]
    fn bad_params_name_the_field() {
        let err = parse_params::<P>(serde_json::json!({"count": "x"})).unwrap_err();
        assert_eq!(err.field(), Some("params.count"));
        let err = parse_params::<P>(serde_json::json!({})).unwrap_err();
        assert_eq!(err.field(), Some("params.count"));
        assert!(err.to_string().contains("count"), "{err}");
        let err = parse_params::<P>(serde_json::json!(7)).unwrap_err();
        assert_eq!(err.field(), Some("params"));
    }
}

//! Presence shared by every process: each process keeps, per workspace, one field in the Redis
//! hash `{prefix}:presence:{workspace}` with who is connected to it (an opaque JSON snapshot
//! made by [`crate::realtime::presence`]) and until when that snapshot is valid. Readers sum
//! the valid fields; a process that dies stops renewing its fields, which then expire on their
//! own. Redis 7.0 cannot expire a hash field, hence the time in the value.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Cluster;

/// How long a snapshot counts without being renewed.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(15);
/// How often a process renews its snapshots.
pub const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How long one Redis call of presence may take.
const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
struct Field<'a> {
    /// Unix milliseconds after which the snapshot no longer counts.
    until: i64,
    #[serde(borrow)]
    snapshot: &'a RawValue,
}

/// Reads and writes the processes' presence snapshots.
#[derive(Clone)]
pub struct PresenceBoard {
    cluster: Arc<Cluster>,
}

impl PresenceBoard {
    /// The board of `cluster`'s deployment.
    pub fn new(cluster: Arc<Cluster>) -> Self {
        PresenceBoard { cluster }
    }

    fn key(&self, workspace: &str) -> String {
        format!("{}:presence:{workspace}", self.cluster.prefix())
    }

    /// Stores this process's snapshot of `workspace` (None: nobody is connected here).
    pub async fn store(
        &self,
        workspace: &str,
        snapshot: Option<&RawValue>,
    ) -> Result<(), redis::RedisError> {
        let key = self.key(workspace);
        let mut conn = self.cluster.connection();
        let mut pipe = redis::pipe();
        match snapshot {
            Some(snapshot) => {
                let until = chrono::Utc::now().timestamp_millis()
                    + i64::try_from(SNAPSHOT_TTL.as_millis()).unwrap_or(i64::MAX);
                let field = serde_json::to_string(&Field { until, snapshot })
                    .map_err(|e| redis::RedisError::from(std::io::Error::other(e)))?;
                pipe.hset(&key, self.cluster.node(), field).ignore();
                // The hash outlives every snapshot in it, and goes when the last process does.
                pipe.expire(&key, (SNAPSHOT_TTL * 4).as_secs() as i64)
                    .ignore();
            }
            None => {
                pipe.hdel(&key, self.cluster.node()).ignore();
            }
        }
        with_timeout(pipe.query_async::<()>(&mut conn)).await
    }

    /// The valid snapshots of the other processes for `workspace`; expired ones are removed.
    pub async fn others(&self, workspace: &str) -> Result<Vec<String>, redis::RedisError> {
        let key = self.key(workspace);
        let mut conn = self.cluster.connection();
        let fields: Vec<(String, String)> =
            with_timeout(redis::cmd("HGETALL").arg(&key).query_async(&mut conn)).await?;
        let now = chrono::Utc::now().timestamp_millis();
        let mut snapshots = Vec::with_capacity(fields.len());
        let mut expired = Vec::new();
        for (node, value) in &fields {
            if node == self.cluster.node() {
                continue;
            }
            match serde_json::from_str::<Field>(value) {
                Ok(field) if field.until > now => snapshots.push(field.snapshot.get().to_owned()),
                _ => expired.push(node.clone()),
            }
        }
        if !expired.is_empty() {
            let _: Result<(), _> = with_timeout(
                redis::cmd("HDEL")
                    .arg(&key)
                    .arg(&expired)
                    .query_async(&mut conn),
            )
            .await;
        }
        Ok(snapshots)
    }
}

async fn with_timeout<T>(
    call: impl Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, redis::RedisError> {
    tokio::time::timeout(TIMEOUT, call)
        .await
        .unwrap_or_else(|_| {
            Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "Redis did not answer in time",
            )))
        })
}

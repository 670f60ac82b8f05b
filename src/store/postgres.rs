//! Postgres backend: for several taskwire processes sharing one state. Writers of one
//! workspace are serialised by the lock on their `workspace_seqs` row, held to commit, which
//! is what keeps event numbers gapless and in commit order.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

use super::jobs::impl_sql_jobs;
use super::open::{self, OpenError};
use super::outbox::impl_sql_outbox;
use super::sql::impl_sql_store;

/// Tasks and events in a Postgres database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` and migrates the database. `timeout` bounds the wait for Postgres
    /// at start-up and, for every query later, the wait for a connection: while the server is
    /// gone, requests fail after it (as 503) rather than queueing; the pool reconnects by
    /// itself once the server is back.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        timeout: Duration,
    ) -> Result<Self, OpenError> {
        let options = open::pg_options(url)?;
        open::reach_postgres(&options, timeout).await?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(timeout)
            .connect_with(options.clone())
            .await
            .map_err(|e| open::pg_error(&options, &e, timeout))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| OpenError::Migrate {
                backend: "postgres",
                target: open::pg_target(&options),
                cause: e.to_string(),
            })?;
        Ok(PgStore { pool })
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }
}

impl_sql_store!(
    PgStore,
    sqlx::Postgres,
    "postgres",
    lock = " FOR UPDATE",
    like = "ILIKE",
    one_trip = false
);

impl_sql_outbox!(
    PgStore,
    sqlx::Postgres,
    skip_locked = " FOR UPDATE SKIP LOCKED"
);

impl_sql_jobs!(
    PgStore,
    sqlx::Postgres,
    skip_locked = " FOR UPDATE SKIP LOCKED"
);

//! Postgres backend: for several taskwire processes sharing one state. Writers of one
//! workspace are serialised by the lock on their `workspace_seqs` row, held to commit, which
//! is what keeps event numbers gapless and in commit order.
//!
//! Here: opening the pool, and Postgres's [`Dialect`]; the queries are in the shared modules.

use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::PgPoolOptions;

use super::dialect::Dialect;
use super::open::{self, OpenError};
use super::sql::SqlStore;

/// Tasks and events in a Postgres database.
pub type PgStore = SqlStore<Postgres>;

impl Dialect for Postgres {
    const BACKEND: &'static str = "postgres";
    const LOCK_ROWS: &'static str = " FOR UPDATE";
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const LIKE: &'static str = "ILIKE";
    const ONE_TRIP: bool = false;

    fn rows_affected(result: &sqlx::postgres::PgQueryResult) -> u64 {
        result.rows_affected()
    }
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
        // Postgres takes concurrent writers, so reads and writes share one pool.
        Ok(PgStore {
            writer: pool.clone(),
            reader: pool,
        })
    }
}

//! Postgres backend: for several taskwire processes sharing one state. Writers of one
//! workspace are serialised by the lock on their `workspace_seqs` row, held to commit, which
//! is what keeps event numbers gapless and in commit order.

use sqlx::postgres::{PgPool, PgPoolOptions};

use super::jobs::impl_sql_jobs;
use super::outbox::impl_sql_outbox;
use super::sql::impl_sql_store;
use crate::domain::error::Result;

/// Tasks and events in a Postgres database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` and migrates the database.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
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

//! SQLite backend: the default, one file, no server. WAL lets readers run beside the single
//! writer; all writes go through one connection so they queue in-process instead of failing
//! with `SQLITE_BUSY`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::jobs::impl_sql_jobs;
use super::outbox::impl_sql_outbox;
use super::sql::impl_sql_store;
use crate::domain::error::Result;

/// Tasks and events in a SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and migrates it.
    pub async fn connect(url: &str, max_readers: u32) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        // An in-memory database exists once per connection, so readers must share the writer.
        let reader = if url.contains(":memory:") {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(max_readers.max(1))
                .connect_with(options.read_only(true))
                .await?
        };
        Ok(SqliteStore { writer, reader })
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }
}

impl_sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    "sqlite",
    lock = "",
    like = "LIKE"
);

impl_sql_outbox!(SqliteStore, sqlx::Sqlite, skip_locked = "");

impl_sql_jobs!(SqliteStore, sqlx::Sqlite, skip_locked = "");

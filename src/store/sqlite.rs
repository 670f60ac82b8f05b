//! SQLite backend: the default, one file, no server. WAL lets readers run beside the single
//! writer; all writes go through one connection so they queue in-process instead of failing
//! with `SQLITE_BUSY`.
//!
//! Checkpoints (copying the WAL back into the database file, with an fsync) would otherwise run
//! inside whichever commit crosses the WAL size threshold, adding milliseconds to that one
//! request. The writer turns automatic checkpoints off and a connection of its own runs
//! passive checkpoints in the background, which never block the writer.
//!
//! Here: opening the pools, and SQLite's [`Dialect`]; the queries are in the shared modules.

use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

use super::dialect::Dialect;
use super::open::{self, OpenError};
use super::sql::SqlStore;

/// Tasks and events in a SQLite file.
pub type SqliteStore = SqlStore<Sqlite>;

impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const LOCK_ROWS: &'static str = "";
    const SKIP_LOCKED: &'static str = "";
    // SQLite's LIKE folds ASCII case by itself.
    const LIKE: &'static str = "LIKE";
    const ONE_TRIP: bool = true;

    fn rows_affected(result: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and migrates it.
    pub async fn connect(url: &str, max_readers: u32) -> Result<Self, OpenError> {
        let parsed = open::sqlite_options(url)?;
        let failed = |e: sqlx::Error| open::sqlite_error(&parsed, &e);
        let options = parsed
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let memory = open::is_memory(url);
        let writer_options = if memory {
            options.clone()
        } else {
            options.clone().pragma("wal_autocheckpoint", "0")
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(writer_options)
            .await
            .map_err(failed)?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| OpenError::Migrate {
                backend: "sqlite",
                target: open::sqlite_path(&parsed).display().to_string(),
                cause: e.to_string(),
            })?;
        if !memory {
            let checkpointer = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .map_err(failed)?;
            tokio::spawn(checkpoint_in_background(checkpointer, writer.clone()));
        }
        // An in-memory database exists once per connection, so readers must share the writer.
        let reader = if memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(max_readers.max(1))
                .connect_with(options.read_only(true))
                .await
                .map_err(failed)?
        };
        Ok(SqliteStore { writer, reader })
    }
}

/// How often the background checkpoint runs; SQLite's own threshold (1000 pages, ~4 MiB)
/// takes longer than this to fill at any realistic write rate.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Runs `PASSIVE` checkpoints (they copy what they can without waiting for readers or the
/// writer) until the store is closed, then leaves the last one to the closing connection.
async fn checkpoint_in_background(checkpointer: SqlitePool, writer: SqlitePool) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if writer.is_closed() {
            break;
        }
        if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&checkpointer)
            .await
        {
            tracing::debug!(error = %err, "background checkpoint did not run");
        }
    }
    checkpointer.close().await;
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, TimeZone, Utc};

    /// SQLite compares the times taskwire stores as text. That is only right while every
    /// value has the same shape: the driver writes RFC 3339 with `+00:00` and 0, 3, 6 or 9
    /// fractional digits, which sorts like the times themselves within years 1000–9999.
    #[tokio::test]
    async fn stored_times_compare_in_time_order_as_text() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        let base = Utc.with_ymd_and_hms(2026, 12, 3, 8, 15, 48).unwrap();
        let times: Vec<DateTime<Utc>> = [0, 1, 500_000, 500_000_000, 500_000_001, 999_999_999]
            .into_iter()
            .map(|ns| base + chrono::Duration::nanoseconds(ns))
            .chain([
                base + chrono::Duration::seconds(1),
                base - chrono::Duration::days(400),
            ])
            .collect();
        for a in &times {
            for b in &times {
                let (less,): (bool,) = sqlx::query_as("SELECT $1 < $2")
                    .bind(a)
                    .bind(b)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                assert_eq!(less, a < b, "{a:?} < {b:?} as stored text");
            }
        }
        // Why recovery and retention never compare with chrono's MIN/MAX sentinels.
        let (wrong,): (bool,) = sqlx::query_as("SELECT $1 < $2")
            .bind(base)
            .bind(DateTime::<Utc>::MAX_UTC)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(!wrong, "MAX_UTC sorts before real dates as text");
    }
}

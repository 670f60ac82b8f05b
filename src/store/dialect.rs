//! What differs between SQLite and Postgres, and only that. The rest of the store is written
//! once, generic over a [`Dialect`], with `$n` placeholders that both backends accept;
//! `sqlite.rs` and `postgres.rs` each implement it for their `sqlx` database type.

/// The SQL fragments and capabilities in which the backends differ.
pub trait Dialect: sqlx::Database {
    /// `sqlite` or `postgres`, for logs and `/readyz`.
    const BACKEND: &'static str;
    /// Appended to a `SELECT` inside a write transaction to lock the rows it reads, so
    /// concurrent writers of a task queue instead of interleaving. SQLite needs none: it has
    /// one writer.
    const LOCK_ROWS: &'static str;
    /// Appended to the inner `SELECT` of a claim so that several processes claim different
    /// rows without waiting on each other. SQLite has one process.
    const SKIP_LOCKED: &'static str;
    /// The case-insensitive `LIKE` of the task search.
    const LIKE: &'static str;
    /// Whether several statements can be sent as one: a change's event and its notifications
    /// then cost one round trip instead of two. SQLite can; a Postgres prepared statement
    /// cannot.
    const ONE_TRIP: bool;
    /// Rows a statement changed: `sqlx` gives each backend its own result type.
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

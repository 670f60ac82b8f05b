//! Opening a database, and what is said when that fails. Start-up is where an operator meets a
//! mistyped `DATABASE_URL`, a Postgres that is not up yet, a wrong role or a second process on
//! one SQLite file, so every failure here is an [`OpenError`] whose message names what failed
//! and what to change, shows URLs only with their password hidden ([`redact`]), and comes
//! within `DATABASE_TIMEOUT_SECONDS`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::SqliteConnectOptions;
use tokio::time::Instant;

/// Why a database could not be opened; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// `DATABASE_URL` names neither SQLite nor Postgres.
    #[error("DATABASE_URL must start with sqlite:// or postgres:// (got {url:?})")]
    UnknownScheme {
        /// The URL, password hidden.
        url: String,
    },
    /// `DATABASE_URL` has a known scheme but cannot be parsed.
    #[error("DATABASE_URL {url:?} is not a valid {backend} URL: {cause}")]
    InvalidUrl {
        /// The URL, password hidden.
        url: String,
        /// `SQLite` or `Postgres`.
        backend: &'static str,
        /// What the parser said.
        cause: String,
    },
    /// Another process holds the SQLite database.
    #[error(
        "the SQLite database {} is in use by another taskwire process{} (it holds {}). A SQLite \
         database serves one process: stop the other one, or give this one its own \
         DATABASE_URL. To run several processes on one state, use PostgreSQL \
         (DATABASE_URL=postgres://…) with REDIS_URL.",
        path.display(),
        holder.map(|pid| format!(", pid {pid}")).unwrap_or_default(),
        lock.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// The lock file beside it.
        lock: PathBuf,
        /// The process id the holder wrote into the lock file, when readable.
        holder: Option<u32>,
    },
    /// The lock file beside a SQLite database cannot be created or locked.
    #[error(
        "cannot create {}, the lock file beside the SQLite database: {cause}. Check that the \
         folder exists and that taskwire may write there.",
        lock.display()
    )]
    LockFile {
        /// The lock file.
        lock: PathBuf,
        /// What the OS said.
        cause: std::io::Error,
    },
    /// SQLite cannot open or create the file.
    #[error(
        "cannot open the SQLite database {}: {cause}. Check that its folder exists and that \
         taskwire may write there.",
        path.display()
    )]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        cause: String,
    },
    /// No connection to Postgres could be made within the timeout.
    #[error(
        "cannot reach Postgres at {server} (tried for {} s; last error: {cause}). Check that \
         Postgres is running and that the host and port in DATABASE_URL are right; \
         DATABASE_TIMEOUT_SECONDS sets how long taskwire tries.",
        waited.as_secs()
    )]
    Unreachable {
        /// `host:port` or the socket folder.
        server: String,
        /// How long taskwire tried.
        waited: Duration,
        /// The last failure, or that nothing answered.
        cause: String,
    },
    /// Postgres answered but did not accept the user or its password.
    #[error(
        "Postgres at {server} refused user {user:?}: {cause}. Check the user name and password \
         in DATABASE_URL."
    )]
    Rejected {
        /// `host:port` or the socket folder.
        server: String,
        /// The user taskwire logged in as.
        user: String,
        /// What Postgres said.
        cause: String,
    },
    /// Postgres has no database of the name in the URL.
    #[error(
        "Postgres at {server} has no database {database:?}: create it (CREATE DATABASE \
         {database}) or fix the database name in DATABASE_URL."
    )]
    NoDatabase {
        /// `host:port` or the socket folder.
        server: String,
        /// The database named in the URL.
        database: String,
    },
    /// Postgres refused the connection for another reason (TLS, server settings).
    #[error("Postgres at {server} refused the connection: {cause}")]
    Refused {
        /// `host:port` or the socket folder.
        server: String,
        /// What went wrong.
        cause: String,
    },
    /// The connection works but the tables cannot be created or brought up to date.
    #[error(
        "cannot set up taskwire's tables in the {backend} database {target}: {cause}. The \
         database user needs the right to create tables there."
    )]
    Migrate {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// The database file, or `name at host:port`.
        target: String,
        /// What the migration said.
        cause: String,
    },
}

/// `url` with the password hidden, from `user:password@` and from `password=` parameters, so
/// it can be printed and logged. Works on any text, parseable or not.
pub fn redact(url: &str) -> String {
    let (head, query) = match url.find('?') {
        Some(q) => (&url[..q], Some(&url[q + 1..])),
        None => (url, None),
    };
    let scheme = head.find("://");
    let start = scheme.map_or(0, |i| i + 3);
    let mut out = String::with_capacity(url.len());
    // Without `scheme://`, a `/` before the `@` means a path (`sqlite:/srv/me@host.db`).
    let userinfo_end = head[start..]
        .rfind('@')
        .filter(|&at| scheme.is_some() || !head[start..start + at].contains('/'));
    match userinfo_end {
        Some(at) => {
            let userinfo = &head[start..start + at];
            out.push_str(&head[..start]);
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            out.push_str(&head[start + at..]);
        }
        None => out.push_str(head),
    }
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().ends_with("password") => {
                    format!("{key}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// Whether `url` selects Postgres.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether `url` selects SQLite.
pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Whether a SQLite `url` is an in-memory database (one per process by nature).
pub fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// Keeps a SQLite database to one process: an exclusive OS lock on `<database>.lock`, held
/// until this is dropped. The OS releases it when the process ends, even by `kill -9`, so a
/// leftover lock file never blocks a restart. It is a file of its own because closing any
/// second descriptor of the database file would drop SQLite's own locks on it.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

/// Takes the lock of the SQLite database `url` names, or says which file is held; `None` for
/// Postgres and in-memory databases, which need none.
pub fn lock(url: &str) -> Result<Option<DatabaseLock>, OpenError> {
    if !is_sqlite(url) || is_memory(url) {
        return Ok(None);
    }
    let path = sqlite_path(&sqlite_options(url)?);
    let mut lock = path.clone().into_os_string();
    lock.push(".lock");
    let lock = PathBuf::from(lock);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock)
        .map_err(|cause| OpenError::LockFile {
            lock: lock.clone(),
            cause,
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let holder = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(OpenError::Locked { path, lock, holder });
        }
        Err(TryLockError::Error(cause)) => return Err(OpenError::LockFile { lock, cause }),
    }
    // The holder's pid only makes the refusal message more helpful; failing to write it is
    // harmless.
    let _ = file
        .set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    Ok(Some(DatabaseLock { _file: file }))
}

/// Parsed SQLite options, or an error that shows the URL with its password hidden.
pub(super) fn sqlite_options(url: &str) -> Result<SqliteConnectOptions, OpenError> {
    SqliteConnectOptions::from_str(url).map_err(|e| OpenError::InvalidUrl {
        url: redact(url),
        backend: "SQLite",
        cause: e.to_string(),
    })
}

/// The database file, absolute, as messages show it.
pub(super) fn sqlite_path(options: &SqliteConnectOptions) -> PathBuf {
    let file = options.get_filename();
    std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf())
}

/// The start-up error for SQLite failing to open `options`' file.
pub(super) fn sqlite_error(options: &SqliteConnectOptions, err: &sqlx::Error) -> OpenError {
    OpenError::Sqlite {
        path: sqlite_path(options),
        cause: cause_of(err),
    }
}

/// Parsed Postgres options, or an error that shows the URL with its password hidden.
pub(super) fn pg_options(url: &str) -> Result<PgConnectOptions, OpenError> {
    PgConnectOptions::from_str(url).map_err(|e| OpenError::InvalidUrl {
        url: redact(url),
        backend: "Postgres",
        cause: e.to_string(),
    })
}

/// `host:port`, or the socket folder, for messages.
pub(super) fn pg_server(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(folder) => format!("{} (port {})", folder.display(), options.get_port()),
        None if options.get_host().contains(':') => {
            format!("[{}]:{}", options.get_host(), options.get_port())
        }
        None => format!("{}:{}", options.get_host(), options.get_port()),
    }
}

/// `database at host:port`, for messages.
pub(super) fn pg_target(options: &PgConnectOptions) -> String {
    let database = options
        .get_database()
        .unwrap_or_else(|| options.get_username());
    format!("{database:?} at {}", pg_server(options))
}

/// How long start-up waits between two connection attempts at most.
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// Opens (and closes) one connection to Postgres, retrying for at most `timeout` while the
/// server is not there or still starting (a database container started next to taskwire), and
/// failing at once when Postgres answers with a refusal that waiting will not change.
pub(super) async fn reach_postgres(
    options: &PgConnectOptions,
    timeout: Duration,
) -> Result<(), OpenError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(100);
    let mut last = String::from("no answer");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(OpenError::Unreachable {
                server: pg_server(options),
                waited: timeout,
                cause: last,
            });
        }
        match tokio::time::timeout(left, PgConnection::connect_with(options)).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                return Ok(());
            }
            Ok(Err(err)) if worth_retrying(&err) => last = cause_of(&err),
            Ok(Err(err)) => return Err(pg_error(options, &err, timeout)),
            Err(_) => last = "no answer".into(),
        }
        tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Failures that may go away by themselves within seconds: the server is down, restarting or
/// not reachable yet, or full.
fn worth_retrying(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code == "57P03" || code == "53300"),
        _ => false,
    }
}

/// The start-up error for a failed Postgres connection.
pub(super) fn pg_error(
    options: &PgConnectOptions,
    err: &sqlx::Error,
    waited: Duration,
) -> OpenError {
    let server = pg_server(options);
    let code = err
        .as_database_error()
        .and_then(|db| db.code())
        .map(|c| c.into_owned());
    match code.as_deref() {
        // invalid_authorization_specification (no such role, or not allowed to log in by
        // pg_hba.conf) and invalid_password.
        Some("28000" | "28P01") => OpenError::Rejected {
            server,
            user: options.get_username().to_owned(),
            cause: cause_of(err),
        },
        // invalid_catalog_name
        Some("3D000") => OpenError::NoDatabase {
            server,
            database: options
                .get_database()
                .unwrap_or_else(|| options.get_username())
                .to_owned(),
        },
        _ if worth_retrying(err) => OpenError::Unreachable {
            server,
            waited,
            cause: cause_of(err),
        },
        _ => OpenError::Refused {
            server,
            cause: cause_of(err),
        },
    }
}

/// The part of a sqlx error a person needs: the database's own message, or the OS error.
fn cause_of(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_wherever_a_url_carries_one() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db.internal:5432/tasks",
                "postgres://app:***@db.internal:5432/tasks",
            ),
            (
                "mysql://root:s3cret@db/x?sslmode=require",
                "mysql://root:***@db/x?sslmode=require",
            ),
            // An unencoded `@` or `/` in the password still ends up hidden.
            (
                "postgres://app:p@ss/w@db/tasks",
                "postgres://app:***@db/tasks",
            ),
            (
                "postgres://db/tasks?user=app&password=s3cret&sslpassword=s3cret",
                "postgres://db/tasks?user=app&password=***&sslpassword=***",
            ),
            ("app:s3cret@db/tasks", "app:***@db/tasks"),
            ("postgres://app@db/tasks", "postgres://app@db/tasks"),
            ("sqlite://taskwire.db", "sqlite://taskwire.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            ("sqlite:/srv/me@host.db", "sqlite:/srv/me@host.db"),
        ] {
            assert_eq!(redact(url), shown, "{url}");
            assert!(!redact(url).contains("s3cret"));
        }
    }

    #[test]
    fn in_memory_and_postgres_databases_take_no_lock() {
        for url in [
            "sqlite::memory:",
            "sqlite://:memory:",
            "sqlite://?mode=memory",
            "postgres://postgres@127.0.0.1/test",
        ] {
            assert!(lock(url).unwrap().is_none(), "{url}");
        }
    }

    #[test]
    fn a_sqlite_file_is_locked_once_and_free_again_when_the_lock_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db", dir.path().display());
        let held = lock(&url).unwrap().expect("a file database is locked");
        match lock(&url) {
            Err(err @ OpenError::Locked { .. }) => {
                let text = err.to_string();
                assert!(
                    text.contains(&format!("{}/t.db", dir.path().display())),
                    "{text}"
                );
                assert!(
                    text.contains(&format!("pid {}", std::process::id())),
                    "{text}"
                );
                assert!(text.contains("REDIS_URL"), "{text}");
            }
            other => panic!("a second lock must be refused, got {other:?}"),
        }
        drop(held);
        assert!(lock(&url).unwrap().is_some());
    }
}

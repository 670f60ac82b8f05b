//! Several taskwire processes behaving as one, on PostgreSQL + Redis (`REDIS_URL`).
//!
//! The event log in PostgreSQL stays the source of truth: every process's hub delivers a
//! workspace's events in `seq` order and fills any gap from the log. Redis only carries the
//! news, so that a change committed on one process reaches the sockets and SSE streams of the
//! others at once:
//! - the committing process publishes each event (and job updates, and presence changes) on
//!   one Pub/Sub channel, `{REDIS_PREFIX}:news`;
//! - every other process hands the event to its hub as if it were local; the hub notices
//!   `seq ≠ last + 1` and reads what is missing from the log;
//! - because Pub/Sub is at-most-once (a message published while a process is disconnected is
//!   simply lost), each hub also reads the log's heads every [`HEAD_CHECK`] and catches up any
//!   workspace that is behind, so the last change before a quiet period, or everything during
//!   a Redis outage, still arrives, about a second late at worst.
//!
//! Each process emits to its own sockets only, so nothing is delivered twice.
//!
//! Layout: `wire.rs` (the messages), `bus.rs` (publisher, subscriber, health), `presence.rs`
//! (who is connected, summed over every process).

mod bus;
pub mod presence;
pub mod wire;

use std::time::Duration;

pub use bus::{Cluster, Inbound};

/// How often each hub compares its position with the log's heads, to catch what Pub/Sub lost.
pub const HEAD_CHECK: Duration = Duration::from_millis(500);

/// `redis://user:secret@host` → `redis://user:***@host`, for messages and logs.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((auth, host)) => match auth.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
                None => format!("{scheme}://***@{host}"),
            },
            None => url.to_owned(),
        },
        None => "(not a URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://default:hunter2@10.0.0.1:6379/0"),
            "redis://default:***@10.0.0.1:6379/0"
        );
        assert_eq!(redact("redis://:hunter2@h"), "redis://:***@h");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("hunter2"), "(not a URL)");
    }
}

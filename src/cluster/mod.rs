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

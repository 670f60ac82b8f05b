//! Delivering the outbox: a background dispatcher that wakes on every commit that wrote
//! notifications (and polls slowly as a safety net), claims due rows under a lease, sends each
//! with bounded concurrency and no database transaction open, and records the outcome: retry
//! with back-off, or `delivered`, or `dead` after the last attempt. A crash mid-send leaves a
//! lease that runs out, and the row is sent again: delivery is at least once.
//!
//! Layout: `dispatcher.rs` (the loop: claim, send, settle), `webhook.rs` (Standard Webhooks),
//! `email.rs` (SMTP), `backoff.rs` (retry schedule).

mod backoff;
mod dispatcher;
mod email;
mod webhook;

pub use dispatcher::{Dispatcher, Outcome, plan};
pub use email::Mailer;
pub use webhook::{Webhook, sign, signing_key};

//! Task rules and the service that applies them. Knows the store trait, nothing of HTTP or
//! sockets.

pub mod error;
pub mod event;
pub mod notification;
pub mod query;
pub mod service;
pub mod task;

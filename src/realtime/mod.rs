//! Real-time delivery: the hub that orders committed events and fans them out, replay from
//! the event log, presence and the Socket.IO namespace. The SSE routes (`http/sse/`) read the
//! same hub and log; nothing here depends on `http`.

pub mod frame;
pub mod hub;
pub mod presence;
pub mod replay;
pub mod runtime;
pub mod socket;

//! Real-time delivery: the hub that orders committed events and fans them out, replay from
//! the event log, presence, the Socket.IO namespace and the SSE stream.

pub mod frame;
pub mod hub;
pub mod presence;
pub mod replay;
pub mod runtime;
pub mod socket;
pub mod sse;

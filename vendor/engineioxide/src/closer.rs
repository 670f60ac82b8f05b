//! Ending every session of an engine from outside it, for a server's graceful shutdown.
//!
//! An application that reaches engine.io only through another crate's layer (socketioxide)
//! holds no handle on the engine, and that crate ends only the sessions it knows about: a
//! session whose socket.io CONNECT was refused belongs to no namespace, so its pending
//! long-polling request would hold the HTTP server's graceful shutdown until the next ping.
//!
//! A [`SessionCloser`] placed in the extensions of the requests the engine serves (for
//! example with `axum::Extension`) is found by the engine, which attaches itself to it on the
//! first request; [`SessionCloser::close_all`] then ends every session of the attached engine.
//!
//! The same handle reports how the attached engines' sessions are written
//! ([`SessionCloser::count_sessions`]), so the application can see, and test, that WebSocket
//! sessions take the direct write path of `transport/direct.rs`.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// An engine as the closer sees it, without its handler type.
pub(crate) trait CloseSessions: Send + Sync {
    /// Ends every session and refuses new ones; returns how many sessions were ended.
    fn close_sessions(&self) -> usize;
    /// The open sessions by transport and write path.
    fn count_sessions(&self) -> SessionCounts;
}

/// Open engine.io sessions by transport and by the way their packets are written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SessionCounts {
    /// Sessions on HTTP long-polling, including those in the middle of a WebSocket upgrade.
    pub polling: usize,
    /// WebSocket sessions written through a packet queue and a writer task of their own:
    /// new Engine.IO v3 WebSocket sessions, and streams other than a plain `TcpStream`.
    pub websocket_queued: usize,
    /// WebSocket sessions whose packets are framed straight into the connection's buffer and
    /// written by the engine's flusher (see `PATCHES.md`, patches 2 and 6), whether they
    /// started on the WebSocket or upgraded from polling.
    pub websocket_direct: usize,
    /// Of `websocket_direct`, the sessions that started on polling and moved to the direct
    /// path when their upgrade completed (patch 6).
    pub websocket_direct_upgraded: usize,
}

impl std::ops::AddAssign for SessionCounts {
    fn add_assign(&mut self, other: Self) {
        self.polling += other.polling;
        self.websocket_queued += other.websocket_queued;
        self.websocket_direct += other.websocket_direct;
        self.websocket_direct_upgraded += other.websocket_direct_upgraded;
    }
}

/// Ends every engine.io session of the engines that served a request carrying it in its
/// extensions, so that a graceful shutdown does not wait for idle long-polling requests of
/// sessions no namespace knows about.
#[derive(Clone, Default)]
pub struct SessionCloser(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    closed: bool,
    engines: Vec<Weak<dyn CloseSessions>>,
}

impl SessionCloser {
    /// A closer attached to no engine yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends every session of the attached engines with
    /// [`DisconnectReason::ClosingServer`](crate::DisconnectReason::ClosingServer): a pending
    /// polling request is answered with the close packet, a WebSocket gets the close packet
    /// and a close frame. From then on those engines refuse new sessions (HTTP 503), and an
    /// engine that attaches later is closed as it attaches. Returns how many sessions ended.
    pub fn close_all(&self) -> usize {
        let engines = {
            let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            state.closed = true;
            std::mem::take(&mut state.engines)
        };
        engines
            .iter()
            .filter_map(Weak::upgrade)
            .map(|engine| engine.close_sessions())
            .sum()
    }

    /// The open sessions of the attached engines, by transport and write path. An engine
    /// attaches on the first request carrying this closer; before that, and after
    /// [`SessionCloser::close_all`], it is not counted.
    pub fn count_sessions(&self) -> SessionCounts {
        let engines: Vec<_> = {
            let state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            state.engines.iter().filter_map(Weak::upgrade).collect()
        };
        let mut counts = SessionCounts::default();
        for engine in engines {
            counts += engine.count_sessions();
        }
        counts
    }

    /// Whether [`SessionCloser::close_all`] was called.
    pub fn is_closed(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).closed
    }

    pub(crate) fn attach(&self, engine: Arc<dyn CloseSessions>) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            drop(state);
            engine.close_sessions();
            return;
        }
        state.engines.retain(|e| e.strong_count() > 0);
        state.engines.push(Arc::downgrade(&engine));
    }
}

impl fmt::Debug for SessionCloser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("SessionCloser")
            .field("closed", &state.closed)
            .field("engines", &state.engines.len())
            .finish()
    }
}

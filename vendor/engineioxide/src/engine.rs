use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use engineioxide_core::{ProtocolVersion, Sid, TransportType};
use http::request::Parts;

use engineioxide_core::Packet;

use crate::{
    closer::{CloseSessions, SessionCloser, SessionCounts},
    config::EngineIoConfig,
    handler::EngineIoHandler,
    socket::{DisconnectReason, Socket},
    transport::{
        direct::{Conn, Flusher},
        make_open_packet,
    },
};

type SocketMap<T> = RwLock<HashMap<Sid, Arc<T>>>;

/// The [`EngineIo`] struct holds the state of the engine.io server as well as utility methods to manage the state
pub struct EngineIo<H: EngineIoHandler> {
    /// A map of all the sockets connected to the server
    sockets: SocketMap<Socket<H::Data>>,

    /// The handler for the engine.io server that will be called when events are received
    pub handler: Arc<H>,

    /// The config for the engine.io server
    pub config: EngineIoConfig,

    /// Writes the output of every direct WebSocket connection.
    pub(crate) flusher: Arc<Flusher>,

    /// Set by a [`SessionCloser`]: every session was ended and new ones are refused. Set under
    /// a lock on `sockets` and read under its write lock, so no session slips in unclosed.
    closing: AtomicBool,

    /// Whether the engine attached itself to a [`SessionCloser`] already (the first one wins).
    closer_attached: AtomicBool,
}

impl<H: EngineIoHandler> EngineIo<H> {
    /// Create a new Engine.IO server with a [`EngineIoHandler`] and a [`EngineIoConfig`]
    pub fn new(handler: Arc<H>, config: EngineIoConfig) -> Self {
        Self {
            sockets: RwLock::new(HashMap::new()),
            config,
            handler,
            flusher: Arc::default(),
            closing: AtomicBool::new(false),
            closer_attached: AtomicBool::new(false),
        }
    }
}

impl<H: EngineIoHandler> EngineIo<H> {
    /// Create a new engine.io session and a new socket and add it to the socket map
    pub(crate) fn create_session(
        self: &Arc<Self>,
        protocol: ProtocolVersion,
        transport: TransportType,
        req: Parts,
        supports_binary: bool,
        direct: Option<Arc<Conn>>,
    ) -> Arc<Socket<H::Data>> {
        let engine = self.clone();
        let close_fn = Box::new(move |sid, reason| engine.close_session(sid, reason));

        let socket = Socket::new(
            protocol,
            transport,
            &self.config,
            req,
            close_fn,
            supports_binary,
            direct,
        );
        if socket.direct.get().is_some() {
            // The open packet must be the connection's first, before anything `on_connect`
            // sends; the general transports send it themselves.
            let open = make_open_packet(transport, socket.id, &self.config);
            socket.send(Packet::Open(open)).ok();
        }
        let socket = Arc::new(socket);
        let closing = {
            let mut sockets = self.sockets.write().unwrap();
            sockets.insert(socket.id, socket.clone());
            self.closing.load(Ordering::Relaxed)
        };
        self.handler.clone().on_connect(socket.clone());
        if closing {
            // A handshake that passed the check in `dispatch_req` just before the closer ran.
            socket.close(DisconnectReason::ClosingServer);
        }
        socket
    }

    /// Attaches the engine to the [`SessionCloser`] in `extensions`, if any, once.
    pub(crate) fn attach_closer(self: &Arc<Self>, extensions: &http::Extensions) {
        if self.closer_attached.load(Ordering::Relaxed) {
            return;
        }
        if let Some(closer) = extensions.get::<SessionCloser>()
            && !self.closer_attached.swap(true, Ordering::AcqRel)
        {
            closer.attach(self.clone());
        }
    }

    /// Whether a [`SessionCloser`] ended this engine's sessions: new ones are refused.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }

    /// Get a socket by its sid
    /// Clones the socket ref to avoid holding the lock
    pub fn get_socket(&self, sid: Sid) -> Option<Arc<Socket<H::Data>>> {
        self.sockets.read().unwrap().get(&sid).cloned()
    }

    /// Close an engine.io session by removing the socket from the socket map and closing the socket.
    ///
    /// It should be the only way to close a session and to remove a socket from the socket map.
    #[cfg_attr(feature = "tracing", tracing::instrument(skip(self)))]
    pub fn close_session(&self, sid: Sid, reason: DisconnectReason) {
        let socket = { self.sockets.write().unwrap().remove(&sid) };
        let Some(socket) = socket else {
            #[cfg(feature = "tracing")]
            tracing::debug!(
                ?sid,
                socket_len = self.sockets.read().unwrap().len(),
                "socket not found"
            );
            return;
        };

        // Notify every transport task listening on this token to stop. Cancellation-aware
        // transports (the ws `forward_to_socket` task and pending polling requests) will release
        // the `internal_rx` lock as soon as they observe the cancellation.
        socket.cancellation_token.cancel();

        let handler = self.handler.clone();
        tokio::spawn(async move {
            // Wait for the cancelled transport task to yield the `internal_rx` lock, then close the
            // channel so that `Socket::closed` resolves and no more packets can be buffered.
            // When no transport holds the lock (e.g. polling between requests) this resolves
            // immediately.
            socket.internal_rx.lock().await.buffered_rx.close();

            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "session closed, notifying handler");
            handler.on_disconnect(socket, reason);
        });

        #[cfg(feature = "tracing")]
        tracing::debug!(
            rem_sockets = self.sockets.read().unwrap().len(),
            "remaining sockets",
        );
    }
}

impl<H: EngineIoHandler> CloseSessions for EngineIo<H> {
    fn close_sessions(&self) -> usize {
        let sockets: Vec<_> = {
            // Any lock on the map excludes `create_session`'s write lock: a session is either
            // in this snapshot or sees the flag.
            let sockets = self.sockets.read().unwrap();
            self.closing.store(true, Ordering::Relaxed);
            sockets.values().cloned().collect()
        };
        #[cfg(feature = "tracing")]
        tracing::debug!(sessions = sockets.len(), "closing every session");
        for socket in &sockets {
            // Queues the close packet (answering a pending poll), then ends the session.
            socket.close(DisconnectReason::ClosingServer);
        }
        sockets.len()
    }

    fn count_sessions(&self) -> SessionCounts {
        let sockets = self.sockets.read().unwrap();
        let mut counts = SessionCounts::default();
        for socket in sockets.values() {
            if socket.direct.get().is_some() {
                counts.websocket_direct += 1;
                if socket.was_upgraded() {
                    counts.websocket_direct_upgraded += 1;
                }
            } else if socket.is_ws() {
                counts.websocket_queued += 1;
            } else {
                counts.polling += 1;
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use engineioxide_core::Str;
    use http::Request;

    use super::*;

    #[derive(Debug, Clone)]
    struct MockHandler;

    impl EngineIoHandler for MockHandler {
        type Data = ();

        fn on_connect(self: Arc<Self>, socket: Arc<Socket<Self::Data>>) {
            println!("socket connect {}", socket.id);
        }

        fn on_disconnect(&self, socket: Arc<Socket<Self::Data>>, reason: DisconnectReason) {
            println!("socket disconnect {} {:?}", socket.id, reason);
        }

        fn on_message(self: &Arc<Self>, msg: Str, socket: Arc<Socket<Self::Data>>) {
            println!("Ping pong message {msg:?}");
            socket.emit(msg).ok();
        }

        fn on_binary(self: &Arc<Self>, data: Bytes, socket: Arc<Socket<Self::Data>>) {
            println!("Ping pong binary message {data:?}");
            socket.emit_binary(data).ok();
        }
    }

    fn create_engine() -> Arc<EngineIo<MockHandler>> {
        let config = EngineIoConfig::default();
        Arc::new(EngineIo::new(Arc::new(MockHandler), config))
    }

    #[tokio::test]
    async fn create_session() {
        let engine = create_engine();
        let socket = engine.create_session(
            ProtocolVersion::V4,
            TransportType::Polling,
            Request::<()>::default().into_parts().0,
            true,
            None,
        );
        assert_eq!(engine.sockets.read().unwrap().len(), 1);
        assert_eq!(socket.protocol, ProtocolVersion::V4);
        assert!(socket.is_http());
    }

    #[tokio::test]
    async fn close_session() {
        let engine = create_engine();
        let socket = engine.create_session(
            ProtocolVersion::V4,
            TransportType::Polling,
            Request::<()>::default().into_parts().0,
            true,
            None,
        );
        assert_eq!(engine.sockets.read().unwrap().len(), 1);
        engine.close_session(socket.id, DisconnectReason::TransportClose);
        assert_eq!(engine.sockets.read().unwrap().len(), 0);
    }

    #[tokio::test]
    async fn get_socket() {
        let engine = create_engine();
        let socket = engine.create_session(
            ProtocolVersion::V4,
            TransportType::Polling,
            Request::<()>::default().into_parts().0,
            true,
            None,
        );
        assert_eq!(engine.sockets.read().unwrap().len(), 1);
        let socket = engine.get_socket(socket.id).unwrap();
        assert_eq!(socket.protocol, ProtocolVersion::V4);
        assert!(socket.is_http());
    }
}

/// Patch 4 (PATCHES.md): a [`SessionCloser`] ends every session, whether a handler knows it or
/// not, answers pending polls with the close packet and refuses new sessions.
#[cfg(test)]
mod closer_tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http::{Extensions, Request};
    use http_body_util::{BodyExt, Empty};

    use super::*;
    use crate::service::EngineIoService;

    /// Knows no session: like a socket.io server for sessions whose CONNECT it refused.
    #[derive(Debug)]
    struct Unaware;

    impl EngineIoHandler for Unaware {
        type Data = ();
        fn on_connect(self: Arc<Self>, _: Arc<Socket<()>>) {}
        fn on_disconnect(&self, _: Arc<Socket<()>>, _: DisconnectReason) {}
        fn on_message(self: &Arc<Self>, _: engineioxide_core::Str, _: Arc<Socket<()>>) {}
        fn on_binary(self: &Arc<Self>, _: Bytes, _: Arc<Socket<()>>) {}
    }

    fn engine() -> Arc<EngineIo<Unaware>> {
        Arc::new(EngineIo::new(Arc::new(Unaware), EngineIoConfig::default()))
    }

    fn polling_session(engine: &Arc<EngineIo<Unaware>>) -> Arc<Socket<()>> {
        engine.create_session(
            ProtocolVersion::V4,
            TransportType::Polling,
            Request::<()>::default().into_parts().0,
            true,
            None,
        )
    }

    fn carrying(closer: &SessionCloser) -> Extensions {
        let mut extensions = Extensions::new();
        extensions.insert(closer.clone());
        extensions
    }

    #[tokio::test]
    async fn close_all_ends_every_session_of_an_attached_engine() {
        let engine = engine();
        let closer = SessionCloser::new();
        engine.attach_closer(&carrying(&closer));
        let sockets = [polling_session(&engine), polling_session(&engine)];

        assert_eq!(closer.close_all(), 2);

        assert!(engine.sockets.read().unwrap().is_empty());
        for socket in &sockets {
            assert!(socket.cancellation_token.is_cancelled());
        }
        assert!(closer.is_closed());
    }

    #[tokio::test]
    async fn a_session_created_after_close_all_is_closed_at_once() {
        let engine = engine();
        let closer = SessionCloser::new();
        engine.attach_closer(&carrying(&closer));
        closer.close_all();

        let late = polling_session(&engine);

        assert!(late.cancellation_token.is_cancelled());
        assert!(engine.sockets.read().unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_engine_attaching_after_close_all_is_closed_as_it_attaches() {
        let engine = engine();
        let socket = polling_session(&engine);
        let closer = SessionCloser::new();
        closer.close_all();

        engine.attach_closer(&carrying(&closer));

        assert!(socket.cancellation_token.is_cancelled());
        assert!(engine.is_closing());
    }

    #[tokio::test]
    async fn an_engine_without_a_closer_is_left_alone() {
        let engine = engine();
        let socket = polling_session(&engine);
        let closer = SessionCloser::new();

        engine.attach_closer(&Extensions::new());
        closer.close_all();

        assert!(!socket.cancellation_token.is_cancelled());
        assert!(!engine.is_closing());
    }

    #[tokio::test]
    async fn a_pending_poll_is_answered_with_the_close_packet() {
        let engine = engine();
        let closer = SessionCloser::new();
        engine.attach_closer(&carrying(&closer));
        let socket = polling_session(&engine);
        let poll = tokio::spawn(crate::transport::polling::polling_req::<Empty<Bytes>, _>(
            engine.clone(),
            ProtocolVersion::V4,
            socket.id,
        ));
        // The poll is pending once it holds the session's receiver.
        tokio::time::timeout(Duration::from_secs(5), async {
            while socket.internal_rx.try_lock().is_ok() {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the poll takes the receiver at once");

        closer.close_all();

        let response = tokio::time::timeout(Duration::from_secs(5), poll)
            .await
            .expect("the pending poll ends with the session")
            .expect("the poll task does not panic")
            .expect("a closed session's poll is answered");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, Bytes::from_static(b"1"));
    }

    #[tokio::test]
    async fn a_handshake_after_close_all_gets_503() {
        let mut service = EngineIoService::new(Arc::new(Unaware));
        let closer = SessionCloser::new();
        let handshake = || {
            Request::get("/engine.io/?EIO=4&transport=polling")
                .extension(closer.clone())
                .body(Empty::<Bytes>::new())
                .unwrap()
        };
        let before = tower_service::Service::call(&mut service, handshake())
            .await
            .unwrap();
        assert_eq!(before.status(), 200);

        closer.close_all();
        let after = tower_service::Service::call(&mut service, handshake())
            .await
            .unwrap();

        assert_eq!(after.status(), 503);
    }
}

//! The ws transport module is responsible for handling websocket connections
//! The only public function is [`new_req`] which is used to upgrade a http request to a websocket connection
//!
//! Other functions are used internally to handle the websocket connection through tasks and channels
//! and to handle upgrade from polling to ws

use std::sync::Arc;

use futures_util::{SinkExt, Stream, StreamExt, TryStreamExt, stream::SplitSink};
use http::{HeaderValue, Request, Response, StatusCode, request::Parts};
use smallvec::smallvec;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message,
        handshake::derive_accept_key,
        protocol::{Role, WebSocketConfig},
    },
};
use tokio_util::future::FutureExt as _;

use engineioxide_core::{Packet, ProtocolVersion, Sid, Str, TransportType};

use crate::{
    DisconnectReason, Socket,
    body::ResponseBody,
    config::EngineIoConfig,
    engine::EngineIo,
    errors::Error,
    handler::EngineIoHandler,
    socket::InternalRx,
    transport::{
        direct::{Conn, ConnIo},
        make_open_packet,
    },
};

/// Create a response for websocket upgrade
fn ws_response<B>(ws_key: &HeaderValue) -> Response<ResponseBody<B>> {
    let derived = derive_accept_key(ws_key.as_bytes());
    let sec = derived.parse::<HeaderValue>().unwrap();
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::UPGRADE, HeaderValue::from_static("websocket"))
        .header(
            http::header::CONNECTION,
            HeaderValue::from_static("Upgrade"),
        )
        .header(http::header::SEC_WEBSOCKET_ACCEPT, sec)
        .body(ResponseBody::empty_response())
        .unwrap() // we are only using constants
}

/// The request as the session keeps it for its lifetime (`Socket::req_parts`): without the
/// headers and extension that only served the upgrade, so each session holds less.
fn session_parts(mut parts: Parts) -> Parts {
    use http::header::{
        CONNECTION, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
    };
    const UPGRADE_ONLY: [http::HeaderName; 5] = [
        CONNECTION,
        UPGRADE,
        SEC_WEBSOCKET_KEY,
        SEC_WEBSOCKET_VERSION,
        SEC_WEBSOCKET_EXTENSIONS,
    ];
    let kept = parts
        .headers
        .keys()
        .filter(|name| !UPGRADE_ONLY.contains(name))
        .count();
    let mut headers = http::HeaderMap::with_capacity(kept);
    let mut current = None;
    for (name, value) in parts.headers.drain() {
        if let Some(name) = name {
            current = (!UPGRADE_ONLY.contains(&name)).then_some(name);
        }
        if let Some(name) = &current {
            headers.append(name.clone(), value);
        }
    }
    parts.headers = headers;
    parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    parts
}

/// Upgrade a websocket request to create a websocket connection.
///
/// If a sid is provided in the query it means that is is upgraded from an existing HTTP polling request.
/// In this case the http polling request is closed and the SID is kept for the websocket
pub fn new_req<R: Send + 'static, B, H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req: Request<R>,
) -> Result<Response<ResponseBody<B>>, Error> {
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts.clone(), body);

    let ws_key = parts
        .headers
        .get("Sec-WebSocket-Key")
        .ok_or(Error::InvalidWebSocketKey)?
        .clone();
    let parts = session_parts(parts);

    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            // Over plain TCP, a new v4 session and an upgrade from polling (v4 or v3) take the
            // direct write path; a new v3 session and other streams (TLS, tests) keep the
            // queue and writer task.
            Ok(upgraded) if sid.is_some() || protocol == ProtocolVersion::V4 => {
                match upgraded.downcast::<hyper_util::rt::TokioIo<tokio::net::TcpStream>>() {
                    Ok(up) => {
                        let tcp = up.io.into_inner();
                        // Tasks of their own: this one's state, sized for the upgrade and the
                        // queue path, would otherwise be carried for the whole session.
                        match sid {
                            None => tokio::spawn(on_init_direct(engine, tcp, up.read_buf, parts)),
                            // The session keeps the request of its polling handshake.
                            Some(sid) => {
                                drop(parts);
                                tokio::spawn(on_upgrade_direct(engine, tcp, up.read_buf, sid))
                            }
                        };
                        return;
                    }
                    Err(upgraded) => Ok(upgraded),
                }
            }
            other => other,
        };
        let conn = upgraded.map(hyper_util::rt::TokioIo::new);

        let res = match conn {
            // Boxed so that its larger state does not size every direct session's task.
            Ok(conn) => Box::pin(on_init(engine.clone(), conn, protocol, sid, parts)).await,
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("ws upgrade error: {}", _e);
                return;
            }
        };

        match res {
            Ok(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed")
            }
            Err(Error::MultipleWebsocketRequests) => {}
            Err(_e) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(?sid, "ws closed with error: {_e}");
                if let Some(sid) = sid {
                    engine.close_session(sid, DisconnectReason::TransportError);
                }
            }
        }
    });

    Ok(ws_response(&ws_key))
}

/// Handle a websocket connection upgrade
///
/// Sends an open packet if it is not an upgrade from a polling request
///
/// Read packets from the websocket and handle them, it will block until the connection is closed
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", name = "init_websocket", skip(engine, conn, req_data))
)]
pub async fn on_init<H: EngineIoHandler, S>(
    engine: Arc<EngineIo<H>>,
    conn: S,
    protocol: ProtocolVersion,
    sid: Option<Sid>,
    req_data: Parts,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer_size)
        .max_message_size(Some(engine.config.ws_max_message_size))
        .max_frame_size(Some(engine.config.ws_max_frame_size));

    let ws_init = move || WebSocketStream::from_raw_socket(conn, Role::Server, Some(ws_config));
    let (socket, ws) = if let Some(sid) = sid {
        match engine.get_socket(sid) {
            None => return Err(Error::UnknownSessionID(sid)),
            Some(socket) if socket.is_ws() => return Err(Error::MultipleWebsocketRequests),
            Some(socket) => {
                let mut ws = ws_init().await;

                let upgrade_fut = upgrade_handshake::<H, S>(&socket, &mut ws);
                match tokio::time::timeout(engine.config.upgrade_timeout, upgrade_fut)
                    .with_cancellation_token(&socket.cancellation_token)
                    .await
                {
                    Some(Ok(res)) => drop(res?),
                    Some(Err(_)) => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "ws upgrade timed out, closing session");
                        engine.close_session(socket.id, DisconnectReason::TransportError);
                        return Err(Error::Upgrade);
                    }
                    None => {
                        #[cfg(feature = "tracing")]
                        tracing::debug!(?sid, "socket is being closed");
                        return Err(Error::Upgrade);
                    }
                }
                (socket, ws)
            }
        }
    } else {
        let socket =
            engine.create_session(protocol, TransportType::Websocket, req_data, false, None);

        #[cfg(feature = "tracing")]
        tracing::debug!("new websocket connection");

        let mut ws = ws_init().await;
        init_handshake(socket.id, &mut ws, &engine.config).await?;
        socket
            .clone()
            .spawn_heartbeat(engine.config.ping_interval, engine.config.ping_timeout);
        (socket, ws)
    };
    let (tx, rx) = ws.split();

    // Pipe between websocket and internal socket channel.
    tokio::spawn(forward_to_socket::<H, S>(socket.clone(), tx));

    // pipe between internal socket channel and websocket
    match forward_to_handler(&engine, rx, &socket)
        .with_cancellation_token(&socket.cancellation_token)
        .await
    {
        Some(Err(ref e)) => {
            let reason =
                Option::<DisconnectReason>::from(e).unwrap_or(DisconnectReason::TransportError);

            #[cfg(feature = "tracing")]
            tracing::debug!("error when handling packet: {:?}", e);
            engine.close_session(socket.id, reason);
        }
        Some(Ok(())) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "ws transport was closed");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
        }
        None => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "socket is closing");
        }
    }
    Ok(())
}

/// Runs a new session whose packets are framed straight into the TCP connection (see
/// [`crate::transport::direct`]): the open packet, then the reader until the session ends.
async fn on_init_direct<H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    tcp: tokio::net::TcpStream,
    read_ahead: bytes::Bytes,
    req_data: Parts,
) {
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer_size)
        .max_message_size(Some(engine.config.ws_max_message_size))
        .max_frame_size(Some(engine.config.ws_max_frame_size));
    let conn = Conn::new(
        tcp,
        engine.flusher.clone(),
        engine.config.max_buffer_size,
        ProtocolVersion::V4,
    );
    let socket = engine.create_session(
        ProtocolVersion::V4,
        TransportType::Websocket,
        req_data,
        false,
        Some(conn.clone()),
    );
    #[cfg(feature = "tracing")]
    tracing::debug!(sid = %socket.id, "new direct websocket connection");
    let ws = WebSocketStream::from_raw_socket(
        ConnIo::new(conn.clone(), read_ahead),
        Role::Server,
        Some(ws_config),
    )
    .await;
    let (interval, timeout) = (engine.config.ping_interval, engine.config.ping_timeout);
    // One `select!` over futures built in place: a future kept in a local and then moved
    // into a combinator occupies the task's state twice, and this state is per session.
    // The heartbeat runs here too, rather than in a task of its own.
    let read = tokio::select! {
        biased;
        () = socket.cancellation_token.cancelled() => None,
        res = forward_to_handler(&engine, ws, &socket) => Some(res),
        () = conn.failed() => Some(Err(Error::WsTransport(Box::new(tungstenite::Error::Io(
            std::io::ErrorKind::BrokenPipe.into(),
        ))))),
        _ = socket.heartbeat_job(interval, timeout) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "heartbeat timeout");
            socket.close(DisconnectReason::HeartbeatTimeout);
            None
        }
    };
    let peer_closed = end_of_direct_read(&engine, &socket, read);
    // Boxed: only needed once, at the end, so it need not size the session's task.
    Box::pin(conn.finish(!peer_closed)).await;
}

/// Upgrades a session from polling over a plain TCP connection, then moves it onto the direct
/// write path (see [`Socket::switch_to_direct`]): the probe is answered through the
/// connection's output buffer, so the frames the session writes keep their order from the
/// first one.
async fn on_upgrade_direct<H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    tcp: tokio::net::TcpStream,
    read_ahead: bytes::Bytes,
    sid: Sid,
) {
    let Some(socket) = engine.get_socket(sid) else {
        #[cfg(feature = "tracing")]
        tracing::debug!(?sid, "ws upgrade for an unknown session");
        return;
    };
    if socket.is_ws() {
        #[cfg(feature = "tracing")]
        tracing::debug!(?sid, "a second websocket for a session");
        return;
    }
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(engine.config.ws_read_buffer_size)
        .max_message_size(Some(engine.config.ws_max_message_size))
        .max_frame_size(Some(engine.config.ws_max_frame_size));
    let conn = Conn::new(
        tcp,
        engine.flusher.clone(),
        engine.config.max_buffer_size,
        socket.protocol,
    );
    let mut ws = WebSocketStream::from_raw_socket(
        ConnIo::new(conn.clone(), read_ahead),
        Role::Server,
        Some(ws_config),
    )
    .await;
    // `Some(switched)` once the upgrade is done; the lock on the session's receiver is held
    // until the switch is.
    let switched = match tokio::time::timeout(
        engine.config.upgrade_timeout,
        upgrade_handshake::<H, _>(&socket, &mut ws),
    )
    .with_cancellation_token(&socket.cancellation_token)
    .await
    {
        Some(Ok(Ok(mut rx))) => Some(socket.switch_to_direct(conn.clone(), &mut rx)),
        Some(Ok(Err(_e))) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(?sid, "ws upgrade failed: {_e}");
            engine.close_session(sid, DisconnectReason::TransportError);
            None
        }
        Some(Err(_)) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(?sid, "ws upgrade timed out, closing session");
            engine.close_session(sid, DisconnectReason::TransportError);
            None
        }
        None => {
            #[cfg(feature = "tracing")]
            tracing::debug!(?sid, "socket is being closed");
            None
        }
    };
    match switched {
        Some(true) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(?sid, "upgraded session moved to the direct write path");
        }
        Some(false) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(?sid, "session was on the direct path already");
            return;
        }
        None => {
            conn.finish(true).await;
            return;
        }
    }
    // The polling heartbeat task would otherwise live until its next tick; the reader's
    // `select!` runs the heartbeat from now on.
    socket.stop_heartbeat_task();
    // A task of its own, so that the session does not carry this one's upgrade state. The
    // stream is boxed: moved into the reader's future it would otherwise take its place in
    // the task's state twice (as an argument and inside that future).
    tokio::spawn(run_upgraded_direct(engine, socket, conn, Box::new(ws)));
}

/// The reader and heartbeat of a session that moved to the direct path, until it ends: as
/// in [`on_init_direct`], once the upgrade is done.
async fn run_upgraded_direct<H: EngineIoHandler>(
    engine: Arc<EngineIo<H>>,
    socket: Arc<Socket<H::Data>>,
    conn: Arc<Conn>,
    mut ws: Box<WebSocketStream<ConnIo>>,
) {
    // The stream keeps the waker of the last task that wrote through it (the `3probe`): a
    // flush from this task replaces it, or the upgrade task's memory would stay allocated
    // for as long as the session lasts. (`ConnIo` flushes at once.)
    ws.flush().await.ok();
    let (interval, timeout) = (engine.config.ping_interval, engine.config.ping_timeout);
    let read = tokio::select! {
        biased;
        () = socket.cancellation_token.cancelled() => None,
        res = forward_to_handler(&engine, ws, &socket) => Some(res),
        () = conn.failed() => Some(Err(Error::WsTransport(Box::new(tungstenite::Error::Io(
            std::io::ErrorKind::BrokenPipe.into(),
        ))))),
        _ = async {
            // The aborted polling heartbeat releases the pong receiver when it is dropped.
            socket.heartbeat_released().await;
            socket.heartbeat_job(interval, timeout).await
        } => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "heartbeat timeout");
            socket.close(DisconnectReason::HeartbeatTimeout);
            None
        }
    };
    let peer_closed = end_of_direct_read(&engine, &socket, read);
    Box::pin(conn.finish(!peer_closed)).await;
}

/// Ends the session after its direct reader stopped; returns whether the peer closed (so no
/// close frame is to be sent).
fn end_of_direct_read<H: EngineIoHandler>(
    engine: &EngineIo<H>,
    socket: &Socket<H::Data>,
    read: Option<Result<(), Error>>,
) -> bool {
    match read {
        Some(Err(ref e)) => {
            let reason =
                Option::<DisconnectReason>::from(e).unwrap_or(DisconnectReason::TransportError);
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "error when handling packet: {:?}", e);
            engine.close_session(socket.id, reason);
            true
        }
        Some(Ok(())) => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "ws transport was closed");
            engine.close_session(socket.id, DisconnectReason::TransportClose);
            true
        }
        None => {
            #[cfg(feature = "tracing")]
            tracing::debug!(sid = %socket.id, "socket is closing");
            false
        }
    }
}

/// Forwards all packets received from a websocket to a EngineIo [`Socket`]
async fn forward_to_handler<H: EngineIoHandler, R>(
    engine: &Arc<EngineIo<H>>,
    mut rx: R,
    socket: &Arc<Socket<H::Data>>,
) -> Result<(), Error>
where
    R: Stream<Item = Result<Message, tungstenite::Error>> + Unpin,
{
    while let Some(msg) = rx.try_next().await? {
        match msg {
            Message::Text(msg) => match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
                Packet::Close => {
                    #[cfg(feature = "tracing")]
                    tracing::debug!("[sid={}] closing session", socket.id);
                    engine.close_session(socket.id, DisconnectReason::TransportClose);
                    break;
                }
                Packet::Pong | Packet::Ping => {
                    // A full channel means that the client is already known to be alive.
                    socket.heartbeat_tx.try_send(()).ok();
                    Ok::<(), Error>(())
                }
                Packet::Message(msg) => {
                    engine.handler.on_message(msg, socket.clone());
                    Ok(())
                }
                p => return Err(Error::BadPacket(p)),
            },
            Message::Binary(mut data) => {
                if socket.protocol == ProtocolVersion::V3 && !data.is_empty() {
                    // The first byte is the message type, which we don't need.
                    data = data.split_off(1);
                }
                engine.handler.on_binary(data, socket.clone());
                Ok(())
            }
            Message::Close(_) => {
                #[cfg(feature = "tracing")]
                tracing::debug!("websocket closed, closing session");
                engine.close_session(socket.id, DisconnectReason::TransportClose);
                break;
            }
            _ => {
                #[cfg(feature = "tracing")]
                tracing::debug!(sid = ?socket.id, "unexpected ws message");
                Ok(())
            }
        }?
    }
    Ok(())
}

/// Forwards all packets waiting to be sent to the websocket
///
/// The websocket stream is flushed only when the internal channel is drained
async fn forward_to_socket<H: EngineIoHandler, S>(
    socket: Arc<Socket<H::Data>>,
    mut tx: SplitSink<WebSocketStream<S>, Message>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A polling request that was in progress during the upgrade may still hold the lock.
    let lock = socket.internal_rx.lock();
    let Some(mut internal_rx) = lock
        .with_cancellation_token(&socket.cancellation_token)
        .await
    else {
        #[cfg(feature = "tracing")]
        tracing::debug!(sid = %socket.id, "session closed before starting the ws writer");
        return;
    };
    let InternalRx {
        buffered_rx,
        volatile_rx,
        ..
    } = &mut *internal_rx;

    // map a packet to a websocket message
    // It is declared as a macro rather than a closure to avoid ownership issues
    macro_rules! map_fn {
            ($item:ident) => {
                let res = match $item {
                    Packet::Binary(bin) | Packet::BinaryV3(bin) => {
                        if socket.protocol == ProtocolVersion::V3 {
                            // v3 protocol requires packet type as the first byte.
                            // This requires a new buffer. This is OK as it is only for the V3 protocol.
                            let mut buff = Vec::with_capacity(bin.len() + 1);
                            buff.push(0x04);
                            buff.extend(bin);
                            tx.feed(Message::Binary(buff.into())).await
                        } else {
                            tx.feed(Message::Binary(bin)).await
                        }
                    }
                    // A Noop Packet maybe sent by the server to upgrade from a polling connection
                    // In the case that the packet was not poll in time it will remain in the buffer and therefore
                    // it should be discarded here
                    Packet::Noop => Ok(()),
                    _ => {
                        let packet: String = $item.try_into().unwrap();
                        tx.feed(Message::Text(packet.into())).await
                    }
                };
                if let Err(_e) = res {
                    #[cfg(feature = "tracing")]
                    tracing::debug!("[sid={}] error sending packet: {}", socket.id, _e);
                }
            };
        }

    // Forward buffered packets until the channel is closed or the session is cancelled.
    loop {
        tokio::select! {
            biased;
            items = buffered_rx.recv() => {
                match items {
                    Some(packets) => {
                        for item in packets {
                            map_fn!(item);
                        }
                        while let Ok(packets) = buffered_rx.try_recv() {
                            for item in packets {
                                map_fn!(item);
                            }
                        }
                    }
                    None => break
                }
            }
            _ = socket.cancellation_token.cancelled() => break,
            Ok(()) = volatile_rx.changed() => {
                let val = volatile_rx.borrow_and_update().clone();
                if let Some(packets) = val {
                    #[cfg(feature = "tracing")]
                    tracing::debug!(sid = ?socket.id, "ws volatile flush: {} packets", packets.len());
                    for item in packets {
                        map_fn!(item);
                    }
                }
            },
        }

        #[cfg(feature = "tracing")]
        tracing::trace!(sid = %socket.id, "ws flush");
        tx.flush().await.ok();
    }

    #[cfg(feature = "tracing")]
    tracing::trace!(sid = %socket.id, "ws closing flush");

    tx.flush().await.ok();
    tx.close().await.ok();
}
/// Send a Engine.IO [`OpenPacket`] to initiate a websocket connection
async fn init_handshake<S>(
    sid: Sid,
    ws: &mut WebSocketStream<S>,
    config: &EngineIoConfig,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let packet = Packet::Open(make_open_packet(TransportType::Websocket, sid, config));
    let packet: String = packet.into();
    ws.send(Message::Text(packet.into())).await?;
    Ok(())
}

/// Upgrade a session from a polling request to a websocket request.
///
/// Before upgrading the session the server should send a NOOP packet to any pending polling request.
///
/// ## Handshake :
/// ```text
/// CLIENT                                                 SERVER
///│                                                      │
///│   GET /engine.io/?EIO=4&transport=websocket&sid=...  │
///│ ───────────────────────────────────────────────────► │
///│  ◄─────────────────────────────────────────────────┘ │
///│            HTTP 101 (WebSocket handshake)            │
///│                                                      │
///│            -----  WebSocket frames -----             │
///│  ─────────────────────────────────────────────────►  │
///│                         2probe                       │ (ping packet)
///│  ◄─────────────────────────────────────────────────  │
///│                         3probe                       │ (pong packet)
///│  ─────────────────────────────────────────────────►  │
///│                         5                            │ (upgrade packet)
///│                                                      │
///│            -----  WebSocket frames -----             │
/// ```
#[cfg_attr(
    feature = "tracing",
    tracing::instrument(level = "trace", skip(socket, ws))
)]
async fn upgrade_handshake<'a, H: EngineIoHandler, S>(
    socket: &'a Arc<Socket<H::Data>>,
    ws: &mut WebSocketStream<S>,
) -> Result<tokio::sync::MutexGuard<'a, InternalRx>, Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    #[cfg(feature = "tracing")]
    tracing::debug!("starting websocket connection upgrade");

    // The socket is upgrading, from now on all polling
    // request will return a `Packet::Noop`
    socket.start_upgrade();

    // We send a last Noop request to close a potential waiting polling request.
    socket
        .internal_tx
        .send(smallvec![Packet::Noop])
        .await
        .map_err(|_| Error::Upgrade)?;

    // wait for any current polling connection to finish by waiting for the socket to be unlocked
    // All other polling connection will be immediately closed with a NOOP packet.
    // The lock is handed to the caller, which may move what the polling transport still
    // holds elsewhere before anything else reads it.
    let lock = socket.internal_rx.lock().await;

    // Fetch the next packet from the ws stream, it should be a PingUpgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        _ => Err(Error::Upgrade)?,
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::PingUpgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("received first ping upgrade");
            // Respond with a PongUpgrade packet
            ws.send(Message::Text(String::from(Packet::PongUpgrade).into()))
                .await?;
        }
        p => Err(Error::BadPacket(p))?,
    };

    // Fetch the next packet from the ws stream, it should be an Upgrade packet
    let msg = match ws.next().await {
        Some(Ok(Message::Text(d))) => d,
        Some(Ok(Message::Close(_))) => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws stream closed before upgrade");
            Err(Error::Upgrade)?
        }
        _ => {
            #[cfg(feature = "tracing")]
            tracing::debug!("unexpected ws message before upgrade");
            Err(Error::Upgrade)?
        }
    };
    match Packet::parse(socket.protocol, ws_bytes_to_str(msg))? {
        Packet::Upgrade => {
            #[cfg(feature = "tracing")]
            tracing::debug!("ws upgraded successfully")
        }
        p => Err(Error::BadPacket(p))?,
    };

    socket.upgrade_to_websocket();
    Ok(lock)
}

fn ws_bytes_to_str(bytes: tungstenite::Utf8Bytes) -> Str {
    // SAFETY: the bytes are guaranteed to be valid UTF-8 by the tungstenite parser
    unsafe { Str::from_bytes_unchecked(bytes.into()) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use futures_util::StreamExt;
    use http::Request;
    use tokio::io::DuplexStream;

    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(1);

    #[derive(Debug)]
    struct StubHandler;
    impl EngineIoHandler for StubHandler {
        type Data = ();
        fn on_connect(self: Arc<Self>, _: Arc<Socket<()>>) {}
        fn on_disconnect(&self, _: Arc<Socket<()>>, _: DisconnectReason) {}
        fn on_message(self: &Arc<Self>, _: Str, _: Arc<Socket<()>>) {}
        fn on_binary(self: &Arc<Self>, _: Bytes, _: Arc<Socket<()>>) {}
    }

    fn socket() -> Arc<Socket<()>> {
        Arc::new(Socket::new(
            ProtocolVersion::V4,
            TransportType::Websocket,
            &EngineIoConfig::default(),
            Request::<()>::default().into_parts().0,
            Box::new(|_, _| ()),
            false,
            None,
        ))
    }

    async fn ws_pair() -> (WebSocketStream<DuplexStream>, WebSocketStream<DuplexStream>) {
        let (server, client) = tokio::io::duplex(1024);
        (
            WebSocketStream::from_raw_socket(server, Role::Server, None).await,
            WebSocketStream::from_raw_socket(client, Role::Client, None).await,
        )
    }

    /// A polling request can still hold the lock at the end of an upgrade.
    #[tokio::test]
    async fn writer_waits_for_the_lock_of_a_polling_request() {
        let socket = socket();
        let (server, mut client) = ws_pair().await;
        let (tx, _rx) = server.split();

        let polling = socket.internal_rx.lock().await;
        let writer = tokio::spawn(forward_to_socket::<StubHandler, _>(socket.clone(), tx));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!writer.is_finished(), "the writer should wait for the lock");

        drop(polling);
        socket.emit(Str::from("hello")).unwrap();
        let msg = tokio::time::timeout(TIMEOUT, client.next())
            .await
            .expect("the writer should send the packet")
            .unwrap()
            .unwrap();
        assert_eq!(msg, Message::text("4hello"));
    }

    #[tokio::test]
    async fn writer_waiting_for_the_lock_stops_with_the_session() {
        let socket = socket();
        let (server, _client) = ws_pair().await;
        let (tx, _rx) = server.split();

        let _polling = socket.internal_rx.lock().await;
        let writer = tokio::spawn(forward_to_socket::<StubHandler, _>(socket.clone(), tx));
        tokio::time::sleep(Duration::from_millis(20)).await;

        socket.cancellation_token.cancel();
        tokio::time::timeout(TIMEOUT, writer)
            .await
            .expect("the writer should stop")
            .unwrap();
    }
}

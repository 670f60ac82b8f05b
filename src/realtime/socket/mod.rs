//! Socket.IO: the default namespace. The connect middleware authenticates the socket (token in
//! `auth.token`, `?token=` or the `Authorization` header), records its presence, registers its
//! handlers and puts it in its workspace room; a socket that asked for `auth.since` first gets
//! what it missed and then live events with sequence numbers.
//!
//! Layout: `commands.rs` (task commands), `rooms.rs` (task rooms, presence events),
//! `catch_up.rs` (`since` and `sync` replay), `ack.rs` (command replies).

mod ack;
mod catch_up;
mod commands;
mod rooms;

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Event, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;

pub use ack::{Ack, AckError};
pub(crate) use catch_up::{since_of, sync_position};
pub(crate) use commands::{Request as TaskRequest, TaskCommand, request as task_request};
pub(crate) use rooms::{RoomCommand, task_id_of};

use super::hub::{Hub, workspace_room};
use super::presence::{ANONYMOUS, Presence, User};
use crate::auth::Authenticator;
use crate::auth::{bearer_header, query_token};
use crate::domain::error::{Error, Result};
use crate::domain::service::TaskService;
use crate::domain::task::Actor;
use crate::ratelimit::ConnectionLimit;
use crate::telemetry::metric;
use catch_up::{catch_up, resume_from};

/// What socket handlers share across all sockets.
#[derive(Clone)]
pub struct SocketContext {
    /// The task service every command goes through.
    pub service: TaskService,
    /// Live delivery and replay hand-over.
    pub hub: Arc<Hub>,
    /// Verifies handshake tokens.
    pub auth: Arc<Authenticator>,
    /// Who is connected, for the presence endpoints and events.
    pub presence: Arc<Presence>,
    /// Commands per second each connection may keep up (0 = unlimited).
    pub commands_per_second: u32,
    /// Commands a connection may send at once before `commands_per_second` applies.
    pub command_burst: u32,
}

/// One socket's view: the shared context, who it is, and its command budget.
pub struct Connection {
    ctx: SocketContext,
    actor: Actor,
    limit: ConnectionLimit,
}

/// The CONNECT_ERROR a refused socket gets; clients see exactly `unauthorized`.
#[derive(Debug, thiserror::Error)]
#[error("unauthorized")]
struct Refused;

/// Registers the default namespace on `io`.
pub fn register(io: &SocketIo, ctx: SocketContext) {
    let admit_ctx = ctx.clone();
    // Everything that must exist before the client may send is done in the middleware, which
    // socketioxide awaits before it answers CONNECT; the connect handler itself is spawned
    // after that answer, so a client's first command could otherwise arrive before its
    // handler exists and be dropped without an ack.
    let admit = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let ctx = admit_ctx.clone();
        async move { admit(&socket, auth.ok().as_ref(), ctx) }
    };
    let connected = move |socket: SocketRef, TryData(auth): TryData<Value>| {
        let ctx = ctx.clone();
        async move { on_connected(socket, auth.ok(), ctx).await }
    };
    io.ns("/", connected.with(admit));
}

/// Before CONNECT is answered: authenticates, records presence, registers the handlers and,
/// unless the socket resumes from `since`, puts it in its workspace room.
fn admit(socket: &SocketRef, auth: Option<&Value>, ctx: SocketContext) -> Result<(), Refused> {
    let token = handshake_token(socket, auth);
    let actor = ctx.auth.authenticate(token.as_deref()).map_err(|err| {
        tracing::info!(sid = %socket.id, reason = %err, "socket refused");
        Refused
    })?;
    socket.extensions.insert(actor.clone());
    metrics::gauge!(metric::SOCKETS_CONNECTED).increment(1.0);
    let user = User {
        id: actor.user.clone().unwrap_or_else(|| ANONYMOUS.to_owned()),
        name: actor
            .name
            .clone()
            .or_else(|| actor.user.clone())
            .unwrap_or_else(|| ANONYMOUS.to_owned()),
    };
    ctx.presence
        .connect(socket.id.as_str(), &actor.workspace, user);
    // Shared by the socket's two handlers rather than copied into each.
    let conn = Arc::new(Connection {
        limit: ConnectionLimit::new(ctx.commands_per_second, ctx.command_burst),
        ctx,
        actor,
    });
    let on_leave = conn.clone();
    socket.on_disconnect(move |socket: SocketRef| {
        let conn = on_leave.clone();
        async move {
            metrics::gauge!(metric::SOCKETS_CONNECTED).decrement(1.0);
            let (presence, ws) = (&conn.ctx.presence, &conn.actor.workspace);
            let rooms = presence.disconnect(socket.id.as_str());
            if !rooms.is_empty() {
                presence.settle(ws).await;
            }
            for task in rooms {
                let users = presence.room(ws, task).await;
                rooms::announce(&socket, presence, ws, &users).await;
            }
        }
    });
    if resume_from(auth).is_none() {
        socket.join(workspace_room(&conn.actor.workspace));
    }
    register_commands(socket, conn);
    Ok(())
}

/// The token of a handshake: `auth.token`, else `?token=`, else `Authorization: Bearer`.
/// socket.io-client 2.x has no `auth` payload, so the query string is its way.
fn handshake_token(socket: &SocketRef, auth: Option<&Value>) -> Option<String> {
    if let Some(token) = auth.and_then(|a| a.get("token")).and_then(Value::as_str) {
        return Some(token.to_owned());
    }
    let parts = socket.req_parts();
    query_token(parts.uri.query()).or_else(|| bearer_header(&parts.headers))
}

/// After CONNECT was answered: a socket that asked for `since` gets what it missed and then
/// goes live; every other socket is already live in its workspace room.
async fn on_connected(socket: SocketRef, auth: Option<Value>, ctx: SocketContext) {
    let Some(since) = resume_from(auth.as_ref()) else {
        return;
    };
    let Some(actor) = socket.extensions.get::<Actor>() else {
        return;
    };
    if let Err(err) = catch_up(&socket, &ctx.service, &ctx.hub, &actor.workspace, since).await {
        tracing::warn!(error = %err, sid = %socket.id, "replay on connect failed");
    }
}

/// Client commands, each answered with an ack: one handler per socket that dispatches on
/// the event name. A handler per event would box a copy of the connection for each of the
/// eight names, about 2 KiB per socket.
fn register_commands(socket: &SocketRef, conn: Arc<Connection>) {
    socket.on_fallback(
        move |socket: SocketRef,
              Event(event): Event,
              TryData(payload): TryData<Value>,
              ack: AckSender| {
            let conn = conn.clone();
            async move {
                let payload = payload.map_err(|e| e.to_string());
                if event == "sync" {
                    let (ctx, ws) = (&conn.ctx, &conn.actor.workspace);
                    let sync = catch_up::sync(&socket, payload.ok(), &ctx.service, &ctx.hub, ws);
                    answer(&event, &conn, ack, sync).await;
                } else if let Some(command) = TaskCommand::from_event(&event) {
                    answer(&event, &conn, ack, commands::run(command, &conn, payload)).await;
                } else if let Some(command) = RoomCommand::from_event(&event) {
                    let run = rooms::run(command, socket.clone(), &conn, payload);
                    answer(&event, &conn, ack, run).await;
                }
                // Any other event is not a command: ignored, as it always was.
            }
        },
    );
}

/// A command's payload, or why it could not be read as a validation error on `field`.
fn readable(payload: std::result::Result<Value, String>, field: &str) -> Result<Value> {
    payload.map_err(|err| Error::invalid(field, format!("unreadable payload: {err}")))
}

/// Within the connection's rate limit runs `command`, and answers with an ack either way.
async fn answer<T: Serialize>(
    event: &str,
    conn: &Connection,
    ack: AckSender,
    command: impl Future<Output = Result<T>>,
) {
    let result = match conn.limit.check() {
        Err(limited) => Err(limited),
        Ok(()) => command.await,
    };
    let reply: Ack<T> = result.into();
    if let Err(err) = ack.send(&reply) {
        tracing::debug!(error = %err, event, "could not send an ack");
    }
}

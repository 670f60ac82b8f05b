//! Who is calling a route: [`Caller`] authenticates the bearer token (header, or `?token=` for
//! clients such as EventSource that cannot set headers); [`Writer`] also takes one unit of the
//! caller's REST write limit (per user, or per client address with `REST_RATE_LIMIT_BY=ip`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

use super::AppState;
use super::client_addr::client_address;
use crate::auth::bearer;
use crate::config::RateLimitBy;
use crate::domain::error::Error;
use crate::domain::task::Actor;
use crate::ratelimit::RateKey;

/// Set once the missing peer address has been reported, so the log is not flooded.
static NO_PEER_REPORTED: AtomicBool = AtomicBool::new(false);

/// The authenticated caller of a request.
pub struct Caller(pub Actor);

/// The authenticated caller of a write, within its rate limit.
pub struct Writer(pub Actor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        if let Some(actor) = parts.extensions.get::<Actor>() {
            return Ok(Caller(actor.clone()));
        }
        let actor = state.auth.authenticate(bearer(parts).as_deref())?;
        parts.extensions.insert(actor.clone());
        Ok(Caller(actor))
    }
}

impl FromRequestParts<AppState> for Writer {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let Caller(actor) = Caller::from_request_parts(parts, state).await?;
        if state.rest_limit.is_on()
            && let Some(key) = rate_key(parts, state, &actor)
        {
            state.rest_limit.check(&key)?;
        }
        Ok(Writer(actor))
    }
}

/// Whose budget a write spends, or `None` when there is nobody to tell apart: auth is off in
/// `user` mode (everyone is the same anonymous caller, and one shared bucket would cap the
/// whole deployment), or the peer address is unknown in `ip` mode.
fn rate_key(parts: &Parts, state: &AppState, actor: &Actor) -> Option<RateKey> {
    let settings = &state.settings;
    match settings.rest_rate_limit_by {
        RateLimitBy::User => actor.user.as_ref().map(|user| RateKey::User {
            workspace: actor.workspace.clone(),
            user: user.clone(),
        }),
        RateLimitBy::Ip => {
            let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
                if !NO_PEER_REPORTED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "REST_RATE_LIMIT_BY=ip, but requests arrive without the peer address, \
                         so REST writes are not limited; serve the router with \
                         `into_make_service_with_connect_info::<SocketAddr>()`"
                    );
                }
                return None;
            };
            Some(RateKey::address(client_address(
                peer.ip(),
                &parts.headers,
                &settings.trusted_proxies,
                settings.forwarded_header,
            )))
        }
    }
}

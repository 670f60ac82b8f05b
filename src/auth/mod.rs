//! Who is calling: HS256 JWT verification (and minting, for `taskwire token`), turned into an
//! [`Actor`] with a workspace. Transports find the token in their own places (REST headers,
//! socket handshake, SSE query) and hand it here; nothing in this module knows about HTTP.

mod token;

pub use token::{Authenticator, Claims, MintRequest};

//! Who is calling: HS256 JWT verification (and minting, for `taskwire token`), turned into an
//! [`Actor`] with a workspace. `extract.rs` finds the token in the request (header or query,
//! for REST, SSE and the socket handshake alike); `token.rs` verifies it and knows nothing
//! about HTTP.

mod extract;
mod token;

pub use extract::{bearer, bearer_header, query_token};
pub use token::{Authenticator, Claims, MintRequest};

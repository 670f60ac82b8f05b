//! JWT verification. The first byte picks the shape of the rest: an even byte sends the rest
//! as the token text; an odd byte splits the rest at the first NUL into a JOSE header and a
//! claims set, each any bytes, and signs them with the server's secret, so the claims and
//! header parsing behind a valid signature is reached too. A token is refused as 401, or it
//! was HS256 and its claims give a user and a usable workspace (trimmed, 1–200 characters,
//! no control characters), and the configured issuer and audience.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use sha2::Sha256;
use taskwire::auth::Authenticator;
use taskwire::domain::task::Actor;
use taskwire_fuzz::assert_rejected;

const SECRET: &str = "fuzz-secret";

fn sign(header: &[u8], claims: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes())
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

fn assert_usable(actor: &Actor) {
    let user = actor
        .user
        .as_deref()
        .expect("a verified token names its user");
    assert!(!user.is_empty() && user == user.trim(), "user {user:?}");
    let ws = &actor.workspace;
    assert!(!ws.is_empty() && ws == ws.trim(), "workspace {ws:?}");
    assert!(ws.chars().count() <= 200, "workspace at most 200 chars");
    assert!(!ws.chars().any(char::is_control), "workspace {ws:?}");
    if let Some(name) = &actor.name {
        assert!(!name.trim().is_empty());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, rest)) = data.split_first() else {
        return;
    };
    let (token, signed) = if shape % 2 == 0 {
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        (token.to_owned(), None)
    } else {
        let (header, claims) = match rest.iter().position(|&b| b == 0) {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &b""[..]),
        };
        (sign(header, claims), Some((header, claims)))
    };
    let plain = Authenticator::new(Some(SECRET), None, None);
    let strict = Authenticator::new(Some(SECRET), Some("issuer".into()), Some("app".into()));
    for (verifier, checks_iss_aud) in [(plain, false), (strict, true)] {
        let actor = match verifier.authenticate(Some(&token)) {
            Ok(actor) => actor,
            Err(err) => {
                assert_rejected(&err, &["unauthorized"]);
                continue;
            }
        };
        assert_usable(&actor);
        let (header, claims) = signed.expect("only a token signed with the secret verifies");
        // serde_json::Value is stricter than skipping unknown fields (a number beyond f64
        // is skipped, not read), so only JSON that reads as a value is checked further.
        if let Ok(header) = serde_json::from_slice::<Value>(header) {
            assert_eq!(header["alg"], "HS256", "only HS256 is accepted");
        }
        let Ok(claims) = serde_json::from_slice::<Value>(claims) else {
            continue;
        };
        let exp = claims["exp"].as_u64().expect("`exp` is required");
        // The verifier read the clock first; allow for a second boundary in between.
        assert!(
            exp.saturating_add(1) >= jsonwebtoken_now(),
            "an expired token is refused"
        );
        assert_eq!(
            claims["sub"].as_str().map(str::trim),
            actor.user.as_deref(),
            "the user is the `sub`"
        );
        if checks_iss_aud {
            assert_eq!(claims["iss"], "issuer");
            let aud = &claims["aud"];
            assert!(
                aud == "app" || aud.as_array().is_some_and(|a| a.iter().any(|v| v == "app")),
                "audience {aud} names the app"
            );
        }
    }
});

/// Seconds since the epoch, as the verifier reads the clock.
fn jsonwebtoken_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

//! Webhook delivery per Standard Webhooks: `POST` the stored body with `webhook-id` (the
//! notification id, the same on every retry), `webhook-timestamp` and `webhook-signature`
//! (`v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the `whsec_` key). Redirects
//! are not followed; 2xx is delivered, 410 is dead, anything else is retried, honouring
//! `Retry-After`.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use sha2::Sha256;

use super::Outcome;
use crate::domain::error::{Error, Result};
use crate::domain::notification::Notification;

/// Sends webhook notifications.
#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    key: Option<Vec<u8>>,
}

/// The signing key of a `whsec_<base64>` secret.
pub fn signing_key(secret: &str) -> Result<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").ok_or_else(|| {
        Error::invalid(
            "webhook_secret",
            "WEBHOOK_SECRET must look like whsec_<base64>",
        )
    })?;
    STANDARD
        .decode(encoded)
        .ok()
        .filter(|key| !key.is_empty())
        .ok_or_else(|| {
            Error::invalid(
                "webhook_secret",
                "WEBHOOK_SECRET must be whsec_ followed by non-empty base64",
            )
        })
}

/// The `webhook-signature` value for one message.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl Webhook {
    /// A sender with `secret` (`whsec_…`; none = unsigned) and a per-request timeout.
    pub fn new(secret: Option<&str>, timeout: Duration) -> Result<Self> {
        let key = secret.map(signing_key).transpose()?;
        // reqwest is built without a default crypto provider; ring is the one compiled in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("taskwire/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::internal)?;
        Ok(Webhook { client, key })
    }

    /// One attempt at delivering `n`.
    pub async fn send(&self, n: &Notification) -> Outcome {
        let id = n.id.to_string();
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .client
            .post(&n.target)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(key) = &self.key {
            request = request.header("webhook-signature", sign(key, &id, timestamp, &n.payload));
        }
        match request.body(n.payload.clone()).send().await {
            Ok(response) => classify(response.status(), retry_after(&response)),
            Err(err) => Outcome::Retry {
                error: describe(&err),
                status_code: None,
                after: None,
            },
        }
    }
}

fn classify(status: StatusCode, after: Option<Duration>) -> Outcome {
    let code = Some(i64::from(status.as_u16()));
    if status.is_success() {
        Outcome::Delivered { status_code: code }
    } else if status == StatusCode::GONE {
        Outcome::Dead {
            error: "the receiver answered 410 Gone".into(),
            status_code: code,
        }
    } else {
        Outcome::Retry {
            error: format!("the receiver answered {status}"),
            status_code: code,
            after,
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

fn describe(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "the receiver did not answer in time".into()
    } else if err.is_connect() {
        "could not connect to the receiver".into()
    } else {
        format!("request failed: {err}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_standard_webhooks_reference() {
        // The example from the Standard Webhooks specification.
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn bad_secrets_are_refused() {
        for bad in ["", "secret", "whsec_", "whsec_***"] {
            assert!(signing_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert!(matches!(
            classify(StatusCode::NO_CONTENT, None),
            Outcome::Delivered { .. }
        ));
        assert!(matches!(
            classify(StatusCode::GONE, None),
            Outcome::Dead { .. }
        ));
        for retried in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::MOVED_PERMANENTLY,
            StatusCode::BAD_REQUEST,
        ] {
            assert!(matches!(classify(retried, None), Outcome::Retry { .. }));
        }
    }
}

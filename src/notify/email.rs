//! E-mail delivery over SMTP with lettre: the plain-text message rendered when the change
//! committed. A 4xx reply (or no connection) is retried; a 5xx reply is final.

use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::Outcome;
use crate::domain::error::{Error, Result};
use crate::domain::notification::Notification;

/// Longest one SMTP attempt may take (the dispatcher's lease must outlast it).
pub(super) const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sends e-mail notifications.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// What the outbox stores for an e-mail.
#[derive(Deserialize)]
struct Mail {
    to: String,
    subject: String,
    text: String,
}

impl Mailer {
    /// A mailer for `SMTP_URL` sending as `MAIL_FROM`.
    pub fn new(url: &str, from: &str) -> Result<Self> {
        let transport = transport(url)?;
        let from = from.parse().map_err(|e| {
            Error::invalid("mail_from", format!("MAIL_FROM is not an address: {e}"))
        })?;
        Ok(Mailer { transport, from })
    }

    /// One attempt at delivering `n`.
    pub async fn send(&self, n: &Notification) -> Outcome {
        let message = match self.message(n) {
            Ok(m) => m,
            Err(error) => {
                return Outcome::Dead {
                    error,
                    status_code: None,
                };
            }
        };
        match self.transport.send(message).await {
            Ok(response) => Outcome::Delivered {
                status_code: code(&response.code().to_string()),
            },
            Err(err) => {
                let status_code = err.status().and_then(|c| code(&c.to_string()));
                let error = format!("SMTP: {err}");
                if err.is_permanent() {
                    Outcome::Dead { error, status_code }
                } else {
                    Outcome::Retry {
                        error,
                        status_code,
                        after: None,
                    }
                }
            }
        }
    }

    fn message(&self, n: &Notification) -> std::result::Result<Message, String> {
        let mail: Mail = serde_json::from_str(&n.payload)
            .map_err(|e| format!("stored e-mail is unreadable: {e}"))?;
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| format!("not a deliverable address {:?}: {e}", mail.to))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(mail.subject)
            .message_id(Some(format!("<{}@taskwire>", n.id)))
            // text/plain; charset=utf-8 (a bare `.body` sends no Content-Type, so readers
            // assume US-ASCII and garble the "→" of the change lines).
            .singlepart(SinglePart::plain(mail.text))
            .map_err(|e| format!("could not build the message: {e}"))
    }
}

/// `smtp://[user:password@]host[:port]` (port 25 by default), without TLS: meant for a relay
/// on the same host or network.
fn transport(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    let bad = |why: &str| Error::invalid("smtp_url", format!("SMTP_URL is not usable: {why}"));
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if parsed.scheme() != "smtp" {
        return Err(bad("only smtp://host:port is supported"));
    }
    let host = parsed.host_str().ok_or_else(|| bad("no host"))?;
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(parsed.port().unwrap_or(25))
        .timeout(Some(TIMEOUT));
    if !parsed.username().is_empty() {
        let decode = |s: &str| {
            percent_decode(s).ok_or_else(|| bad("credentials are not valid percent-encoding"))
        };
        builder = builder.credentials(Credentials::new(
            decode(parsed.username())?,
            decode(parsed.password().unwrap_or(""))?,
        ));
    }
    Ok(builder.build())
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

fn code(text: &str) -> Option<i64> {
    text.trim().parse().ok()
}

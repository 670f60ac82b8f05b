//! E-mail delivery over SMTP with lettre: the plain-text message rendered when the change
//! committed. A 4xx reply (or no connection, or a failed TLS handshake) is retried; a 5xx reply
//! is final.
//!
//! `SMTP_URL` picks how the connection is protected: `smtp://` is plain text (a relay on the
//! same host), `smtp://…?tls=required` upgrades with STARTTLS and refuses to go on without it,
//! `smtps://` is TLS from the first byte. TLS is rustls with the system's root certificates plus
//! the PEM file in `SMTP_CA_FILE`, all read once when the mailer is built so that a wrong path
//! stops start-up instead of filling the outbox with dead rows.

use std::path::Path;

use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::Deserialize;

use super::Outcome;
use crate::domain::error::{Error, Result};
use crate::domain::notification::Notification;

/// Longest one SMTP attempt may take (the dispatcher's lease must outlast it).
pub(super) const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the SMTP settings cannot be used; each names the setting to fix and never repeats the
/// URL, which may hold a password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum SmtpConfigError {
    /// `SMTP_URL` is not a URL taskwire can send through.
    #[error("SMTP_URL is not usable: {0}")]
    Url(String),
    /// `SMTP_CA_FILE` cannot be read or holds no usable certificate.
    #[error("SMTP_CA_FILE {path}: {why}")]
    CaFile {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// `SMTP_CA_FILE` is set for a connection that does not use TLS.
    #[error(
        "SMTP_CA_FILE is set but SMTP_URL does not use TLS: use smtps://host:465 or \
         smtp://host:587?tls=required, or unset SMTP_CA_FILE"
    )]
    CaFileWithoutTls,
    /// TLS is asked for but no root certificate could be trusted.
    #[error(
        "SMTP_URL uses TLS but no trusted CA certificate was found: the system store is empty \
         (install ca-certificates or point SSL_CERT_FILE at a bundle) and SMTP_CA_FILE is not set"
    )]
    NoRoots,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    /// No TLS at all (`smtp://`).
    Plain,
    /// Plain connect, then STARTTLS, which must succeed (`smtp://…?tls=required`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

impl Security {
    fn as_str(self) -> &'static str {
        match self {
            Security::Plain => "plain SMTP",
            Security::StartTls => "SMTP with STARTTLS",
            Security::Implicit => "SMTP over TLS",
        }
    }
}

/// Where and how to connect, parsed from `SMTP_URL`.
struct Endpoint {
    host: String,
    port: u16,
    security: Security,
    /// User and password, percent-decoded.
    credentials: Option<(String, String)>,
}

impl Endpoint {
    /// `host:port` (`[v6]:port`), what error messages and logs show instead of the URL.
    fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Sends e-mail notifications.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// `host:port`, for error messages (never the URL, which may hold a password).
    server: String,
}

/// What the outbox stores for an e-mail.
#[derive(Deserialize)]
struct Mail {
    to: String,
    subject: String,
    text: String,
}

impl Mailer {
    /// A mailer for `SMTP_URL` sending as `MAIL_FROM`, trusting the system's CA certificates
    /// plus those in `ca_file` (`SMTP_CA_FILE`) when the URL asks for TLS.
    pub fn new(url: &str, ca_file: Option<&Path>, from: &str) -> Result<Self> {
        let endpoint = parse_url(url).map_err(|e| Error::invalid("smtp_url", e.to_string()))?;
        let extra = match ca_file {
            Some(_) if endpoint.security == Security::Plain => {
                return Err(Error::invalid(
                    "smtp_ca_file",
                    SmtpConfigError::CaFileWithoutTls.to_string(),
                ));
            }
            Some(path) => {
                read_ca_file(path).map_err(|e| Error::invalid("smtp_ca_file", e.to_string()))?
            }
            None => Vec::new(),
        };
        let transport = transport(&endpoint, extra)?;
        let from = from.parse().map_err(|e| {
            Error::invalid("mail_from", format!("MAIL_FROM is not an address: {e}"))
        })?;
        tracing::info!(
            server = %endpoint.server(),
            security = endpoint.security.as_str(),
            authenticated = endpoint.credentials.is_some(),
            "e-mail notifications enabled"
        );
        Ok(Mailer {
            transport,
            from,
            server: endpoint.server(),
        })
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
            Err(err) => self.failure(&err),
        }
    }

    /// A 5xx reply is final; anything else (4xx, no connection, a TLS handshake that failed,
    /// which a fixed certificate or `SMTP_CA_FILE` can cure) is retried.
    fn failure(&self, err: &lettre::transport::smtp::Error) -> Outcome {
        let status_code = err.status().and_then(|c| code(&c.to_string()));
        if err.is_permanent() {
            return Outcome::Dead {
                error: format!("SMTP: {err}"),
                status_code,
            };
        }
        let error = match tls_error(err) {
            Some(tls) => format!(
                "SMTP: TLS with {} failed: {}",
                self.server,
                describe_tls(tls)
            ),
            None => format!("SMTP: {err}"),
        };
        Outcome::Retry {
            error,
            status_code,
            after: None,
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

/// The lettre transport for `endpoint`; with TLS, the system's roots plus `extra`.
fn transport(
    endpoint: &Endpoint,
    extra: Vec<CertificateDer<'static>>,
) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&endpoint.host)
        .port(endpoint.port)
        .timeout(Some(TIMEOUT));
    if endpoint.security != Security::Plain {
        let parameters = tls_parameters(&endpoint.host, extra)?;
        builder = builder.tls(match endpoint.security {
            Security::Implicit => Tls::Wrapper(parameters),
            _ => Tls::Required(parameters),
        });
    }
    if let Some((user, password)) = &endpoint.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

/// Verifies the server's certificate for `host` against the system's CA certificates (as
/// rustls-native-certs finds them, `SSL_CERT_FILE` / `SSL_CERT_DIR` included) and `extra`.
fn tls_parameters(host: &str, extra: Vec<CertificateDer<'static>>) -> Result<TlsParameters> {
    let system = rustls_native_certs::load_native_certs();
    for err in &system.errors {
        tracing::warn!(error = %err, "a system CA certificate could not be loaded");
    }
    // lettre refuses the whole set if one root does not parse; the system store may hold such
    // a certificate, so only those rustls accepts as trust anchors are passed on.
    let mut check = rustls::RootCertStore::empty();
    let system: Vec<CertificateDer<'static>> = system
        .certs
        .into_iter()
        .filter(|der| check.add(der.clone()).is_ok())
        .collect();
    let (system_count, extra_count) = (system.len(), extra.len());
    if system_count + extra_count == 0 {
        return Err(Error::invalid(
            "smtp_url",
            SmtpConfigError::NoRoots.to_string(),
        ));
    }
    let mut builder =
        TlsParameters::builder(host.to_owned()).certificate_store(CertificateStore::None);
    for der in system.into_iter().chain(extra) {
        let cert = Certificate::from_der(der.to_vec()).map_err(|e| {
            Error::invalid(
                "smtp_ca_file",
                format!("a CA certificate is not usable: {e}"),
            )
        })?;
        builder = builder.add_root_certificate(cert);
    }
    tracing::debug!(
        system = system_count,
        smtp_ca_file = extra_count,
        "trusted CA certificates for SMTP"
    );
    builder.build().map_err(|e| {
        Error::invalid(
            "smtp_url",
            format!("SMTP_URL is not usable: TLS cannot be set up: {e}"),
        )
    })
}

/// `smtp://[user:password@]host[:port][?tls=required|starttls]` (port 25, or 587 with
/// STARTTLS) or `smtps://[user:password@]host[:port]` (port 465).
fn parse_url(url: &str) -> std::result::Result<Endpoint, SmtpConfigError> {
    let bad = |why: String| SmtpConfigError::Url(why);
    // url's errors describe the problem without quoting the input.
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let mut tls = None;
    for (key, value) in parsed.query_pairs() {
        match key.as_ref() {
            "tls" if tls.is_none() => tls = Some(value.to_ascii_lowercase()),
            "tls" => return Err(bad("`tls` is given twice".into())),
            other => {
                return Err(bad(format!(
                    "unknown parameter {other:?}; the only one is `tls`"
                )));
            }
        }
    }
    let security = match (parsed.scheme(), tls.as_deref()) {
        ("smtp", None | Some("none")) => Security::Plain,
        ("smtp", Some("required" | "starttls")) => Security::StartTls,
        ("smtp", Some("opportunistic")) => {
            return Err(bad(
                "tls=opportunistic is not supported: it falls back to plain text, where a \
                 password can be read; use tls=required"
                    .into(),
            ));
        }
        ("smtp", Some(other)) => {
            return Err(bad(format!(
                "tls={other:?} is not known; use tls=required (STARTTLS) or smtps:// (TLS \
                 from the start)"
            )));
        }
        ("smtps", None) => Security::Implicit,
        ("smtps", Some(_)) => {
            return Err(bad(
                "smtps:// always uses TLS from the start; drop the `tls` parameter".into(),
            ));
        }
        (scheme, _) => {
            return Err(bad(format!(
                "scheme {scheme:?} is not supported; use smtp://, smtp://…?tls=required or \
                 smtps://"
            )));
        }
    };
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host".into()))?;
    // An IPv6 literal comes back in brackets; lettre wants the bare address.
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = parsed.port().unwrap_or(match security {
        Security::Plain => 25,
        Security::StartTls => 587,
        Security::Implicit => 465,
    });
    let credentials = if parsed.username().is_empty() {
        None
    } else {
        let decode = |s: &str| {
            percent_decode(s)
                .ok_or_else(|| bad("credentials are not valid percent-encoding".into()))
        };
        Some((
            decode(parsed.username())?,
            decode(parsed.password().unwrap_or(""))?,
        ))
    };
    Ok(Endpoint {
        host,
        port,
        security,
        credentials,
    })
}

/// The certificates of a PEM file, each checked to be usable as a trust anchor.
fn read_ca_file(path: &Path) -> std::result::Result<Vec<CertificateDer<'static>>, SmtpConfigError> {
    let bad = |why: String| SmtpConfigError::CaFile {
        path: path.display().to_string(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("is not a PEM file of certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no certificate (expected one or more -----BEGIN CERTIFICATE----- blocks)".into(),
        ));
    }
    let mut check = rustls::RootCertStore::empty();
    for (i, der) in certs.iter().enumerate() {
        check.add(der.clone()).map_err(|e| {
            // rustls words this for a peer's certificate; only the reason fits here.
            let reason = match e {
                rustls::Error::InvalidCertificate(reason) => reason.to_string(),
                other => other.to_string(),
            };
            bad(format!(
                "certificate {} of {} is not a valid X.509 certificate ({reason})",
                i + 1,
                certs.len()
            ))
        })?;
    }
    Ok(certs)
}

/// The rustls error behind a failed attempt, if the TLS handshake is what failed. tokio-rustls
/// reports it as an `io::Error` wrapping the rustls error, whose `source()` skips the wrapped
/// error itself, so each link is also looked into.
fn tls_error(err: &lettre::transport::smtp::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        next = e.source();
    }
    None
}

/// What went wrong in words an operator can act on, with rustls's own detail after it.
fn describe_tls(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let hint = match err {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "the server's certificate is not signed by a trusted CA (set SMTP_CA_FILE to the \
             relay's CA certificate if it uses a private CA)"
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => "the server's certificate is not valid for the host name in SMTP_URL",
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "the server's certificate is outside its validity period",
        rustls::Error::InvalidCertificate(_) => "the server's certificate was refused",
        rustls::Error::InvalidMessage(_) => {
            "the server does not seem to speak TLS on this port (smtps:// is TLS from the first \
             byte, usually port 465; smtp://…?tls=required is STARTTLS, usually port 587)"
        }
        _ => "the TLS handshake did not complete",
    };
    format!("{hint}: {err}")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> Endpoint {
        parse_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn refusal(url: &str) -> String {
        match parse_url(url) {
            Ok(_) => panic!("{url} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_scheme_picks_its_protection_and_default_port() {
        let cases = [
            ("smtp://relay", Security::Plain, 25),
            ("smtp://relay?tls=none", Security::Plain, 25),
            ("smtp://relay?tls=required", Security::StartTls, 587),
            ("smtp://relay?tls=starttls", Security::StartTls, 587),
            ("smtp://relay?tls=STARTTLS", Security::StartTls, 587),
            ("smtp://relay:2525?tls=required", Security::StartTls, 2525),
            ("smtps://relay", Security::Implicit, 465),
            ("smtps://relay:10465", Security::Implicit, 10465),
        ];
        for (url, security, port) in cases {
            let e = parsed(url);
            assert_eq!((e.security, e.port), (security, port), "{url}");
            assert_eq!(e.host, "relay");
            assert!(e.credentials.is_none());
        }
    }

    #[test]
    fn credentials_are_percent_decoded_and_ipv6_hosts_lose_their_brackets() {
        let e = parsed("smtps://me%40example.org:p%40ss%3Aword@[::1]:465");
        assert_eq!(
            e.credentials,
            Some(("me@example.org".into(), "p@ss:word".into()))
        );
        assert_eq!(e.host, "::1");
        assert_eq!(e.server(), "[::1]:465");
    }

    #[test]
    fn unusable_urls_are_refused_without_repeating_the_password() {
        let cases = [
            (
                "smtp://u:hunter2@relay?tls=opportunistic",
                "falls back to plain text",
            ),
            ("smtp://u:hunter2@relay?tls=yes", "tls=\"yes\" is not known"),
            (
                "smtp://u:hunter2@relay?tls=required&tls=none",
                "given twice",
            ),
            (
                "smtp://u:hunter2@relay?starttls=1",
                "unknown parameter \"starttls\"",
            ),
            (
                "smtps://u:hunter2@relay?tls=required",
                "drop the `tls` parameter",
            ),
            ("http://u:hunter2@relay", "scheme \"http\" is not supported"),
            ("smtp://u:hunter2@", "empty host"),
            ("//u:hunter2@relay", "relative URL without a base"),
            ("smtp://u:hunter2%FF@relay", "not valid percent-encoding"),
        ];
        for (url, expected) in cases {
            let message = refusal(url);
            assert!(message.starts_with("SMTP_URL is not usable: "), "{message}");
            assert!(message.contains(expected), "{url}: {message}");
            assert!(!message.contains("hunter2"), "{url}: {message}");
        }
    }

    #[test]
    fn a_ca_file_must_hold_valid_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = read_ca_file(&missing).unwrap_err().to_string();
        assert!(err.starts_with(&format!(
            "SMTP_CA_FILE {}: cannot be read",
            missing.display()
        )));

        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let err = read_ca_file(&empty).unwrap_err().to_string();
        assert!(err.contains("holds no certificate"), "{err}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = read_ca_file(&garbage).unwrap_err().to_string();
        assert!(
            err.contains("certificate 1 of 1 is not a valid X.509"),
            "{err}"
        );
    }

    #[test]
    fn tls_failures_are_named_for_the_operator() {
        use rustls::CertificateError as C;
        let unknown = describe_tls(&rustls::Error::InvalidCertificate(C::UnknownIssuer));
        assert!(unknown.contains("not signed by a trusted CA"), "{unknown}");
        assert!(unknown.contains("SMTP_CA_FILE"), "{unknown}");
        let name = describe_tls(&rustls::Error::InvalidCertificate(C::NotValidForName));
        assert!(name.contains("not valid for the host name"), "{name}");
        let expired = describe_tls(&rustls::Error::InvalidCertificate(C::Expired));
        assert!(expired.contains("validity period"), "{expired}");
    }
}

//! Real SMTP servers for e-mail tests, with certificates the test makes itself: a private CA
//! and server certificates it signs (rcgen), written to a temporary folder.
//!
//! - STARTTLS: `mailin-embedded` with its own rustls acceptor. mailin offers AUTH only once
//!   TLS is active, so a login proves the connection was upgraded.
//! - Implicit TLS (smtps): mailin's SMTP session behind a rustls server socket that speaks
//!   nothing but TLS from the first byte.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use mailin_embedded::{Action, AuthMechanism, Handler, Response, SslConfig, response};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A private certificate authority that lives as long as the test.
pub struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
    issued: Mutex<usize>,
}

/// A server certificate (with its chain) and key, as files and as rustls values.
pub struct ServerCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub chain: Vec<CertificateDer<'static>>,
    pub key_der: Vec<u8>,
}

impl ServerCert {
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

impl Pki {
    /// A fresh CA named `name`.
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        Pki {
            dir: tempfile::tempdir().expect("temp dir"),
            ca,
            issued: Mutex::new(0),
        }
    }

    /// The CA certificate as a PEM file, what an operator puts in `SMTP_CA_FILE`.
    pub fn ca_file(&self) -> PathBuf {
        let path = self.dir.path().join("ca.pem");
        std::fs::write(&path, self.ca.pem()).expect("write CA file");
        path
    }

    /// A file in this PKI's folder with `contents` (for broken `SMTP_CA_FILE`s).
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// A server certificate for `names` (DNS names or IP addresses) signed by this CA.
    pub fn server_cert(&self, names: &[&str]) -> ServerCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.ca)
            .expect("server certificate");
        let n = {
            let mut issued = self.issued.lock().unwrap();
            *issued += 1;
            *issued
        };
        let cert_path = self.dir.path().join(format!("server{n}.pem"));
        let key_path = self.dir.path().join(format!("server{n}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        ServerCert {
            cert_path,
            key_path,
            chain: vec![cert.der().clone()],
            key_der: key.serialize_der(),
        }
    }
}

/// A message as the server received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub to: Vec<String>,
    pub data: String,
    /// The user and password of the session's AUTH PLAIN, if it logged in.
    pub login: Option<(String, String)>,
}

/// Everything a test server received.
#[derive(Default)]
pub struct Inbox {
    mails: Mutex<Vec<Received>>,
}

impl Inbox {
    pub fn mails(&self) -> Vec<Received> {
        self.mails.lock().unwrap().clone()
    }
}

/// Accepts every login and every message, and writes them down.
#[derive(Clone)]
struct Recorder {
    inbox: Arc<Inbox>,
    login: Option<(String, String)>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Recorder {
    fn new(inbox: Arc<Inbox>) -> Recorder {
        Recorder {
            inbox,
            login: None,
            to: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl Handler for Recorder {
    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.login = Some((user.to_owned(), password.to_owned()));
        response::AUTH_OK
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        response::START_DATA
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.inbox.mails.lock().unwrap().push(Received {
            to: self.to.clone(),
            data: String::from_utf8_lossy(&self.data).into_owned(),
            login: self.login.clone(),
        });
        response::OK
    }
}

/// A free loopback port and its listener.
fn listen() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// mailin-embedded on a free loopback port offering STARTTLS with `cert` and AUTH PLAIN (after
/// TLS only). Its threads live as long as the test binary.
pub fn start_starttls(cert: &ServerCert) -> (u16, Arc<Inbox>) {
    // mailin builds its rustls config with the process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (listener, port) = listen();
    let inbox = Arc::new(Inbox::default());
    let mut server = mailin_embedded::Server::new(Recorder::new(inbox.clone()));
    server
        .with_name("starttls.test")
        .with_ssl(SslConfig::SelfSigned {
            cert_path: cert.cert_path.display().to_string(),
            key_path: cert.key_path.display().to_string(),
        })
        .expect("mailin takes the certificate")
        .with_auth(AuthMechanism::Plain)
        .with_tcp_listener(listener)
        .with_num_threads(4);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, inbox)
}

/// An SMTP server on a free loopback port that speaks TLS from the first byte with `cert`, then
/// SMTP with AUTH PLAIN. Each connection gets a thread; the listener lives as long as the test
/// binary.
pub fn start_smtps(cert: &ServerCert) -> (u16, Arc<Inbox>) {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_no_client_auth()
    .with_single_cert(cert.chain.clone(), cert.key())
    .expect("server certificate and key match");
    let config = Arc::new(config);
    let (listener, port) = listen();
    let inbox = Arc::new(Inbox::default());
    let recorder = Recorder::new(inbox.clone());
    std::thread::spawn(move || {
        for tcp in listener.incoming().map_while(Result::ok) {
            let (config, recorder) = (config.clone(), recorder.clone());
            // A client that refuses the certificate ends the session with an error; that is
            // the client's business, and the test looks at what the client recorded.
            std::thread::spawn(move || serve_smtps(tcp, config, recorder));
        }
    });
    (port, inbox)
}

fn serve_smtps(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    recorder: Recorder,
) -> std::io::Result<()> {
    let peer = tcp
        .peer_addr()
        .map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip());
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // The handshake comes before anything SMTP; a refused certificate ends here.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    let mut builder = mailin::SessionBuilder::new("smtps.test");
    builder.enable_auth(AuthMechanism::Plain);
    let mut session = builder.build(peer, recorder);
    // The whole connection is TLS, which is what mailin waits for before it offers AUTH.
    session.tls_active();
    let mut stream = BufReader::new(tls);
    session.greeting().write_to(stream.get_mut())?;
    stream.get_mut().flush()?;
    let mut line = Vec::with_capacity(128);
    loop {
        line.clear();
        if stream.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let res = session.process(&line);
        match res.action {
            Action::NoReply => continue,
            Action::Reply | Action::UpgradeTls => {
                res.write_to(stream.get_mut())?;
                stream.get_mut().flush()?;
            }
            Action::Close => {
                res.write_to(stream.get_mut())?;
                stream.get_mut().flush()?;
                return Ok(());
            }
        }
    }
}

/// Header values (unfolded, names in lower case) and the decoded body of a raw message.
pub fn parse_mail(raw: &str) -> (HashMap<String, String>, String) {
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .expect("headers, blank line, body");
    let mut headers: HashMap<String, String> = HashMap::new();
    let mut last = String::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            headers.get_mut(&last).unwrap().push_str(line.trim_start());
        } else if let Some((name, value)) = line.split_once(':') {
            last = name.trim().to_ascii_lowercase();
            headers.insert(last.clone(), value.trim().to_owned());
        }
    }
    let encoding = headers
        .get("content-transfer-encoding")
        .map(|e| e.to_ascii_lowercase())
        .unwrap_or_default();
    let text = match encoding.as_str() {
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            String::from_utf8(STANDARD.decode(compact).expect("base64 body")).unwrap()
        }
        "quoted-printable" => {
            let joined = body.replace("=\r\n", "");
            let bytes = joined.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'=' && i + 2 < bytes.len() {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).expect("QP escape"));
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        }
        _ => body.to_owned(),
    };
    (headers, text.replace("\r\n", "\n"))
}

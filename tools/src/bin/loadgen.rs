//! Load generator for taskwire (or any server with the same REST routes and Socket.IO events):
//! opens N Socket.IO clients, makes M task updates over REST at R per second, each carrying its
//! send time, and measures how long every client took to receive every update.
//!
//! Run against a server on 127.0.0.1:5000:
//!
//! ```sh
//! cargo run --release -p taskwire-tools --bin loadgen -- --clients 1000 --updates 100 --rate 5
//! cargo run --release -p taskwire-tools --bin loadgen -- --clients 50 --updates 20 --rate 20 --json --fail-on-loss
//! cargo run --release -p taskwire-tools --bin loadgen -- --clients 1000 --transport upgrade
//! ```
//!
//! `--transport websocket` (the default) connects as a client with `transports:
//! ['websocket']`; `--transport upgrade` as socket.io-client with its default transports:
//! long-polling first, then the upgrade to a WebSocket ([`upgrade`]).
//!
//! With `--server-pid` it also reads the server's RSS and CPU time from `/proc`. It stops by
//! itself: `--duration` bounds the whole run, `--drain` the wait for late events. It only talks
//! to loopback addresses.
//!
//! Layout: [`ws`] is a minimal WebSocket client (handshake, frames; only what Engine.IO needs,
//! with one reusable read buffer per connection so a delivered event costs no allocation);
//! `client` speaks Engine.IO v4 / Socket.IO v5 on top of it ([`upgrade`] adds the long-polling
//! start and the upgrade, over raw HTTP/1.1); `rest` sends the updates from
//! its own thread so a busy receive loop cannot delay (and so hide) them; `main` runs the
//! phases and prints the report. All sockets live on one current-thread runtime.

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::LocalSet;
use tokio_util::sync::CancellationToken;

use taskwire_tools::stall_probe::{self, StallProbe};

/// A probe wake-up this late means a CPU was frozen (see `tools/src/stall_probe.rs`).
const FREEZE: Duration = Duration::from_millis(10);

/// How the clients reach their WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Transport {
    /// Straight to a WebSocket, as socket.io-client with `transports: ['websocket']`.
    Websocket,
    /// Long-polling, then the upgrade, as socket.io-client and ngx-socket-io by default.
    Upgrade,
}

/// Command line of the load generator.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "loadgen",
    about = "Socket.IO fan-out load generator for taskwire"
)]
struct Args {
    /// Base URL of the server (loopback only). Several, comma-separated, for several processes
    /// of one deployment: clients and updates are spread over them round-robin.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:5000")]
    url: Vec<String>,
    /// Socket.IO clients to open.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// `websocket`: connect on a WebSocket; `upgrade`: the default socket.io-client sequence
    /// (polling handshake, CONNECT by POST, WebSocket probe, pending poll answered, upgrade).
    #[arg(long, value_enum, default_value = "websocket")]
    transport: Transport,
    /// Task updates to make over REST.
    #[arg(long, default_value_t = 100)]
    updates: u64,
    /// Updates per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
    /// Clients connecting at once during the ramp.
    #[arg(long, default_value_t = 500)]
    ramp_batch: usize,
    /// Pause between ramp batches, in milliseconds.
    #[arg(long, default_value_t = 0)]
    ramp_pause_ms: u64,
    /// JWT sent as `auth.token` in the Socket.IO CONNECT packet and as a Bearer token on REST.
    #[arg(long)]
    token: Option<String>,
    /// Server processes to read RSS and CPU time from (`/proc/<pid>`), comma-separated;
    /// with several, their figures are summed.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Hard limit on the whole run, in seconds; the report covers what happened until then.
    #[arg(long, default_value_t = 180)]
    duration: u64,
    /// How long to wait for late events after the last update was sent, in seconds.
    #[arg(long, default_value_t = 10)]
    drain: u64,
    /// Unmeasured updates sent (at `--rate`) before the measured ones, so a server with a JIT
    /// or lazily grown buffers is measured warm.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// How long one client may take to connect, in seconds.
    #[arg(long, default_value_t = 30)]
    connect_timeout: u64,
    /// Name of the server under test, copied into the report.
    #[arg(long, default_value = "server")]
    label: String,
    /// Print the report as JSON on stdout (the human summary goes to stderr).
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when an event was lost or a client failed to connect.
    #[arg(long)]
    fail_on_loss: bool,
    /// Watch for machine freezes (a virtual CPU descheduled by the host) and report delivery
    /// and REST latency also without the samples in flight during one.
    #[arg(long)]
    freeze_probe: bool,
}

/// Nanoseconds since the load generator started, on the monotonic clock shared by the REST
/// sender and the receivers (both run in this process, so no wall-clock skew enters).
fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Microsecond histogram from 1 µs to one hour, three significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Default, Serialize)]
struct Percentiles {
    count: u64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
    mean_ms: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// Resident memory and CPU time of a process, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    rss_kib: u64,
    /// User + system time in clock ticks (USER_HZ, 100 per second on Linux).
    cpu_ticks: u64,
}

/// Linux reports `/proc/<pid>/stat` times in USER_HZ, which is 100 on every architecture.
const TICK_US: u64 = 10_000;

fn proc_sample(pid: &str) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields are counted from the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(ProcSample {
        rss_kib,
        cpu_ticks: utime + stime,
    })
}

/// RSS and CPU time summed over several processes; None when there are none or one is gone.
fn sum_samples(pids: &[String]) -> Option<ProcSample> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(
        ProcSample {
            rss_kib: 0,
            cpu_ticks: 0,
        },
        |total, pid| {
            let one = proc_sample(pid)?;
            Some(ProcSample {
                rss_kib: total.rss_kib + one.rss_kib,
                cpu_ticks: total.cpu_ticks + one.cpu_ticks,
            })
        },
    )
}

/// A minimal WebSocket client (RFC 6455): enough for Engine.IO over loopback.
mod ws {
    use std::io;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Read buffer each connection starts with; it grows only for a larger frame.
    const INITIAL_BUFFER: usize = 4096;

    /// One client connection after the upgrade.
    pub struct Conn {
        stream: TcpStream,
        buf: Vec<u8>,
        start: usize,
        end: usize,
        /// Payload of a fragmented message being reassembled.
        fragments: Vec<u8>,
        /// State of the xorshift generator for masking keys.
        mask_state: u32,
    }

    /// What [`Conn::next_message`] found.
    pub enum Message {
        /// A text message; its payload is `conn.payload(range)`.
        Text(std::ops::Range<usize>),
        /// The server closed the connection.
        Closed,
    }

    impl Conn {
        /// Opens a TCP connection to `addr` and upgrades `path` to a WebSocket.
        pub async fn connect(
            addr: std::net::SocketAddr,
            path: &str,
            seed: u32,
        ) -> io::Result<Conn> {
            let mut stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            // The key only has to be 16 bytes in base64; the accept hash is not checked
            // because a 101 from a loopback server we started is trusted.
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await?;
            let mut conn = Conn {
                stream,
                buf: vec![0; INITIAL_BUFFER],
                start: 0,
                end: 0,
                fragments: Vec::new(),
                mask_state: seed | 1,
            };
            loop {
                if let Some(pos) = memchr::memmem::find(&conn.buf[..conn.end], b"\r\n\r\n") {
                    let head = &conn.buf[..pos];
                    if !head.starts_with(b"HTTP/1.1 101") {
                        let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
                        return Err(io::Error::other(format!(
                            "upgrade refused: {}",
                            String::from_utf8_lossy(line)
                        )));
                    }
                    // Bytes after the headers are already WebSocket frames.
                    conn.start = pos + 4;
                    return Ok(conn);
                }
                if conn.end == conn.buf.len() {
                    return Err(io::Error::other("upgrade response headers too large"));
                }
                let n = conn.stream.read(&mut conn.buf[conn.end..]).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                conn.end += n;
            }
        }

        /// Bytes of a message returned by [`Conn::next_message`], valid until the next call.
        pub fn payload(&self, range: std::ops::Range<usize>) -> &[u8] {
            if range.start == usize::MAX {
                &self.fragments
            } else {
                &self.buf[range]
            }
        }

        /// Reads until a whole text message is buffered; answers pings on the way.
        pub async fn next_message(&mut self) -> io::Result<Message> {
            loop {
                if let Some((fin, opcode, header, len)) = self.frame_at_start() {
                    let payload = self.start + header..self.start + header + len;
                    self.start = payload.end;
                    match opcode {
                        0x1 if fin => return Ok(Message::Text(payload)),
                        0x1 | 0x2 => {
                            self.fragments.clear();
                            self.fragments.extend_from_slice(&self.buf[payload]);
                        }
                        0x0 => {
                            self.fragments.extend_from_slice(&self.buf[payload]);
                            if fin {
                                return Ok(Message::Text(usize::MAX..usize::MAX));
                            }
                        }
                        0x8 => return Ok(Message::Closed),
                        0x9 => {
                            let data = self.buf[payload].to_vec();
                            self.send(0xA, &data).await?;
                        }
                        _ => {} // pong, or a binary message: Engine.IO v4 text only here
                    }
                    continue;
                }
                self.fill().await?;
            }
        }

        /// Parses the frame header at `start`: `(fin, opcode, header length, payload length)`
        /// when the whole frame is buffered.
        fn frame_at_start(&self) -> Option<(bool, u8, usize, usize)> {
            let b = &self.buf[self.start..self.end];
            if b.len() < 2 {
                return None;
            }
            let fin = b[0] & 0x80 != 0;
            let opcode = b[0] & 0x0F;
            let masked = b[1] & 0x80 != 0;
            let (mut header, len) = match b[1] & 0x7F {
                126 if b.len() >= 4 => (4, u16::from_be_bytes([b[2], b[3]]) as usize),
                127 if b.len() >= 10 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&b[2..10]);
                    (10, u64::from_be_bytes(n) as usize)
                }
                126 | 127 => return None,
                n => (2, n as usize),
            };
            // Servers never mask; skip a key anyway rather than misread the stream.
            if masked {
                header += 4;
            }
            (b.len() >= header + len).then_some((fin, opcode, header, len))
        }

        /// Makes room (compacting, or growing for a frame larger than the buffer) and reads.
        async fn fill(&mut self) -> io::Result<()> {
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            } else if self.end == self.buf.len() {
                if self.start > 0 {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                } else {
                    let bigger = self.buf.len() * 2;
                    self.buf.resize(bigger, 0);
                }
            }
            let n = self.stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.end += n;
            Ok(())
        }

        /// Sends one masked text message.
        pub async fn send_text(&mut self, payload: &[u8]) -> io::Result<()> {
            self.send(0x1, payload).await
        }

        async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
            let mut frame = Vec::with_capacity(payload.len() + 14);
            frame.push(0x80 | opcode);
            match payload.len() {
                n if n < 126 => frame.push(0x80 | n as u8),
                n if n <= u16::MAX as usize => {
                    frame.push(0x80 | 126);
                    frame.extend_from_slice(&(n as u16).to_be_bytes());
                }
                n => {
                    frame.push(0x80 | 127);
                    frame.extend_from_slice(&(n as u64).to_be_bytes());
                }
            }
            // Clients must mask (RFC 6455 §5.3); xorshift is plenty for that.
            let mut x = self.mask_state;
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            self.mask_state = x;
            let key = x.to_be_bytes();
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            self.stream.write_all(&frame).await
        }
    }
}

/// Counters shared by every client task (all on one thread).
struct Shared {
    /// Delivery latency of every update event, in µs.
    latency: RefCell<Histogram<u64>>,
    /// The same, without the events in flight during a machine freeze (with `--freeze-probe`).
    latency_clear: RefCell<Histogram<u64>>,
    probe: Option<Arc<StallProbe>>,
    /// Update events received (duplicates excluded).
    received: Cell<u64>,
    /// Update events received twice by the same client.
    duplicates: Cell<u64>,
    /// Update events without a run stamp (warm-up updates) or with one outside the run.
    unstamped: Cell<u64>,
    /// Clients that saw `task_created` for the run's task (so they are live).
    live: Cell<usize>,
    /// Clients whose connection ended before the run did.
    dropped: Cell<usize>,
    /// Updates the run will make, so each client can keep a bitmap of what it got.
    updates: u64,
    /// Title of the run's task, to recognise its `task_created`.
    title: String,
    /// How clients reach their WebSocket.
    transport: Transport,
}

/// How one client's connection attempt went.
struct Connected {
    /// Microseconds from TCP connect to the Socket.IO CONNECT reply, or the error.
    result: Result<u64, String>,
}

/// Engine.IO v4 / Socket.IO v5 client: connect, answer pings, count update events.
async fn client(
    addr: SocketAddr,
    token: Option<Rc<str>>,
    index: u32,
    shared: Rc<Shared>,
    connected: mpsc::UnboundedSender<Connected>,
    stop: CancellationToken,
    connect_timeout: Duration,
) {
    let transport = shared.transport;
    let started = Instant::now();
    let handshake = tokio::time::timeout(connect_timeout, async {
        match transport {
            Transport::Websocket => handshake(addr, token, index).await,
            Transport::Upgrade => upgrade::handshake(addr, token.as_deref(), index).await,
        }
    })
    .await;
    let mut conn = match handshake {
        Ok(Ok(conn)) => {
            let us = started.elapsed().as_micros() as u64;
            let _ = connected.send(Connected { result: Ok(us) });
            conn
        }
        Ok(Err(err)) => {
            let _ = connected.send(Connected {
                result: Err(err.to_string()),
            });
            return;
        }
        Err(_) => {
            let _ = connected.send(Connected {
                result: Err("connect timed out".into()),
            });
            return;
        }
    };
    drop(connected);
    // One bit per update: counts each update once and spots duplicates.
    let mut seen = vec![0u64; shared.updates.div_ceil(64) as usize];
    let title_needle = format!("\"title\":\"{}\"", shared.title);
    loop {
        let msg = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            msg = conn.next_message() => msg,
        };
        let range = match msg {
            Ok(ws::Message::Text(range)) => range,
            Ok(ws::Message::Closed) | Err(_) => {
                shared.dropped.set(shared.dropped.get() + 1);
                return;
            }
        };
        let text = conn.payload(range);
        if text == b"2" {
            if conn.send_text(b"3").await.is_err() {
                shared.dropped.set(shared.dropped.get() + 1);
                return;
            }
        } else if text.starts_with(UPDATED) {
            let received_at = now_ns();
            match parse_stamp(text) {
                Some((seq, sent)) if seq < shared.updates => {
                    let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
                    if seen[word] & bit != 0 {
                        shared.duplicates.set(shared.duplicates.get() + 1);
                    } else {
                        seen[word] |= bit;
                        shared.received.set(shared.received.get() + 1);
                        let us = received_at.saturating_sub(sent) / 1000;
                        let _ = shared.latency.borrow_mut().record(us.max(1));
                        if let Some(probe) = &shared.probe
                            && !probe.overlaps(sent, received_at)
                        {
                            let _ = shared.latency_clear.borrow_mut().record(us.max(1));
                        }
                    }
                }
                _ => shared.unstamped.set(shared.unstamped.get() + 1),
            }
        } else if text.starts_with(CREATED)
            && memchr::memmem::find(text, title_needle.as_bytes()).is_some()
        {
            shared.live.set(shared.live.get() + 1);
        }
    }
}

/// Opens the WebSocket and completes the Engine.IO open and Socket.IO CONNECT.
async fn handshake(
    addr: SocketAddr,
    token: Option<Rc<str>>,
    index: u32,
) -> std::io::Result<ws::Conn> {
    let mut conn = ws::Conn::connect(addr, "/socket.io/?EIO=4&transport=websocket", index).await?;
    loop {
        let ws::Message::Text(range) = conn.next_message().await? else {
            return Err(std::io::Error::other("closed during handshake"));
        };
        let text = conn.payload(range);
        if text.starts_with(b"0{") {
            let connect = match &token {
                Some(t) => format!("40{}", serde_json::json!({ "token": &**t })),
                None => "40".to_owned(),
            };
            conn.send_text(connect.as_bytes()).await?;
        } else if text.starts_with(b"40") {
            return Ok(conn);
        } else if text.starts_with(b"44") {
            return Err(std::io::Error::other(format!(
                "connect refused: {}",
                String::from_utf8_lossy(text)
            )));
        } else if text == b"2" {
            conn.send_text(b"3").await?;
        }
    }
}

/// The sequence socket.io-client 4 runs with its default transports, over raw HTTP/1.1 on one
/// keep-alive connection (as the browser's connection pool would reuse one) and then a
/// WebSocket: the polling handshake (`GET`, open packet), the Socket.IO CONNECT by `POST`,
/// polls until its reply arrives, one more poll left pending, the WebSocket with the `sid`,
/// `2probe` → `3probe`, the pending poll answered (a noop), then `5`. The HTTP connection is
/// closed once the session is on the WebSocket.
mod upgrade {
    use std::io;
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use crate::ws;

    /// Engine.IO v4's separator between packets of a polling payload.
    const SEPARATOR: u8 = 0x1e;

    /// One keep-alive HTTP/1.1 connection that sends a request and reads its answer.
    struct Http {
        stream: TcpStream,
        addr: SocketAddr,
        buf: Vec<u8>,
    }

    impl Http {
        async fn connect(addr: SocketAddr) -> io::Result<Http> {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            Ok(Http {
                stream,
                addr,
                buf: Vec::with_capacity(1024),
            })
        }

        /// Writes a request without waiting for the answer.
        async fn send(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<()> {
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain;charset=UTF-8\r\n\
                 Content-Length: {}\r\n\r\n",
                self.addr,
                body.len()
            );
            let mut request = head.into_bytes();
            request.extend_from_slice(body);
            self.stream.write_all(&request).await
        }

        /// Reads one answer (with `Content-Length`, as engine.io sends them); its body.
        async fn answer(&mut self) -> io::Result<Vec<u8>> {
            loop {
                if let Some(pos) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.buf[..pos]).into_owned();
                    if !head.starts_with("HTTP/1.1 200") {
                        let line = head.lines().next().unwrap_or_default();
                        return Err(io::Error::other(format!("polling request: {line}")));
                    }
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse().ok())?
                        })
                        .ok_or_else(|| io::Error::other("polling answer without a length"))?;
                    let end = pos + 4 + length;
                    if self.buf.len() >= end {
                        let body = self.buf[pos + 4..end].to_vec();
                        self.buf.drain(..end);
                        return Ok(body);
                    }
                }
                let mut chunk = [0u8; 2048];
                let n = self.stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                self.buf.extend_from_slice(&chunk[..n]);
            }
        }

        async fn request(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Vec<u8>> {
            self.send(method, path, body).await?;
            self.answer().await
        }
    }

    /// Runs the sequence; the WebSocket once the session is upgraded and connected.
    pub async fn handshake(
        addr: SocketAddr,
        token: Option<&str>,
        index: u32,
    ) -> io::Result<ws::Conn> {
        let mut http = Http::connect(addr).await?;
        let open = http
            .request("GET", "/socket.io/?EIO=4&transport=polling", b"")
            .await?;
        let sid = open
            .strip_prefix(b"0")
            .and_then(|json| serde_json::from_slice::<serde_json::Value>(json).ok())
            .and_then(|open| open["sid"].as_str().map(str::to_owned))
            .ok_or_else(|| {
                io::Error::other(format!(
                    "no open packet: {}",
                    String::from_utf8_lossy(&open)
                ))
            })?;
        let poll = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        let connect = match token {
            Some(t) => format!("40{}", serde_json::json!({ "token": t })),
            None => "40".to_owned(),
        };
        expect_ok(http.request("POST", &poll, connect.as_bytes()).await?)?;
        // Poll until the CONNECT reply, answering the heartbeat's ping on the way.
        let mut connected = false;
        while !connected {
            let payload = http.request("GET", &poll, b"").await?;
            let mut pong = false;
            for packet in payload.split(|b| *b == SEPARATOR) {
                if packet.starts_with(b"40") {
                    connected = true;
                } else if packet.starts_with(b"44") {
                    return Err(io::Error::other(format!(
                        "connect refused: {}",
                        String::from_utf8_lossy(packet)
                    )));
                } else if packet == b"2" {
                    pong = true;
                }
            }
            if pong {
                expect_ok(http.request("POST", &poll, b"3").await?)?;
            }
        }
        // The poll engine.io-client keeps open while it probes the WebSocket.
        http.send("GET", &poll, b"").await?;
        let path = format!("/socket.io/?EIO=4&transport=websocket&sid={sid}");
        let mut conn = ws::Conn::connect(addr, &path, index).await?;
        conn.send_text(b"2probe").await?;
        loop {
            let ws::Message::Text(range) = conn.next_message().await? else {
                return Err(io::Error::other("closed during the probe"));
            };
            if conn.payload(range) == b"3probe" {
                break;
            }
        }
        // The server answers the pending poll once the probe began (with a noop, or with
        // packets that were waiting): the client upgrades only after that answer.
        http.answer().await?;
        conn.send_text(b"5").await?;
        drop(http);
        Ok(conn)
    }

    fn expect_ok(body: Vec<u8>) -> io::Result<()> {
        if body == b"ok" {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "POST answered {}",
                String::from_utf8_lossy(&body)
            )))
        }
    }
}

/// Start of a `task_updated` event.
const UPDATED: &[u8] = b"42[\"task_updated\",";

/// Start of a `task_created` event.
const CREATED: &[u8] = b"42[\"task_created\",";

/// Marker in the description of every update: `lg:<seq>:<send time in ns>`.
const STAMP: &[u8] = b"\"description\":\"lg:";

/// Reads `(seq, sent_ns)` from an update event without parsing the rest of the JSON.
fn parse_stamp(text: &[u8]) -> Option<(u64, u64)> {
    let at = memchr::memmem::find(text, STAMP)? + STAMP.len();
    let (seq, rest) = parse_u64(&text[at..])?;
    let (sent, _) = parse_u64(rest.strip_prefix(b":")?)?;
    Some((seq, sent))
}

fn parse_u64(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    let n = bytes[..digits]
        .iter()
        .fold(0u64, |n, b| n * 10 + u64::from(b - b'0'));
    Some((n, &bytes[digits..]))
}

/// What the REST sender measured.
#[derive(Debug, Default)]
struct RestOutcome {
    latency: Option<Histogram<u64>>,
    /// Without the requests in flight during a machine freeze (with a probe).
    latency_clear: Option<Histogram<u64>>,
    sent: u64,
    errors: u64,
    first_error: Option<String>,
    /// Seconds from the first scheduled update to the last one actually sent.
    send_span_s: f64,
}

/// Makes `updates` PATCHes to `task` at `rate` per second, open loop: each request runs on its
/// own task so a slow answer delays neither the schedule nor the next request.
fn rest_updates(
    bases: Vec<String>,
    token: Option<String>,
    task: String,
    updates: u64,
    rate: f64,
    deadline: Instant,
    probe: Option<Arc<StallProbe>>,
) -> RestOutcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("REST runtime starts");
    rt.block_on(async move {
        let http = rest_client(token.as_deref());
        let urls: Vec<String> = bases
            .iter()
            .map(|base| format!("{base}/api/tasks/{task}"))
            .collect();
        let interval = Duration::from_secs_f64(1.0 / rate);
        let start = tokio::time::Instant::now();
        let mut requests = tokio::task::JoinSet::new();
        let mut sent = 0;
        for seq in 0..updates {
            let at = start + interval.mul_f64(seq as f64);
            if at.into_std() > deadline {
                break;
            }
            tokio::time::sleep_until(at).await;
            let (http, url) = (http.clone(), urls[seq as usize % urls.len()].clone());
            requests.spawn(async move {
                let t0 = Instant::now();
                let t0_ns = now_ns();
                let body = format!(r#"{{"description":"lg:{seq}:{}"}}"#, now_ns());
                let res = http
                    .patch(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let res = match res {
                    Ok(r) if r.status().is_success() => {
                        r.bytes().await.map(|_| ()).map_err(|e| e.to_string())
                    }
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(error_chain(&e)),
                };
                (t0_ns, t0.elapsed().as_micros() as u64, res)
            });
            sent += 1;
        }
        let send_span_s = start.elapsed().as_secs_f64();
        let mut outcome = RestOutcome {
            latency: Some(histogram()),
            latency_clear: probe.as_ref().map(|_| histogram()),
            sent,
            send_span_s,
            ..RestOutcome::default()
        };
        while let Ok(Some(done)) =
            tokio::time::timeout_at(deadline.into(), requests.join_next()).await
        {
            let Ok((t0_ns, us, res)) = done else { continue };
            match res {
                Ok(()) => {
                    let _ = outcome.latency.as_mut().map(|h| h.record(us.max(1)));
                    if let (Some(probe), Some(h)) = (&probe, outcome.latency_clear.as_mut())
                        && !probe.overlaps(t0_ns, t0_ns + us * 1000)
                    {
                        let _ = h.record(us.max(1));
                    }
                }
                Err(e) => {
                    outcome.errors += 1;
                    outcome.first_error.get_or_insert(e);
                }
            }
        }
        outcome.errors += requests.len() as u64;
        outcome
    })
}

/// Creates the run's task; retried because a server still busy with the ramp may drop the
/// first request.
async fn create_task(
    http: &reqwest::Client,
    base: &str,
    title: &str,
) -> Result<serde_json::Value, String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let created = http
            .post(format!("{base}/api/tasks"))
            .json(&serde_json::json!({ "title": title, "description": "" }))
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match created {
            Ok(r) => {
                return r
                    .json()
                    .await
                    .map_err(|e| format!("task creation answered no JSON: {e}"));
            }
            Err(e) if attempt >= 3 => {
                return Err(format!("cannot create the task: {}", error_chain(&e)));
            }
            Err(e) => {
                eprintln!(
                    "loadgen: creating the task failed ({}), retrying",
                    error_chain(&e)
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// An error with its causes, since reqwest's own message hides the interesting part.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text += &format!(": {cause}");
        source = cause.source();
    }
    text
}

/// Sends the warm-up updates one after the other at the run's rate.
async fn warm_up(http: &reqwest::Client, url: &str, args: &Args) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / args.rate));
    for _ in 0..args.warmup {
        tick.tick().await;
        let sent = http
            .patch(url)
            .json(&serde_json::json!({ "description": "warmup" }))
            .send()
            .await;
        if let Err(err) = sent.and_then(|r| r.error_for_status()) {
            eprintln!("loadgen: a warm-up update failed: {err}");
        }
    }
}

fn rest_client(token: Option<&str>) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = token {
        let value = format!("Bearer {t}")
            .parse()
            .expect("a JWT is a valid header value");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client builds")
}

/// The whole result of a run.
#[derive(Debug, Serialize)]
struct Report {
    label: String,
    /// How the clients reached their WebSocket.
    transport: Transport,
    clients: usize,
    updates: u64,
    rate: f64,
    connected: usize,
    connect_failures: usize,
    first_connect_error: Option<String>,
    /// Seconds to open all clients.
    ramp_s: f64,
    connect: Percentiles,
    /// Clients that saw the run's `task_created` before updates began.
    live: usize,
    /// Every client times every update.
    expected: u64,
    received: u64,
    lost: u64,
    duplicates: u64,
    unstamped: u64,
    dropped_connections: usize,
    delivery: Percentiles,
    delivered_per_s: f64,
    rest: Percentiles,
    rest_sent: u64,
    rest_errors: u64,
    rest_first_error: Option<String>,
    /// Seconds from the first update to the end of the drain.
    measure_s: f64,
    timed_out: bool,
    server: Option<ServerReport>,
    /// CPU time the load generator itself used per second of the measured phase (1.0 = one
    /// core): near 1.0 means the load generator, not the server, was the limit.
    loadgen_cpu_cores: Option<f64>,
    /// Machine freezes during the measured phase (with `--freeze-probe`).
    freezes: Option<FreezeReport>,
    /// Delivery latency without the events in flight during a freeze.
    delivery_outside_freezes: Option<Percentiles>,
    /// REST latency without the requests in flight during a freeze.
    rest_outside_freezes: Option<Percentiles>,
}

/// What the freeze probe saw during the measured phase.
#[derive(Debug, Serialize)]
struct FreezeReport {
    /// Wake-ups later than this counted as a freeze.
    threshold_ms: f64,
    count: usize,
    total_ms: f64,
    longest_ms: f64,
    /// Whether the probe ran at real-time priority (it does as root), so that only a frozen
    /// CPU, not a busy one, could make it late.
    realtime: bool,
}

/// What `/proc/<server-pid>` showed.
#[derive(Debug, Serialize)]
struct ServerReport {
    /// The first server process; figures below are summed over `processes`.
    pid: u32,
    processes: usize,
    rss_idle_kib: u64,
    rss_connected_kib: u64,
    rss_end_kib: u64,
    rss_per_conn_kib: f64,
    /// Server CPU seconds during updates and drain.
    cpu_s: f64,
    /// Server CPU per second of the measured phase (1.0 = one core busy).
    cpu_cores: f64,
    cpu_us_per_event: f64,
}

fn main() -> std::process::ExitCode {
    // reqwest is built with rustls but no default provider (see Cargo.toml); pick ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    now_ns();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime starts");
    let report = match LocalSet::new().block_on(&rt, run(args.clone())) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("loadgen: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    eprint!("{}", summary(&report));
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("report serialises")
        );
    }
    // Client tasks still hold sockets; leaving without tearing them down one by one is faster
    // and the kernel closes them.
    let failed = report.lost > 0 || report.connect_failures > 0 || report.duplicates > 0;
    if args.fail_on_loss && failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

async fn run(args: Args) -> Result<Report, String> {
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let bases: Vec<String> = args
        .url
        .iter()
        .map(|u| u.trim_end_matches('/').to_owned())
        .collect();
    let base = bases.first().ok_or("--url names no server")?.clone();
    let addrs = bases
        .iter()
        .map(|b| loopback_addr(b))
        .collect::<Result<Vec<_>, _>>()?;
    let pids: Vec<String> = args.server_pid.iter().map(u32::to_string).collect();
    let sample = || sum_samples(&pids);
    let idle = sample();

    let title = format!("loadgen {}", std::process::id());
    let probe = args
        .freeze_probe
        .then(|| Arc::new(StallProbe::start(now_ns, FREEZE)));
    let shared = Rc::new(Shared {
        latency: RefCell::new(histogram()),
        latency_clear: RefCell::new(histogram()),
        probe: probe.clone(),
        received: Cell::new(0),
        duplicates: Cell::new(0),
        unstamped: Cell::new(0),
        live: Cell::new(0),
        dropped: Cell::new(0),
        updates: args.updates,
        title: title.clone(),
        transport: args.transport,
    });
    let stop = CancellationToken::new();
    let token: Option<Rc<str>> = args.token.as_deref().map(Rc::from);

    // Ramp: batches of clients connect at once; the next batch starts when this one is done.
    let ramp_start = Instant::now();
    let mut connect_hist = histogram();
    let (mut connected, mut failures, mut first_error) = (0usize, 0usize, None);
    let mut index = 0usize;
    let mut timed_out = false;
    while index < args.clients {
        let batch = args.ramp_batch.max(1).min(args.clients - index);
        let (tx, mut rx) = mpsc::unbounded_channel();
        for _ in 0..batch {
            tokio::task::spawn_local(client(
                addrs[index % addrs.len()],
                token.clone(),
                index as u32 + 1,
                shared.clone(),
                tx.clone(),
                stop.clone(),
                Duration::from_secs(args.connect_timeout),
            ));
            index += 1;
        }
        drop(tx);
        loop {
            match tokio::time::timeout_at(deadline.into(), rx.recv()).await {
                Ok(Some(Connected { result: Ok(us) })) => {
                    connected += 1;
                    let _ = connect_hist.record(us.max(1));
                }
                Ok(Some(Connected { result: Err(e) })) => {
                    failures += 1;
                    first_error.get_or_insert(e);
                }
                Ok(None) => break,
                Err(_) => {
                    timed_out = true;
                    break;
                }
            }
        }
        if timed_out {
            break;
        }
        if args.ramp_pause_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.ramp_pause_ms)).await;
        }
    }
    let ramp_s = ramp_start.elapsed().as_secs_f64();
    failures += args.clients - connected - failures;
    // Let the server settle what the ramp allocated before measuring memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_connect = sample();

    // The run's task; its task_created tells us every client is live.
    let http = rest_client(args.token.as_deref());
    let created = create_task(&http, &base, &title).await.map_err(|e| {
        format!(
            "{e} (after {connected} of {} clients connected)",
            args.clients
        )
    })?;
    let task_id = created["id"]
        .as_str()
        .ok_or("the created task has no id")?
        .to_owned();
    let live_by = Instant::now() + Duration::from_secs(10);
    while shared.live.get() + shared.dropped.get() < connected && Instant::now() < live_by {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    if args.warmup > 0 {
        warm_up(&http, &format!("{base}/api/tasks/{task_id}"), &args).await;
        // Measure from a quiet start: wait (10 s at most) for the warm-up events to arrive.
        let target = args.warmup * shared.live.get() as u64;
        let quiet_by = Instant::now() + Duration::from_secs(10);
        while shared.unstamped.get() < target && Instant::now() < quiet_by {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Updates from their own thread; receivers keep running here.
    let before = sample();
    let self_before = proc_sample("self");
    let measure_start = Instant::now();
    let measure_start_ns = now_ns();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    {
        let (base, token, task) = (bases.clone(), args.token.clone(), task_id.clone());
        let (updates, rate, probe) = (args.updates, args.rate, probe.clone());
        std::thread::spawn(move || {
            let _ = done_tx.send(rest_updates(
                base, token, task, updates, rate, deadline, probe,
            ));
        });
    }
    let rest = match tokio::time::timeout_at(deadline.into(), done_rx).await {
        Ok(Ok(outcome)) => outcome,
        _ => {
            timed_out = true;
            RestOutcome::default()
        }
    };
    let expected = connected as u64 * args.updates;
    let drain_until = (Instant::now() + Duration::from_secs(args.drain)).min(deadline);
    while shared.received.get() < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if Instant::now() >= deadline {
        timed_out = true;
    }
    let measure_s = measure_start.elapsed().as_secs_f64();
    let after = sample();
    let self_after = proc_sample("self");
    stop.cancel();

    let received = shared.received.get();
    let expected_all = args.clients as u64 * args.updates;
    let server = match (args.server_pid.first(), idle, after_connect, before, after) {
        (Some(&pid), Some(idle), Some(conn), Some(before), Some(after)) => {
            let cpu_s = (after.cpu_ticks - before.cpu_ticks) as f64 * TICK_US as f64 / 1e6;
            Some(ServerReport {
                pid,
                processes: args.server_pid.len(),
                rss_idle_kib: idle.rss_kib,
                rss_connected_kib: conn.rss_kib,
                rss_end_kib: after.rss_kib,
                rss_per_conn_kib: conn.rss_kib.saturating_sub(idle.rss_kib) as f64
                    / connected.max(1) as f64,
                cpu_s,
                cpu_cores: cpu_s / measure_s,
                cpu_us_per_event: cpu_s * 1e6 / received.max(1) as f64,
            })
        }
        _ => None,
    };
    let loadgen_cpu_cores = match (self_before, self_after) {
        (Some(b), Some(a)) => {
            Some((a.cpu_ticks - b.cpu_ticks) as f64 * TICK_US as f64 / 1e6 / measure_s)
        }
        _ => None,
    };
    if rest.sent < args.updates {
        eprintln!(
            "loadgen: only {} of {} updates were sent before the deadline ({:.1} s of sending)",
            rest.sent, args.updates, rest.send_span_s
        );
    }
    let latency = shared.latency.borrow();
    let freezes = probe.as_ref().map(|p| {
        let mut seen = stall_probe::Totals::default();
        p.tally(measure_start_ns, now_ns(), &mut seen);
        FreezeReport {
            threshold_ms: FREEZE.as_secs_f64() * 1000.0,
            count: seen.count,
            total_ms: seen.total_ms,
            longest_ms: seen.longest_ms,
            realtime: p.realtime,
        }
    });
    let delivery_outside_freezes = probe
        .as_ref()
        .map(|_| Percentiles::of(&shared.latency_clear.borrow()));
    let rest_outside_freezes = rest.latency_clear.as_ref().map(Percentiles::of);
    Ok(Report {
        label: args.label,
        transport: args.transport,
        clients: args.clients,
        updates: args.updates,
        rate: args.rate,
        connected,
        connect_failures: failures,
        first_connect_error: first_error,
        ramp_s,
        connect: Percentiles::of(&connect_hist),
        live: shared.live.get(),
        expected: expected_all,
        received,
        lost: expected_all.saturating_sub(received),
        duplicates: shared.duplicates.get(),
        unstamped: shared.unstamped.get(),
        dropped_connections: shared.dropped.get(),
        delivery: Percentiles::of(&latency),
        delivered_per_s: received as f64 / measure_s,
        rest: rest
            .latency
            .as_ref()
            .map(Percentiles::of)
            .unwrap_or_default(),
        rest_sent: rest.sent,
        rest_errors: rest.errors,
        rest_first_error: rest.first_error,
        measure_s,
        timed_out,
        server,
        loadgen_cpu_cores,
        freezes,
        delivery_outside_freezes,
        rest_outside_freezes,
    })
}

/// The server's address, refusing anything that is not loopback: this tool floods what it
/// points at, so it must only ever point at this machine.
fn loopback_addr(base: &str) -> Result<SocketAddr, String> {
    let hostport = base
        .strip_prefix("http://")
        .ok_or("--url must start with http://")?
        .split('/')
        .next()
        .unwrap_or_default();
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {hostport}: {e}"))?
        .find(|a| a.ip().is_loopback())
        .ok_or_else(|| {
            format!("{hostport} is not a loopback address; loadgen only runs locally")
        })?;
    Ok(addr)
}

/// The human summary.
fn summary(r: &Report) -> String {
    let mut s = format!(
        "{label} ({transport:?}): {clients} clients ({connected} connected, {failures} failed, ramp {ramp:.1} s, \
         connect p50 {cp50:.1} ms p99 {cp99:.1} ms), {updates} updates at {rate}/s\n\
         delivery: {received}/{expected} received, {lost} lost, {dup} duplicates, {dropped} \
         connections dropped; latency p50 {p50:.1} ms, p90 {p90:.1}, p99 {p99:.1}, p99.9 {p999:.1}, \
         max {max:.1} ms; {rate_ev:.0} events/s\n\
         REST: {sent} sent, {errs} errors, p50 {rp50:.1} ms, p99 {rp99:.1} ms, max {rmax:.1} ms\n",
        label = r.label,
        transport = r.transport,
        clients = r.clients,
        connected = r.connected,
        failures = r.connect_failures,
        ramp = r.ramp_s,
        cp50 = r.connect.p50_ms,
        cp99 = r.connect.p99_ms,
        updates = r.updates,
        rate = r.rate,
        received = r.received,
        expected = r.expected,
        lost = r.lost,
        dup = r.duplicates,
        dropped = r.dropped_connections,
        p50 = r.delivery.p50_ms,
        p90 = r.delivery.p90_ms,
        p99 = r.delivery.p99_ms,
        p999 = r.delivery.p999_ms,
        max = r.delivery.max_ms,
        rate_ev = r.delivered_per_s,
        sent = r.rest_sent,
        errs = r.rest_errors,
        rp50 = r.rest.p50_ms,
        rp99 = r.rest.p99_ms,
        rmax = r.rest.max_ms,
    );
    if let Some(e) = &r.first_connect_error {
        s += &format!("first connect error: {e}\n");
    }
    if let Some(e) = &r.rest_first_error {
        s += &format!("first REST error: {e}\n");
    }
    if let Some(srv) = &r.server {
        s += &format!(
            "server: RSS {idle} KiB idle, {conn} KiB connected ({per:.1} KiB/conn), {end} KiB at \
             end; CPU {cpu:.2} s ({cores:.2} cores), {per_ev:.2} µs/event\n",
            idle = srv.rss_idle_kib,
            conn = srv.rss_connected_kib,
            per = srv.rss_per_conn_kib,
            end = srv.rss_end_kib,
            cpu = srv.cpu_s,
            cores = srv.cpu_cores,
            per_ev = srv.cpu_us_per_event,
        );
    }
    if let (Some(f), Some(d), Some(rest)) = (
        &r.freezes,
        &r.delivery_outside_freezes,
        &r.rest_outside_freezes,
    ) {
        s += &format!(
            "machine freezes (a CPU stopped > {:.0} ms{}): {} ({:.0} ms in all, longest {:.0} ms); \
             without what was in flight during one: delivery p50 {:.1} ms p99 {:.1} ms ({} \
             events), REST p50 {:.1} ms p99 {:.1} ms ({} requests)\n",
            f.threshold_ms,
            if f.realtime {
                ""
            } else {
                ", probe without real-time priority"
            },
            f.count,
            f.total_ms,
            f.longest_ms,
            d.p50_ms,
            d.p99_ms,
            d.count,
            rest.p50_ms,
            rest.p99_ms,
            rest.count,
        );
    }
    if let Some(c) = r.loadgen_cpu_cores {
        s += &format!("loadgen CPU: {c:.2} cores over {:.1} s\n", r.measure_s);
    }
    if r.timed_out {
        s += "the run hit --duration before it finished\n";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_is_read_from_an_update_event() {
        let text = br#"42["task_updated",{"id":"x","title":"t","description":"lg:17:123456789","status":"pending"}]"#;
        assert_eq!(parse_stamp(text), Some((17, 123_456_789)));
    }

    #[test]
    fn an_event_without_a_stamp_is_not_counted() {
        assert_eq!(
            parse_stamp(br#"42["task_updated",{"description":"hi"}]"#),
            None
        );
        assert_eq!(
            parse_stamp(br#"42["task_updated",{"description":"lg:1"}]"#),
            None
        );
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        assert!(loopback_addr("http://127.0.0.1:5000").is_ok());
        assert!(loopback_addr("http://10.0.0.1:5000").is_err());
    }
}

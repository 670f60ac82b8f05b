//! Settings: every option is a CLI flag and an environment variable, parsed once at start-up
//! into [`Settings`] and passed down by reference. Nothing else in the crate reads the
//! environment.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Command line of the `taskwire` binary: run the server (the default) or a helper command.
#[derive(Debug, Parser)]
#[command(
    name = "taskwire",
    version,
    about = "Real-time task server: REST, Socket.IO and SSE on one port"
)]
pub struct Cli {
    /// What to do; without a subcommand the server runs.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Server settings (also read from the environment).
    #[command(flatten)]
    pub settings: Settings,
}

/// Helper commands next to the server itself.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the same as giving no subcommand).
    Serve,
    /// Print a signed token (HS256 with JWT_SECRET) for trying the API and for tests.
    Token(TokenArgs),
}

/// Claims of a token minted by `taskwire token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user id (`sub`).
    #[arg(long)]
    pub sub: String,
    /// The workspace (`workspace` claim); absent means `default`.
    #[arg(long)]
    pub workspace: Option<String>,
    /// Display name (`name` claim).
    #[arg(long)]
    pub name: Option<String>,
    /// E-mail address (`email` claim).
    #[arg(long)]
    pub email: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
}

/// Which Socket.IO event set is emitted for task changes (`EVENT_STYLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum EventStyle {
    /// `task_created` / `task_updated` / `task_deleted` with the task.
    Default,
    /// `task-created` / `task-updated` / `task-deleted` with camelCase payloads.
    Node,
    /// `task_update` with the task, as Flask-SocketIO backends send it.
    Flask,
}

/// A secret read from the environment; never shown by `Debug`, so settings can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// `DATABASE_URL`: used as the text it is, but its `Debug` hides the password, so settings can
/// be logged without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl std::ops::Deref for DatabaseUrl {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", crate::store::open::redact(&self.0))
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseUrl(s.to_owned()))
    }
}

impl From<&str> for DatabaseUrl {
    fn from(url: &str) -> Self {
        DatabaseUrl(url.to_owned())
    }
}

impl From<String> for DatabaseUrl {
    fn from(url: String) -> Self {
        DatabaseUrl(url)
    }
}

impl PartialEq<&str> for DatabaseUrl {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Whose REST writes share one rate-limit budget (`REST_RATE_LIMIT_BY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RateLimitBy {
    /// Each authenticated user (workspace and token `sub`); with auth off nothing is limited,
    /// since every caller is the same anonymous user.
    User,
    /// Each client address (IPv6 by /64), taken from a forwarding header only when the direct
    /// peer is one of `TRUSTED_PROXIES`.
    Ip,
}

/// The header a trusted proxy writes the client address into (`FORWARDED_HEADER`). Only one is
/// read: a proxy passes the other through untouched, so reading it would let clients choose
/// their own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx, HAProxy, Traefik, cloud load balancers).
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1, …`.
    Forwarded,
}

/// One entry of `TRUSTED_PROXIES`: an address or a CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange(ipnet::IpNet);

impl IpRange {
    /// Whether `addr` is in the range (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&addr.to_canonical())
    }
}

impl std::str::FromStr for IpRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("an empty entry is not an IP address or CIDR range".to_owned());
        }
        if let Ok(net) = s.parse::<ipnet::IpNet>() {
            return Ok(IpRange(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| IpRange(ipnet::IpNet::from(ip.to_canonical())))
            .map_err(|_| {
                format!("`{s}` is not an IP address or CIDR range (such as 10.0.0.1 or 10.0.0.0/8)")
            })
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Every runtime setting of a taskwire server.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on. `0` picks a free port, which appears in the listening line.
    #[arg(long, env = "PORT", default_value_t = 5000)]
    pub port: u16,

    /// Database: `sqlite://path.db` (created if missing) or `postgres://…` /
    /// `postgresql://…`. A SQLite file serves one process: a second taskwire on it refuses to
    /// start (see Operations). `--help` does not show this variable's value, and messages show
    /// the URL with its password as `***`.
    // The value is not shown in `--help`: a Postgres URL may carry a password.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://taskwire.db",
        hide_env_values = true
    )]
    pub database_url: DatabaseUrl,

    /// Runs several processes as one (see Running several processes); needs a PostgreSQL
    /// `DATABASE_URL`, and is refused with SQLite. A process refuses to start when Redis does not
    /// answer. `redis://[user:password@]host:port[/db]`; its password is never shown.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,

    /// Prefix of every Redis key and channel (`{prefix}:news`, `{prefix}:presence:{workspace}`), so
    /// several deployments can share one Redis.
    #[arg(long, env = "REDIS_PREFIX", default_value = "taskwire")]
    pub redis_prefix: String,

    /// Maximum number of open database connections. On SQLite this is the reader pool; there is
    /// always exactly one writer.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,

    /// Longest wait for a Postgres connection. At start-up taskwire keeps trying to reach Postgres
    /// this long, then exits with the reason; while running, a request that gets no connection
    /// within it answers 503 `unavailable`. That includes a pool so busy that no connection frees
    /// up in time: raise this or `DATABASE_MAX_CONNECTIONS` if you see 503s while Postgres is up.
    /// At least 1.
    #[arg(
        long,
        env = "DATABASE_TIMEOUT_SECONDS",
        default_value_t = crate::store::DEFAULT_TIMEOUT_SECONDS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub database_timeout_seconds: u64,

    /// Allowed browser origins, a comma-separated list of exact origins, or `*`: CORS for REST, SSE
    /// and Socket.IO polling, and the `Origin` check on Socket.IO (WebSocket included; other
    /// origins get 403). Clients that send no `Origin` (scripts, servers) are not affected.
    #[arg(long, env = "FRONTEND_URL", value_delimiter = ',')]
    pub frontend_url: Vec<String>,

    /// `pretty` or `json`. Logs go to stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Log filter in `RUST_LOG` syntax. `RUST_LOG` takes precedence if it is set.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Largest accepted request body in bytes; this is also the largest Socket.IO message.
    #[arg(long, env = "BODY_LIMIT", default_value_t = 1_048_576)]
    pub body_limit: usize,

    /// A REST request that takes longer than this is answered 408.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,

    /// Most TCP connections served at once (HTTP, long-polling, WebSocket, SSE). A connection
    /// beyond it is answered 503 with `Retry-After: 1` and closed, instead of `accept` failing
    /// for want of file descriptors. Unset: the open-file limit less 256 (for the database,
    /// Redis, logs and the refusals themselves).
    #[arg(long, env = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Events older than this are pruned from the replay log.
    #[arg(long, env = "EVENT_RETENTION_SECONDS", default_value_t = 86_400)]
    pub event_retention_seconds: u64,

    /// At most this many events per workspace stay in the replay log.
    #[arg(long, env = "EVENT_RETENTION_COUNT", default_value_t = 100_000)]
    pub event_retention_count: i64,

    /// How long `delivered` and `dead` notifications (with their attempts) are kept; pending and
    /// failed ones stay until they settle.
    #[arg(
        long,
        env = "NOTIFICATION_RETENTION_SECONDS",
        default_value_t = 604_800
    )]
    pub notification_retention_seconds: u64,

    /// How often the replay log and settled notifications are pruned.
    #[arg(long, env = "EVENT_PRUNE_INTERVAL_SECONDS", default_value_t = 60)]
    pub event_prune_interval_seconds: u64,

    /// Interval of SSE keep-alive comments.
    #[arg(long, env = "SSE_KEEPALIVE_SECONDS", default_value_t = 15)]
    pub sse_keepalive_seconds: u64,

    /// Packets queued per socket before it counts as a slow consumer.
    #[arg(long, env = "SOCKET_BUFFER", default_value_t = 1024)]
    pub socket_buffer: usize,

    /// Worker threads of the runtime that Socket.IO connections and the fan-out run on, apart from
    /// the one serving requests (see Architecture); `0` runs everything on one runtime.
    #[arg(long, env = "REALTIME_THREADS")]
    pub realtime_threads: Option<usize>,

    /// How many nice steps below the process the realtime threads run (Linux), so that when the CPU
    /// is short, event delivery waits rather than requests. `0` keeps them equal.
    #[arg(long, env = "REALTIME_NICE", default_value_t = 5)]
    pub realtime_nice: i32,

    /// HS256 secret for bearer tokens, see Auth. Its value is never printed.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// If set, tokens must carry this `iss`.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// If set, tokens must carry this `aud`.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Socket.IO event sets, comma-separated: `default`, `node`, `flask`; see Event styles.
    #[arg(
        long,
        env = "EVENT_STYLE",
        value_enum,
        value_delimiter = ',',
        default_value = "default"
    )]
    pub event_style: Vec<EventStyle>,

    /// Socket commands per second each connection may keep up once its burst is spent; `0` =
    /// unlimited. Over the limit a command gets a `rate_limited` ack and is not run.
    #[arg(long, env = "SOCKET_RATE_LIMIT", default_value_t = 20)]
    pub socket_rate_limit: u32,

    /// Socket commands a connection may send at once before `SOCKET_RATE_LIMIT` applies (at
    /// least 1); large enough for a tab that joins or moves a couple of hundred tasks at once.
    #[arg(
        long,
        env = "SOCKET_RATE_BURST",
        default_value_t = 200,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub socket_rate_burst: u32,

    /// REST writes (`POST`, `PUT`, `PATCH`, `DELETE`, `/update_task`) per second a caller may keep
    /// up once its burst is spent; `0` = unlimited. Over the limit: 429 `rate_limited` with
    /// `Retry-After`. Reads are not limited. See Rate limits.
    #[arg(long, env = "REST_RATE_LIMIT", default_value_t = 100)]
    pub rest_rate_limit: u32,

    /// REST writes a caller may make at once before `REST_RATE_LIMIT` applies (at least 1); large
    /// enough for one user's bulk script.
    #[arg(
        long,
        env = "REST_RATE_BURST",
        default_value_t = 2000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub rest_rate_burst: u32,

    /// Who shares one REST write budget: `user` (workspace + token `sub`; with auth off nothing is
    /// limited) or `ip` (client address, IPv6 by /64).
    #[arg(long, env = "REST_RATE_LIMIT_BY", value_enum, default_value_t = RateLimitBy::User)]
    pub rest_rate_limit_by: RateLimitBy,

    /// Proxies whose forwarding header gives the client address for `REST_RATE_LIMIT_BY=ip`:
    /// comma-separated addresses or CIDR ranges. Unset: forwarding headers are ignored. An invalid
    /// entry stops start-up.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpRange>,

    /// The header trusted proxies write the client address into: `x-forwarded-for` or `forwarded`
    /// (RFC 7239). The other one is never read.
    #[arg(
        long,
        env = "FORWARDED_HEADER",
        value_enum,
        default_value_t = ForwardedHeader::XForwardedFor
    )]
    pub forwarded_header: ForwardedHeader,

    /// Serve the web board at `/`. Set `false` when embedding taskwire in an app that has its own
    /// `/`.
    #[arg(long, env = "BOARD", default_value_t = true, action = clap::ArgAction::Set)]
    pub board: bool,

    /// Webhook receivers, comma-separated `http(s)` URLs; every change is POSTed to each.
    #[arg(long, env = "WEBHOOK_URL", value_delimiter = ',')]
    pub webhook_url: Vec<String>,

    /// Signing key, `whsec_<base64>` (Standard Webhooks). Unset: webhooks go out unsigned, with a
    /// warning at start-up.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,

    /// Longest a webhook request may take; a timeout is retried.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECONDS", default_value_t = 10)]
    pub webhook_timeout_seconds: u64,

    /// `smtps://user:password@host[:465]` (TLS), `smtp://user:password@host[:587]?tls=required`
    /// (STARTTLS; `tls=starttls` is the same) or `smtp://host[:25]` (plain, for a local relay);
    /// user and password percent-encoded. See Notifications.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<Secret>,

    /// PEM file of CA certificates trusted for the SMTP server besides the system's, for a relay
    /// with a private CA. Read at start-up; a missing or invalid file stops start-up. Only with a
    /// TLS `SMTP_URL`.
    #[arg(long, env = "SMTP_CA_FILE")]
    pub smtp_ca_file: Option<std::path::PathBuf>,

    /// Sender of notification e-mails.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "taskwire <taskwire@localhost>"
    )]
    pub mail_from: String,

    /// Attempts before a notification is `dead`.
    #[arg(long, env = "NOTIFY_MAX_ATTEMPTS", default_value_t = 8)]
    pub notify_max_attempts: u32,

    /// Notifications sent at the same time.
    #[arg(long, env = "NOTIFY_CONCURRENCY", default_value_t = 8)]
    pub notify_concurrency: usize,

    /// Waits before the 2nd, 3rd, … attempt; the last value repeats; each wait varies by ±20 %.
    #[arg(
        long,
        env = "NOTIFY_BACKOFF_SECONDS",
        value_delimiter = ',',
        default_value = "5,30,120,600,3600"
    )]
    pub notify_backoff_seconds: Vec<u64>,

    /// Safety-net poll of the outbox; commits wake the dispatcher at once.
    #[arg(long, env = "NOTIFY_POLL_SECONDS", default_value_t = 5)]
    pub notify_poll_seconds: u64,

    /// How long an attempt holds its notification; if the process dies mid-send, another attempt
    /// starts after this. At least the webhook timeout + 5 s.
    #[arg(long, env = "NOTIFY_LEASE_SECONDS", default_value_t = 60)]
    pub notify_lease_seconds: u64,

    /// Jobs running at once in this process; more wait in the queue.
    #[arg(long, env = "TASK_MAX_WORKERS", default_value_t = 4)]
    pub task_max_workers: usize,

    /// A job running longer is stopped as `timed_out`.
    #[arg(long, env = "TASK_TIMEOUT_SECONDS", default_value_t = 300)]
    pub task_timeout_seconds: u64,

    /// How often finished jobs past their retention are removed.
    #[arg(long, env = "TASK_CLEANUP_INTERVAL_SECONDS", default_value_t = 600)]
    pub task_cleanup_interval_seconds: u64,

    /// How long a finished job and its result file (in the database) are kept.
    #[arg(long, env = "JOB_RETENTION_SECONDS", default_value_t = 86_400)]
    pub job_retention_seconds: u64,

    /// Scratch folder where a running job writes its result file (exports) before it is stored in
    /// the database; created if missing. Files here are unlinked as soon as they are created, so it
    /// stays empty; processes need not share it.
    #[arg(long, env = "JOB_RESULT_DIR", default_value = "taskwire-results")]
    pub job_result_dir: std::path::PathBuf,

    /// Largest body `POST /api/jobs` accepts (imports), in bytes; larger is 413.
    #[arg(long, env = "JOB_UPLOAD_LIMIT", default_value_t = 33_554_432)]
    pub job_upload_limit: usize,

    /// A running job renews its claim this often; three missed renewals mean its process died.
    #[arg(long, env = "JOB_HEARTBEAT_SECONDS", default_value_t = 10)]
    pub job_heartbeat_seconds: u64,

    /// The longest graceful shutdown waits for in-flight work.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECONDS", default_value_t = 10)]
    pub shutdown_timeout_seconds: u64,
}

impl Settings {
    /// Settings with every default except what the environment sets (as if the binary ran
    /// with no flags); handy for tests and for apps that embed taskwire.
    pub fn defaults() -> Self {
        Cli::parse_from(["taskwire"]).settings
    }

    /// Database connection timeout as a [`Duration`].
    pub fn database_timeout(&self) -> Duration {
        Duration::from_secs(self.database_timeout_seconds)
    }

    /// The connection limit: the setting, or what the open-file limit leaves room for.
    pub fn connection_limit(&self) -> usize {
        self.max_connections.unwrap_or_else(|| {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit only writes the struct it is given.
            let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
            let files = if ok { limit.rlim_cur } else { 1024 };
            usize::try_from(files)
                .unwrap_or(usize::MAX)
                .saturating_sub(256)
                .max(16)
        })
    }

    /// Request timeout as a [`Duration`].
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_seconds)
    }

    /// Worker threads of the realtime runtime: the setting, or one per CPU.
    pub fn realtime_threads(&self) -> usize {
        self.realtime_threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// Shutdown deadline as a [`Duration`].
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_seconds)
    }
}

/// Every environment variable taskwire reads as a setting, so that a test or a tool can start
/// the binary with none of them inherited from the caller's shell.
pub fn setting_env_names() -> Vec<String> {
    use clap::CommandFactory;
    Cli::command()
        .get_arguments()
        .filter_map(|arg| arg.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

/// The settings as a Markdown table (flag, environment variable, default, meaning), generated
/// from the definitions above so that `docs/configuration.md` cannot drift from `--help`.
pub fn settings_table() -> String {
    use clap::CommandFactory;
    let mut out = String::from("| Flag | Env var | Default | Meaning |\n|---|---|---|---|\n");
    for arg in Cli::command().get_arguments() {
        let Some(long) = arg.get_long() else {
            continue;
        };
        if matches!(long, "help" | "version") {
            continue;
        }
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_default();
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = if defaults.is_empty() {
            "unset".to_owned()
        } else {
            format!("`{}`", defaults.join(","))
        };
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace('|', "\\|");
        out.push_str(&format!("| `--{long}` | {env} | {default} | {help} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_spec() {
        let s = Settings::defaults();
        assert_eq!(s.port, 5000);
        assert_eq!(s.host.to_string(), "127.0.0.1");
        assert_eq!(s.database_url, "sqlite://taskwire.db");
        let mut with_password = s.clone();
        with_password.database_url = "postgres://app:s3cret@db/tasks".into();
        let shown = format!("{with_password:?}");
        assert!(shown.contains("postgres://app:***@db/tasks"), "{shown}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert_eq!(s.body_limit, 1_048_576);
        assert!(s.frontend_url.is_empty());
        assert_eq!(s.event_style, vec![EventStyle::Default]);
    }

    #[test]
    fn event_styles_combine() {
        let cli = Cli::parse_from(["taskwire", "--event-style", "default,node"]);
        assert_eq!(
            cli.settings.event_style,
            vec![EventStyle::Default, EventStyle::Node]
        );
    }

    #[test]
    fn the_secret_is_not_printed() {
        let cli = Cli::parse_from(["taskwire", "--jwt-secret", "hunter2"]);
        assert!(!format!("{:?}", cli.settings).contains("hunter2"));
    }

    #[test]
    fn rest_limits_default_to_per_user_with_a_burst_for_bulk_scripts() {
        let s = Settings::defaults();
        assert_eq!(s.rest_rate_limit, 100);
        assert_eq!(s.rest_rate_burst, 2000);
        assert_eq!(s.rest_rate_limit_by, RateLimitBy::User);
        assert!(s.trusted_proxies.is_empty());
        assert_eq!(s.forwarded_header, ForwardedHeader::XForwardedFor);
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let cli = Cli::parse_from([
            "taskwire",
            "--trusted-proxies",
            "10.0.0.0/8, 192.168.1.7,::1,fd00::/8",
        ]);
        let ranges = cli.settings.trusted_proxies;
        assert_eq!(ranges.len(), 4);
        assert!(ranges[0].contains("10.20.30.40".parse().unwrap()));
        assert!(!ranges[0].contains("11.0.0.1".parse().unwrap()));
        assert!(ranges[1].contains("192.168.1.7".parse().unwrap()));
        assert!(!ranges[1].contains("192.168.1.8".parse().unwrap()));
        assert!(ranges[2].contains("::1".parse().unwrap()));
        assert!(ranges[3].contains("fd12::9".parse().unwrap()));
        assert!(
            ranges[0].contains("::ffff:10.1.2.3".parse().unwrap()),
            "an IPv4-mapped peer is its IPv4 address"
        );
    }

    #[test]
    fn an_invalid_trusted_proxy_is_refused_with_the_entry_named() {
        for bad in ["10.0.0.300", "10.0.0.0/33", "proxy.internal", "10.0.0.1,,"] {
            let err = Cli::try_parse_from(["taskwire", "--trusted-proxies", bad])
                .expect_err(bad)
                .to_string();
            assert!(err.contains("--trusted-proxies"), "{bad}: {err}");
            assert!(
                err.contains("not an IP address or CIDR range"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_zero_burst_is_refused() {
        assert!(Cli::try_parse_from(["taskwire", "--rest-rate-burst", "0"]).is_err());
        assert!(Cli::try_parse_from(["taskwire", "--socket-rate-burst", "0"]).is_err());
    }

    #[test]
    fn socket_limits_default_to_a_burst_for_bulk_moves() {
        let s = Settings::defaults();
        assert_eq!(s.socket_rate_limit, 20);
        assert_eq!(s.socket_rate_burst, 200);
    }

    #[test]
    fn frontend_url_is_split_on_commas() {
        let cli = Cli::parse_from(["taskwire", "--frontend-url", "http://a.test,http://b.test"]);
        assert_eq!(
            cli.settings.frontend_url,
            vec!["http://a.test", "http://b.test"]
        );
    }
}

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

    /// Port to listen on (0 picks a free port and prints it).
    #[arg(long, env = "PORT", default_value_t = 5000)]
    pub port: u16,

    /// Database: `sqlite://path.db` (created if missing) or `postgres://…`.
    // The value is not shown in `--help`: a Postgres URL may carry a password.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://taskwire.db",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Redis for running several processes as one (`redis://host:6379`); needs a Postgres
    /// `DATABASE_URL`. Unset: one process.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,

    /// Prefix of every Redis key and channel, so several deployments can share one Redis.
    #[arg(long, env = "REDIS_PREFIX", default_value = "taskwire")]
    pub redis_prefix: String,

    /// Most database connections to hold open (readers on SQLite; SQLite always has one writer).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,

    /// Longest wait for a Postgres connection, in seconds: start-up gives up after trying
    /// this long, and while running a request that cannot get one answers 503.
    #[arg(
        long,
        env = "DATABASE_TIMEOUT_SECONDS",
        default_value_t = crate::store::DEFAULT_TIMEOUT_SECONDS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub database_timeout_seconds: u64,

    /// Allowed CORS origins, comma-separated exact origins, or `*`. Unset: same-origin only.
    #[arg(long, env = "FRONTEND_URL", value_delimiter = ',')]
    pub frontend_url: Vec<String>,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Log filter in `RUST_LOG` syntax.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Largest accepted request body in bytes (REST and Socket.IO messages).
    #[arg(long, env = "BODY_LIMIT", default_value_t = 1_048_576)]
    pub body_limit: usize,

    /// Longest a REST request may take before it is answered 408, in seconds.
    #[arg(long, env = "REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,

    /// Events older than this are pruned from the replay log, in seconds.
    #[arg(long, env = "EVENT_RETENTION_SECONDS", default_value_t = 86_400)]
    pub event_retention_seconds: u64,

    /// At most this many events per workspace are kept in the replay log.
    #[arg(long, env = "EVENT_RETENTION_COUNT", default_value_t = 100_000)]
    pub event_retention_count: i64,

    /// How long `delivered` and `dead` notifications (and their attempts) are kept, in
    /// seconds; pending and failed ones are kept until they settle.
    #[arg(
        long,
        env = "NOTIFICATION_RETENTION_SECONDS",
        default_value_t = 604_800
    )]
    pub notification_retention_seconds: u64,

    /// How often the replay log and settled notifications are pruned, in seconds.
    #[arg(long, env = "EVENT_PRUNE_INTERVAL_SECONDS", default_value_t = 60)]
    pub event_prune_interval_seconds: u64,

    /// Interval of SSE keep-alive comments, in seconds.
    #[arg(long, env = "SSE_KEEPALIVE_SECONDS", default_value_t = 15)]
    pub sse_keepalive_seconds: u64,

    /// Packets queued per socket before it counts as a slow consumer.
    #[arg(long, env = "SOCKET_BUFFER", default_value_t = 1024)]
    pub socket_buffer: usize,

    /// Worker threads of the runtime Socket.IO connections and fan-out run on, apart from the
    /// one serving requests; 0 runs them on the request runtime. Default: one per CPU.
    #[arg(long, env = "REALTIME_THREADS")]
    pub realtime_threads: Option<usize>,

    /// How many nice steps below the process the realtime threads run, so that under CPU
    /// pressure event delivery waits rather than requests.
    #[arg(long, env = "REALTIME_NICE", default_value_t = 5)]
    pub realtime_nice: i32,

    /// HS256 secret for bearer tokens. Unset: no auth (development only; a warning is logged).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// Required `iss` claim, if set.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim, if set.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Socket.IO event sets to emit, comma-separated: `default`, `node`, `flask`.
    #[arg(
        long,
        env = "EVENT_STYLE",
        value_enum,
        value_delimiter = ',',
        default_value = "default"
    )]
    pub event_style: Vec<EventStyle>,

    /// Socket commands each connection may send per second (burst the same); 0 = unlimited.
    #[arg(long, env = "SOCKET_RATE_LIMIT", default_value_t = 20)]
    pub socket_rate_limit: u32,

    /// REST writes per second each caller may keep up once its burst is spent; 0 = unlimited.
    /// Who a caller is: REST_RATE_LIMIT_BY.
    #[arg(long, env = "REST_RATE_LIMIT", default_value_t = 100)]
    pub rest_rate_limit: u32,

    /// REST writes a caller may make at once before REST_RATE_LIMIT applies; large enough that
    /// a bulk script of one user is not cut off.
    #[arg(
        long,
        env = "REST_RATE_BURST",
        default_value_t = 2000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub rest_rate_burst: u32,

    /// Who shares one REST write budget: `user` (workspace + token `sub`; nothing is limited
    /// with auth off) or `ip` (client address, see TRUSTED_PROXIES).
    #[arg(long, env = "REST_RATE_LIMIT_BY", value_enum, default_value_t = RateLimitBy::User)]
    pub rest_rate_limit_by: RateLimitBy,

    /// Proxies whose forwarding header gives the client address for REST_RATE_LIMIT_BY=ip,
    /// comma-separated addresses or CIDR ranges. Unset: the peer address is the client.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpRange>,

    /// The header trusted proxies write the client address into: `x-forwarded-for` or
    /// `forwarded` (RFC 7239). The other one is ignored.
    #[arg(
        long,
        env = "FORWARDED_HEADER",
        value_enum,
        default_value_t = ForwardedHeader::XForwardedFor
    )]
    pub forwarded_header: ForwardedHeader,

    /// Serve the web board at `/` (turn off when embedding taskwire under an app that owns `/`).
    #[arg(long, env = "BOARD", default_value_t = true, action = clap::ArgAction::Set)]
    pub board: bool,

    /// Webhook receivers, comma-separated URLs; each change is POSTed to every one.
    #[arg(long, env = "WEBHOOK_URL", value_delimiter = ',')]
    pub webhook_url: Vec<String>,

    /// Webhook signing key in Standard Webhooks form, `whsec_<base64>`.
    #[arg(long, env = "WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<Secret>,

    /// Longest a webhook request may take, in seconds.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECONDS", default_value_t = 10)]
    pub webhook_timeout_seconds: u64,

    /// SMTP server for e-mail notifications: `smtps://user:pass@host:465` (TLS),
    /// `smtp://user:pass@host:587?tls=required` (STARTTLS) or `smtp://host:25` (plain, for a
    /// local relay). Unset: no e-mail.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<Secret>,

    /// PEM file of CA certificates trusted for the SMTP server besides the system's, for a
    /// relay with a private CA. Read once at start-up.
    #[arg(long, env = "SMTP_CA_FILE")]
    pub smtp_ca_file: Option<std::path::PathBuf>,

    /// Sender of notification e-mails.
    #[arg(
        long,
        env = "MAIL_FROM",
        default_value = "taskwire <taskwire@localhost>"
    )]
    pub mail_from: String,

    /// Attempts per notification before it is `dead`.
    #[arg(long, env = "NOTIFY_MAX_ATTEMPTS", default_value_t = 8)]
    pub notify_max_attempts: u32,

    /// Notifications sent at the same time.
    #[arg(long, env = "NOTIFY_CONCURRENCY", default_value_t = 8)]
    pub notify_concurrency: usize,

    /// Waits before retries, in seconds, comma-separated; the last repeats. ±20 % jitter.
    #[arg(
        long,
        env = "NOTIFY_BACKOFF_SECONDS",
        value_delimiter = ',',
        default_value = "5,30,120,600,3600"
    )]
    pub notify_backoff_seconds: Vec<u64>,

    /// Safety-net poll of the outbox, in seconds (commits wake the dispatcher at once).
    #[arg(long, env = "NOTIFY_POLL_SECONDS", default_value_t = 5)]
    pub notify_poll_seconds: u64,

    /// How long an attempt holds its notification before another may retry it, in seconds.
    #[arg(long, env = "NOTIFY_LEASE_SECONDS", default_value_t = 60)]
    pub notify_lease_seconds: u64,

    /// Jobs that run at the same time in this process; more wait in the queue.
    #[arg(long, env = "TASK_MAX_WORKERS", default_value_t = 4)]
    pub task_max_workers: usize,

    /// Longest a job may run before it is stopped as `timed_out`, in seconds.
    #[arg(long, env = "TASK_TIMEOUT_SECONDS", default_value_t = 300)]
    pub task_timeout_seconds: u64,

    /// How often finished jobs past their retention are removed, in seconds.
    #[arg(long, env = "TASK_CLEANUP_INTERVAL_SECONDS", default_value_t = 600)]
    pub task_cleanup_interval_seconds: u64,

    /// How long a finished job and its result file are kept, in seconds.
    #[arg(long, env = "JOB_RETENTION_SECONDS", default_value_t = 86_400)]
    pub job_retention_seconds: u64,

    /// Scratch folder for a running job's result file (exports), which is stored in the
    /// database once the job succeeds; created if missing, need not be shared.
    #[arg(long, env = "JOB_RESULT_DIR", default_value = "taskwire-results")]
    pub job_result_dir: std::path::PathBuf,

    /// Largest upload accepted by `POST /api/jobs` (imports), in bytes.
    #[arg(long, env = "JOB_UPLOAD_LIMIT", default_value_t = 33_554_432)]
    pub job_upload_limit: usize,

    /// A running job renews its claim this often; a claim not renewed for three times this
    /// long means its process died, and the job is marked `interrupted`. In seconds.
    #[arg(long, env = "JOB_HEARTBEAT_SECONDS", default_value_t = 10)]
    pub job_heartbeat_seconds: u64,

    /// How long a graceful shutdown waits for in-flight work before giving up, in seconds.
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

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
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://taskwire.db")]
    pub database_url: String,

    /// Most database connections to hold open (readers on SQLite; SQLite always has one writer).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 8)]
    pub database_max_connections: u32,

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

    /// How often the replay log is pruned, in seconds.
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

    /// REST writes per second per user (or per IP without auth), burst the same; 0 = unlimited.
    #[arg(long, env = "REST_RATE_LIMIT", default_value_t = 100)]
    pub rest_rate_limit: u32,

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

    /// Where job result files (exports) are written; created if missing.
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
    fn frontend_url_is_split_on_commas() {
        let cli = Cli::parse_from(["taskwire", "--frontend-url", "http://a.test,http://b.test"]);
        assert_eq!(
            cli.settings.frontend_url,
            vec!["http://a.test", "http://b.test"]
        );
    }
}

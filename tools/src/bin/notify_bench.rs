//! Does notification work touch request latency? Runs taskwire in-process on a fresh SQLite
//! database, alternately with notifications off and with `WEBHOOK_URL` pointing at an
//! in-process receiver that takes 2 s per request, for `--rounds` rounds. Each run sends PATCH
//! `/api/tasks/{id}` at a fixed rate (open loop: each request starts at its scheduled time and
//! its latency is measured from that time). It prints both latency distributions (pooled over
//! the rounds, since the p99 of one 10-second run is only its 20th-slowest request), the ratio
//! of their p99s, and the outbox backlog left by the slow receiver with its drain rate.
//!
//! A stall probe (`tools/src/stall_probe.rs`) notes when the machine itself froze (a virtual CPU
//! descheduled by the host); figures are printed as measured and, beside them, without the
//! requests that were in flight during a freeze, since no server can answer while frozen.
//! Requests slower than `--episode-ms` are grouped into episodes, each with what could explain
//! it: a machine freeze, the shared tokio runtime running late, and the kernel's pressure stall
//! counters for CPU, disk and memory over the same window (`tools/src/pressure.rs`).
//!
//! Run: `cargo run --release -p taskwire-tools --bin notify_bench` (add `-- --json` for one JSON object,
//! `-- --help` for the knobs). Loopback only; bounded in time (about rounds × 2 × seconds + drain).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use clap::Parser;
use serde_json::{Value, json};
use taskwire::domain::notification::Status;
use taskwire::store::Store;
use taskwire::{Application, Settings};
use tokio::sync::{Semaphore, oneshot};

use taskwire_tools::keep_awake::KeepAwake;
use taskwire_tools::pressure::{Pressure, PressureProbe};
use taskwire_tools::stall_probe::{StallProbe, Totals};

/// Nanoseconds on the benchmark's time line, shared with the stall probe.
fn now_ns() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// REST update latency with notifications off vs. going to a slow webhook receiver.
#[derive(Parser, Debug, Clone)]
struct Args {
    /// Updates per second.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Seconds of load per run.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Tasks the updates are spread over.
    #[arg(long, default_value_t = 100)]
    tasks: usize,
    /// How long the receiver takes per request, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    receiver_delay_ms: u64,
    /// Requests the receiver works on at once (more wait their turn).
    #[arg(long, default_value_t = 16)]
    receiver_concurrency: usize,
    /// NOTIFY_CONCURRENCY for taskwire.
    #[arg(long, default_value_t = 8)]
    notify_concurrency: usize,
    /// Rounds of (off, slow receiver), alternated so drift on the machine hits both alike;
    /// the latencies of all rounds are pooled per configuration.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds to watch the backlog drain after the slow run.
    #[arg(long, default_value_t = 5)]
    drain_seconds: u64,
    /// Let idle CPUs halt (by default idle-priority spinners keep them running, see
    /// `support/keep_awake.rs`).
    #[arg(long)]
    let_cpus_idle: bool,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Requests slower than this (ms) are reported as episodes, with what the machine and the
    /// runtime were doing meanwhile.
    #[arg(long, default_value_t = 250)]
    episode_ms: u64,
}

/// Windows in which the benchmark's own tokio runtime ran a 5 ms timer more than 25 ms late:
/// its worker threads were busy or blocked. Unlike a machine freeze, this points inside the
/// process (the server, the load, the receiver all share the runtime).
type Late = Arc<std::sync::Mutex<Vec<(u64, u64)>>>;

fn runtime_probe() -> Late {
    let late: Late = Arc::default();
    let out = late.clone();
    tokio::spawn(async move {
        loop {
            let from = now_ns();
            tokio::time::sleep(Duration::from_millis(5)).await;
            let to = now_ns();
            if to - from > 25_000_000 {
                out.lock().expect("never poisoned").push((from, to));
            }
        }
    });
    late
}

/// A burst of slow requests that overlap in time, and what else happened in that window.
#[derive(Debug)]
struct Episode {
    config: &'static str,
    round: u32,
    from_ns: u64,
    to_ns: u64,
    requests: usize,
    worst_ms: f64,
    machine_freeze: bool,
    runtime_late_ms: f64,
    pressure: Pressure,
    /// Threads of the benchmark seen waiting in the kernel (state D), with sample counts.
    blocked: Vec<(String, usize)>,
}

impl Episode {
    fn json(&self, run_start_ns: u64) -> Value {
        json!({
            "config": self.config,
            "round": self.round,
            "at_s": (self.from_ns.saturating_sub(run_start_ns)) as f64 / 1e9,
            "length_ms": (self.to_ns - self.from_ns) as f64 / 1e6,
            "requests": self.requests,
            "worst_ms": self.worst_ms,
            "machine_freeze": self.machine_freeze,
            "runtime_late_ms": self.runtime_late_ms,
            "pressure_ms": {
                "cpu_some": self.pressure.cpu_some_us as f64 / 1e3,
                "io_some": self.pressure.io_some_us as f64 / 1e3,
                "io_full": self.pressure.io_full_us as f64 / 1e3,
                "memory_full": self.pressure.memory_full_us as f64 / 1e3,
            },
            "blocked_threads": self.blocked.iter().map(|(w, n)| json!({"thread": w, "samples": n})).collect::<Vec<_>>(),
        })
    }
}

/// What each window was for the episode report.
struct Witnesses<'a> {
    probe: &'a StallProbe,
    late: &'a Late,
    pressure: Option<&'a PressureProbe>,
}

/// Groups the requests slower than `threshold` into episodes of overlapping windows.
fn episodes(
    sample: &Sample,
    threshold: Duration,
    config: &'static str,
    round: u32,
    w: &Witnesses<'_>,
) -> Vec<Episode> {
    let mut slow: Vec<(u64, u64, f64)> = sample
        .latencies
        .iter()
        .filter(|(_, l)| *l > threshold)
        .map(|(at, l)| (*at, at + l.as_nanos() as u64, l.as_secs_f64() * 1e3))
        .collect();
    slow.sort_by_key(|s| s.0);
    let mut out: Vec<Episode> = Vec::new();
    for (from, to, ms) in slow {
        match out.last_mut() {
            Some(e) if from <= e.to_ns => {
                e.to_ns = e.to_ns.max(to);
                e.requests += 1;
                e.worst_ms = e.worst_ms.max(ms);
            }
            _ => out.push(Episode {
                config,
                round,
                from_ns: from,
                to_ns: to,
                requests: 1,
                worst_ms: ms,
                machine_freeze: false,
                runtime_late_ms: 0.0,
                pressure: Pressure::default(),
                blocked: Vec::new(),
            }),
        }
    }
    let late = w.late.lock().expect("never poisoned");
    for e in &mut out {
        e.machine_freeze = w.probe.overlaps(e.from_ns, e.to_ns);
        e.runtime_late_ms = late
            .iter()
            .filter(|(a, b)| *a <= e.to_ns && e.from_ns <= *b)
            .map(|(a, b)| (b - a) as f64 / 1e6)
            .fold(0.0, f64::max);
        if let Some(p) = w.pressure {
            e.pressure = p.between(e.from_ns, e.to_ns);
            e.blocked = p.blocked_between(e.from_ns, e.to_ns);
        }
    }
    out
}

/// Latency summary of one run, in milliseconds.
#[derive(Debug, Clone)]
struct Summary {
    count: usize,
    errors: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Summary {
    fn of(mut latencies: Vec<Duration>, errors: usize) -> Summary {
        latencies.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let at = |q: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            // Nearest rank, as HdrHistogram reports it.
            let rank = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
            ms(latencies[rank - 1])
        };
        let mean = if latencies.is_empty() {
            0.0
        } else {
            latencies.iter().map(|d| ms(*d)).sum::<f64>() / latencies.len() as f64
        };
        Summary {
            count: latencies.len(),
            errors,
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: latencies.last().map_or(0.0, |d| ms(*d)),
            mean,
        }
    }

    fn json(&self) -> Value {
        json!({
            "count": self.count, "errors": self.errors, "p50_ms": self.p50, "p90_ms": self.p90,
            "p99_ms": self.p99, "max_ms": self.max, "mean_ms": self.mean,
        })
    }
}

/// What the slow receiver saw and what the outbox held.
#[derive(Debug, Clone, Default)]
struct Backlog {
    pending: i64,
    failed: i64,
    delivered: i64,
    dead: i64,
    received_during_load: u64,
    drained_per_second: f64,
}

impl Backlog {
    fn json(&self) -> Value {
        let open = self.pending + self.failed;
        json!({
            "pending": self.pending, "failed": self.failed, "delivered": self.delivered,
            "dead": self.dead, "received_during_load": self.received_during_load,
            "drained_per_second": self.drained_per_second,
            "seconds_to_drain": (self.drained_per_second > 0.0)
                .then(|| open as f64 / self.drained_per_second),
        })
    }
}

/// A webhook receiver that answers 200 after `delay`, working on at most `concurrency`
/// requests at once.
async fn slow_receiver(delay: Duration, concurrency: usize) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(AtomicU64::new(0));
    let slots = Arc::new(Semaphore::new(concurrency));
    let count = answered.clone();
    let app = Router::new().fallback(move || {
        let (slots, count) = (slots.clone(), count.clone());
        async move {
            let _slot = slots.acquire().await.unwrap();
            tokio::time::sleep(delay).await;
            count.fetch_add(1, Ordering::Relaxed);
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, answered)
}

struct Running {
    base: String,
    db_url: String,
    stop: oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

async fn start(webhook: Option<SocketAddr>, args: &Args) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::defaults();
    settings.port = 0;
    settings.host = "127.0.0.1".parse().unwrap();
    settings.database_url = format!("sqlite://{}/bench.db", dir.path().display()).into();
    settings.rest_rate_limit = 0;
    settings.shutdown_timeout_seconds = 1;
    settings.jwt_secret = None;
    settings.smtp_url = None;
    settings.webhook_url = webhook
        .map(|a| vec![format!("http://{a}/hook")])
        .unwrap_or_default();
    settings.webhook_secret = Some(
        "whsec_dGFza3dpcmUgYmVuY2ggc2VjcmV0IGtleQ=="
            .parse()
            .unwrap(),
    );
    settings.notify_concurrency = args.notify_concurrency;
    let db_url = settings.database_url.to_string();
    let app = Application::build(settings).await.expect("taskwire starts");
    let base = format!("http://{}", app.local_addr());
    let (stop, rx) = oneshot::channel();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    Running {
        base,
        db_url,
        stop,
        server,
        _dir: dir,
    }
}

/// Latencies of the successful requests of one run (with when each was scheduled, on the
/// [`now_ns`] time line), and how many failed.
#[derive(Default)]
struct Sample {
    latencies: Vec<(u64, Duration)>,
    errors: usize,
}

impl Sample {
    fn summary(&self) -> Summary {
        Summary::of(
            self.latencies.iter().map(|(_, l)| *l).collect(),
            self.errors,
        )
    }

    /// The requests that were not in flight during a machine freeze.
    fn outside_freezes(&self, probe: &StallProbe) -> Sample {
        Sample {
            latencies: self
                .latencies
                .iter()
                .filter(|(at, l)| !probe.overlaps(*at, at + l.as_nanos() as u64))
                .copied()
                .collect(),
            errors: self.errors,
        }
    }

    fn add(&mut self, other: &Sample) {
        self.latencies.extend_from_slice(&other.latencies);
        self.errors += other.errors;
    }
}

/// Creates the tasks, then sends `rate × seconds` updates open-loop.
async fn load(base: &str, args: &Args) -> Sample {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let mut ids = Vec::with_capacity(args.tasks);
    for i in 0..args.tasks {
        let task: Value = http
            .post(format!("{base}/api/tasks"))
            .json(&json!({"title": format!("bench task {i}")}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(task["id"].as_str().unwrap().to_owned());
    }
    let total = args.rate as usize * args.seconds as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let begin = Instant::now() + Duration::from_millis(100);
    let mut handles = Vec::with_capacity(total);
    for i in 0..total {
        let scheduled = begin + interval * i as u32;
        tokio::time::sleep_until(scheduled.into()).await;
        let request = http
            .patch(format!("{base}/api/tasks/{}", ids[i % ids.len()]))
            .json(&json!({"description": format!("update {i}")}));
        let at_ns = now_ns().saturating_sub(scheduled.elapsed().as_nanos() as u64);
        handles.push(tokio::spawn(async move {
            let ok = matches!(request.send().await, Ok(r) if r.status().is_success());
            (at_ns, scheduled.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    for handle in handles {
        let (at_ns, latency, ok) = handle.await.unwrap();
        if ok {
            latencies.push((at_ns, latency));
        } else {
            errors += 1;
        }
    }
    Sample { latencies, errors }
}

async fn backlog(store: &Arc<dyn Store>) -> Backlog {
    let mut out = Backlog::default();
    for (status, n) in store.outbox().backlog().await.unwrap() {
        match status {
            Status::Pending => out.pending = n,
            Status::Failed => out.failed = n,
            Status::Delivered => out.delivered = n,
            Status::Dead => out.dead = n,
        }
    }
    out
}

async fn stop(run: Running) {
    let _ = run.stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), run.server).await;
}

/// A wake-up this late means the CPU was frozen, not busy: the probe runs at real-time
/// priority, so nothing in the benchmark delays it by more than a few hundred microseconds.
const FREEZE: Duration = Duration::from_millis(10);

/// How freezes read in the summary.
fn describe(f: &Totals) -> String {
    if f.count == 0 {
        return "none".into();
    }
    format!(
        "{} ({:.0} ms in all, longest {:.0} ms)",
        f.count, f.total_ms, f.longest_ms
    )
}

fn freezes_json(f: &Totals) -> Value {
    json!({"count": f.count, "total_ms": f.total_ms, "longest_ms": f.longest_ms})
}

fn line(name: &str, s: &Summary) -> String {
    format!(
        "{name:<15} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6}",
        s.count, s.p50, s.p90, s.p99, s.max, s.mean, s.errors
    )
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    // Settings::defaults() reads the environment; keep a stray WEBHOOK_URL etc. out of the
    // "off" run.
    for var in ["WEBHOOK_URL", "SMTP_URL", "JWT_SECRET", "DATABASE_URL"] {
        if std::env::var_os(var).is_some() {
            eprintln!("notify_bench: ignoring {var} from the environment");
        }
    }

    let delay = Duration::from_millis(args.receiver_delay_ms);
    let (receiver, answered) = slow_receiver(delay, args.receiver_concurrency).await;
    now_ns();
    let awake = if args.let_cpus_idle {
        None
    } else {
        let awake = KeepAwake::start();
        if awake.is_none() {
            eprintln!("notify_bench: could not keep the CPUs awake (SCHED_IDLE unavailable)");
        }
        awake
    };
    let probe = StallProbe::start(now_ns, FREEZE);
    let pressure = PressureProbe::start(now_ns);
    let late = runtime_probe();
    let witnesses = Witnesses {
        probe: &probe,
        late: &late,
        pressure: pressure.as_ref(),
    };
    let threshold = Duration::from_millis(args.episode_ms);
    let mut all_episodes: Vec<Value> = Vec::new();
    let mut episode_lines: Vec<String> = Vec::new();
    let mut pooled_off = Sample::default();
    let mut pooled_slow = Sample::default();
    let (mut freezes_off, mut freezes_slow) = (Totals::default(), Totals::default());
    let mut rounds = Vec::new();
    let mut after = Backlog::default();
    for round in 1..=args.rounds.max(1) {
        let off_run = start(None, &args).await;
        let off_from = now_ns();
        let off = load(&off_run.base, &args).await;
        probe.tally(off_from, now_ns(), &mut freezes_off);
        stop(off_run).await;

        let answered_before = answered.load(Ordering::Relaxed);
        let slow_run = start(Some(receiver), &args).await;
        let slow_from = now_ns();
        let slow = load(&slow_run.base, &args).await;
        probe.tally(slow_from, now_ns(), &mut freezes_slow);
        let store = taskwire::store::connect(&slow_run.db_url, 2).await.unwrap();
        after = backlog(&store).await;
        after.received_during_load = answered.load(Ordering::Relaxed) - answered_before;
        if round == args.rounds.max(1) {
            let drain_start = Instant::now();
            tokio::time::sleep(Duration::from_secs(args.drain_seconds)).await;
            let later = backlog(&store).await;
            after.drained_per_second =
                (later.delivered - after.delivered) as f64 / drain_start.elapsed().as_secs_f64();
        }
        store.close().await;
        stop(slow_run).await;
        for (config, sample, start_ns) in
            [("off", &off, off_from), ("slow receiver", &slow, slow_from)]
        {
            for e in episodes(sample, threshold, config, round, &witnesses) {
                let j = e.json(start_ns);
                episode_lines.push(format!(
                    "  round {round} {config:<13} at {:>5.1} s: {} requests over {:.0} ms, worst {:.0} ms; \
                     machine freeze {}, runtime late {:.0} ms, pressure ms cpu {} io {} (full {}) memory {}",
                    j["at_s"].as_f64().unwrap_or(0.0),
                    e.requests,
                    j["length_ms"].as_f64().unwrap_or(0.0),
                    e.worst_ms,
                    if e.machine_freeze { "yes" } else { "no" },
                    e.runtime_late_ms,
                    e.pressure.cpu_some_us / 1000,
                    e.pressure.io_some_us / 1000,
                    e.pressure.io_full_us / 1000,
                    e.pressure.memory_full_us / 1000,
                ));
                for (what, n) in e.blocked.iter().take(5) {
                    episode_lines.push(format!("      in state D {n} × 20 ms: {what}"));
                }
                all_episodes.push(j);
            }
        }
        let (o, w) = (off.summary(), slow.summary());
        if !args.json {
            eprintln!(
                "round {round}: p99 off {:.2} ms, slow receiver {:.2} ms",
                o.p99, w.p99
            );
        }
        rounds.push(json!({"off_p99_ms": o.p99, "slow_receiver_p99_ms": w.p99}));
        pooled_off.add(&off);
        pooled_slow.add(&slow);
    }
    let (off, slow) = (pooled_off.summary(), pooled_slow.summary());
    let off_clear = pooled_off.outside_freezes(&probe).summary();
    let slow_clear = pooled_slow.outside_freezes(&probe).summary();
    let ratio_of = |slow: &Summary, off: &Summary| {
        if off.p99 > 0.0 {
            slow.p99 / off.p99
        } else {
            0.0
        }
    };
    let ratio = ratio_of(&slow, &off);
    let ratio_clear = ratio_of(&slow_clear, &off_clear);
    if args.json {
        let out = json!({
            "rate_per_second": args.rate,
            "seconds": args.seconds,
            "receiver_delay_ms": args.receiver_delay_ms,
            "notify_concurrency": args.notify_concurrency,
            "cpus_kept_awake": awake.is_some(),
            "rounds": rounds,
            "off": off.json(),
            "slow_receiver": slow.json(),
            "p99_ratio": ratio,
            "machine_freezes": {
                "probe_realtime": probe.realtime,
                "threshold_ms": FREEZE.as_secs_f64() * 1000.0,
                "off": freezes_json(&freezes_off),
                "slow_receiver": freezes_json(&freezes_slow),
            },
            "outside_freezes": {
                "off": off_clear.json(),
                "slow_receiver": slow_clear.json(),
                "p99_ratio": ratio_clear,
            },
            "backlog_after_load": after.json(),
            "episodes": {"threshold_ms": args.episode_ms, "pressure_probe": pressure.is_some(), "list": all_episodes},
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
        return;
    }
    println!(
        "notify_bench: {} PATCH /api/tasks/{{id}} per run at {}/s for {} s, {} rounds pooled (SQLite, loopback, {} build, CPUs {})",
        args.rate as usize * args.seconds as usize,
        args.rate,
        args.seconds,
        args.rounds.max(1),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        if awake.is_some() {
            "kept awake"
        } else {
            "allowed to idle"
        }
    );
    println!(
        "{:<15} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}",
        "latency (ms)", "n", "p50", "p90", "p99", "max", "mean", "errors"
    );
    println!("{}", line("notifications off", &off));
    println!("{}", line("slow receiver", &slow));
    println!(
        "p99 slow/off: {ratio:.2} (target ≤ 1.2); p99 with the slow receiver: {:.2} ms (target < 10 ms)",
        slow.p99
    );
    println!(
        "machine freezes (a CPU stopped > {:.0} ms{}): {} during the runs with notifications \
         off, {} with the slow receiver",
        FREEZE.as_secs_f64() * 1000.0,
        if probe.realtime {
            ""
        } else {
            "; probe without real-time priority, run as root for a reliable count"
        },
        describe(&freezes_off),
        describe(&freezes_slow)
    );
    println!("without the requests in flight during a freeze:");
    println!("{}", line("notifications off", &off_clear));
    println!("{}", line("slow receiver", &slow_clear));
    println!(
        "p99 slow/off: {ratio_clear:.2} (target ≤ 1.2); p99 with the slow receiver: {:.2} ms (target < 10 ms)",
        slow_clear.p99
    );
    println!(
        "episodes of requests slower than {} ms: {}{}",
        args.episode_ms,
        episode_lines.len(),
        if pressure.is_none() {
            " (no /proc/pressure here)"
        } else {
            ""
        }
    );
    for l in &episode_lines {
        println!("{l}");
    }
    let open = after.pending + after.failed;
    println!(
        "outbox after the slow run: {} pending, {} failed, {} delivered, {} dead \
         (the receiver had answered {} during the load)",
        after.pending, after.failed, after.delivered, after.dead, after.received_during_load
    );
    let expected = args.notify_concurrency.min(args.receiver_concurrency) as f64
        / delay.as_secs_f64().max(0.001);
    if after.drained_per_second > 0.0 {
        println!(
            "draining at {:.1}/s over {} s (receiver pace: {expected:.1}/s) → about {:.0} s to empty",
            after.drained_per_second,
            args.drain_seconds,
            open as f64 / after.drained_per_second
        );
    } else {
        println!("nothing drained in {} s", args.drain_seconds);
    }
}

//! Who else was waiting when a request was slow. Linux's pressure stall information
//! (`/proc/pressure/{cpu,io,memory}`) counts, in microseconds, how long some task on the machine
//! waited for a CPU, for the disk, or for memory. A thread samples the three totals every
//! 20 ms; a slow request is then explained (or not) by the pressure over its own window: disk
//! waits point at the host's storage (a checkpoint's fsync, a dirty-page flush), CPU waits at
//! the host or at the benchmark itself, neither at something inside the server. The same
//! thread notes every thread of this process that it finds waiting in the kernel
//! uninterruptibly (state `D`: disk or file-system waits), with the top of its kernel stack
//! (`/proc/self/task/*/stack`, readable as root), which names what it waited for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Microseconds of stall, over some window, from `/proc/pressure`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Pressure {
    /// Some task waited for a CPU.
    pub cpu_some_us: u64,
    /// Some task waited for the disk.
    pub io_some_us: u64,
    /// Every non-idle task waited for the disk.
    pub io_full_us: u64,
    /// Every non-idle task waited for memory (reclaim).
    pub memory_full_us: u64,
}

/// One sample of the running totals, at `at_ns` on the caller's clock.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ns: u64,
    totals: Pressure,
}

/// A thread of this process seen in uninterruptible sleep.
#[derive(Debug, Clone)]
struct Blocked {
    at_ns: u64,
    /// `comm: frame <- caller <- …`
    what: String,
}

/// The sampling thread and what it has read.
pub struct PressureProbe {
    samples: Arc<Mutex<Vec<Sample>>>,
    blocked: Arc<Mutex<Vec<Blocked>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The `total=` of the `some` or `full` line of one pressure file.
fn total(text: &str, kind: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(kind))
        .and_then(|l| l.rsplit("total=").next())
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

/// Threads of this process in state `D` now, each as `comm: top frames of its kernel stack`.
fn blocked_threads() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let dir = task.path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // `pid (comm) S …`: the state follows the last parenthesis, comm may hold spaces.
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        if stat[close + 1..].trim_start().starts_with('D') {
            let comm = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_owned();
            let stack = std::fs::read_to_string(dir.join("stack")).unwrap_or_default();
            let frames: Vec<&str> = stack
                .lines()
                .take(4)
                .filter_map(|l| l.split_whitespace().nth(1))
                .map(|f| f.split('+').next().unwrap_or(f))
                .collect();
            out.push(format!("{comm}{}: {}", syscall(&dir), frames.join(" <- ")));
        }
    }
    out
}

/// ` in fsync(bench.db-wal)`: the system call a blocked thread is in and, for the file calls,
/// the file its first argument names (which SQLite connection it is shows in which file and
/// which call: the writer appends to the WAL, the checkpoint syncs it and the database).
fn syscall(task: &std::path::Path) -> String {
    let Ok(text) = std::fs::read_to_string(task.join("syscall")) else {
        return String::new();
    };
    let mut fields = text.split_whitespace();
    let name = match fields.next().and_then(|n| n.parse::<u32>().ok()) {
        Some(0) => "read",
        Some(1) => "write",
        Some(17) => "pread64",
        Some(18) => "pwrite64",
        Some(74) => "fsync",
        Some(75) => "fdatasync",
        Some(76) => "truncate",
        Some(77) => "ftruncate",
        Some(257) => "openat",
        Some(_) | None => return String::new(),
    };
    let file = fields
        .next()
        .and_then(|fd| u64::from_str_radix(fd.trim_start_matches("0x"), 16).ok())
        .and_then(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok())
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_default();
    format!(" in {name}({file})")
}

fn read() -> Option<Pressure> {
    let cpu = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let io = std::fs::read_to_string("/proc/pressure/io").ok()?;
    let memory = std::fs::read_to_string("/proc/pressure/memory").ok()?;
    Some(Pressure {
        cpu_some_us: total(&cpu, "some"),
        io_some_us: total(&io, "some"),
        io_full_us: total(&io, "full"),
        memory_full_us: total(&memory, "full"),
    })
}

impl PressureProbe {
    /// Starts sampling, or None where the kernel has no pressure files.
    pub fn start(clock: fn() -> u64) -> Option<PressureProbe> {
        read()?;
        let samples = Arc::new(Mutex::new(Vec::new()));
        let blocked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, b, st) = (samples.clone(), blocked.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("pressure-probe".into())
            .spawn(move || {
                while !st.load(Ordering::Relaxed) {
                    if let Some(totals) = read() {
                        let at_ns = clock();
                        s.lock()
                            .expect("probe lock is never poisoned")
                            .push(Sample { at_ns, totals });
                    }
                    let now_blocked = blocked_threads();
                    if !now_blocked.is_empty() {
                        let at_ns = clock();
                        let mut b = b.lock().expect("probe lock is never poisoned");
                        b.extend(now_blocked.into_iter().map(|what| Blocked { at_ns, what }));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
            .expect("pressure probe thread starts");
        Some(PressureProbe {
            samples,
            blocked,
            stop,
            thread: Some(thread),
        })
    }

    /// Stall accumulated from the last sample before `from_ns` to the first after `to_ns`
    /// (so the window is widened by up to 20 ms on each side).
    pub fn between(&self, from_ns: u64, to_ns: u64) -> Pressure {
        let samples = self.samples.lock().expect("probe lock is never poisoned");
        let first = samples.iter().rev().find(|s| s.at_ns <= from_ns);
        let last = samples.iter().find(|s| s.at_ns >= to_ns);
        match (first, last) {
            (Some(a), Some(b)) => Pressure {
                cpu_some_us: b.totals.cpu_some_us - a.totals.cpu_some_us,
                io_some_us: b.totals.io_some_us - a.totals.io_some_us,
                io_full_us: b.totals.io_full_us - a.totals.io_full_us,
                memory_full_us: b.totals.memory_full_us - a.totals.memory_full_us,
            },
            _ => Pressure::default(),
        }
    }
}

impl PressureProbe {
    /// The threads of this process seen in state `D` within `[from_ns, to_ns]`, each with how
    /// many 20 ms samples found it there, most often first.
    pub fn blocked_between(&self, from_ns: u64, to_ns: u64) -> Vec<(String, usize)> {
        let blocked = self.blocked.lock().expect("probe lock is never poisoned");
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for b in blocked
            .iter()
            .filter(|b| b.at_ns >= from_ns && b.at_ns <= to_ns)
        {
            *counts.entry(b.what.as_str()).or_default() += 1;
        }
        let mut out: Vec<(String, usize)> =
            counts.into_iter().map(|(w, n)| (w.to_owned(), n)).collect();
        out.sort_by_key(|b| std::cmp::Reverse(b.1));
        out
    }
}

impl Drop for PressureProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_total_of_the_asked_line() {
        let text = "some avg10=0.36 avg60=0.24 avg300=0.24 total=12525736\n\
                    full avg10=0.30 avg60=0.22 avg300=0.13 total=8547961\n";
        assert_eq!(total(text, "some"), 12_525_736);
        assert_eq!(total(text, "full"), 8_547_961);
        assert_eq!(total("", "some"), 0);
    }
}

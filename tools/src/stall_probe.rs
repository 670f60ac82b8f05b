//! Notices when the machine itself stops running us. On a virtual machine the host sometimes
//! deschedules a virtual CPU for tens of milliseconds (seen here: ~100 ms freezes every few
//! seconds under load); every request in flight then looks slow, whatever the server does, and
//! the p99 of a run becomes a measure of the host. One thread per CPU, pinned and at real-time
//! priority so nothing in the benchmark can delay it, sleeps 1 ms at a time; a wake-up more
//! than `threshold` late means that CPU was frozen, and the window is recorded. Benchmarks report
//! their figures as measured and, beside them, without the samples that overlapped a freeze.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One freeze, in the caller's clock (nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    /// When the probe went to sleep.
    pub from_ns: u64,
    /// When it woke.
    pub to_ns: u64,
}

impl Stall {
    /// Milliseconds the freeze lasted (less the 1 ms sleep).
    pub fn ms(&self) -> f64 {
        (self.to_ns - self.from_ns) as f64 / 1e6 - 1.0
    }
}

/// The running probe threads and what they saw.
pub struct StallProbe {
    stalls: Arc<Mutex<Vec<Stall>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Whether the threads got real-time priority (they do as root).
    pub realtime: bool,
}

impl StallProbe {
    /// Starts one probe per online CPU; `clock` gives nanoseconds on the
    /// caller's time line.
    pub fn start(clock: fn() -> u64, threshold: Duration) -> StallProbe {
        let stalls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let realtime = Arc::new(AtomicBool::new(true));
        let threshold_ns = threshold.as_nanos() as u64;
        let threads = online_cpus()
            .into_iter()
            .map(|cpu| {
                let (stalls, stop, realtime) = (stalls.clone(), stop.clone(), realtime.clone());
                std::thread::Builder::new()
                    .name(format!("stall-probe-{cpu}"))
                    .spawn(move || {
                        if !pin(cpu, Policy::RealTime) {
                            realtime.store(false, Ordering::Relaxed);
                        }
                        while !stop.load(Ordering::Relaxed) {
                            let from_ns = clock();
                            std::thread::sleep(Duration::from_millis(1));
                            let to_ns = clock();
                            if to_ns - from_ns > threshold_ns {
                                stalls
                                    .lock()
                                    .expect("probe lock is never poisoned")
                                    .push(Stall { from_ns, to_ns });
                            }
                        }
                    })
                    .expect("probe thread starts")
            })
            .collect();
        // Give the threads a moment to report whether they got their priority.
        std::thread::sleep(Duration::from_millis(20));
        let realtime = realtime.load(Ordering::Relaxed);
        StallProbe {
            stalls,
            stop,
            threads,
            realtime,
        }
    }

    /// Whether `[from_ns, to_ns]` overlaps a freeze seen so far.
    pub fn overlaps(&self, from_ns: u64, to_ns: u64) -> bool {
        let stalls = self.stalls.lock().expect("probe lock is never poisoned");
        // Recorded roughly in time order; recent freezes are at the end.
        stalls
            .iter()
            .rev()
            .any(|s| s.from_ns <= to_ns && from_ns <= s.to_ns)
    }

    /// Adds the freezes that overlap `[from_ns, to_ns]` to `totals`.
    pub fn tally(&self, from_ns: u64, to_ns: u64, totals: &mut Totals) {
        let stalls = self.stalls.lock().expect("probe lock is never poisoned");
        for s in stalls
            .iter()
            .filter(|s| s.from_ns <= to_ns && from_ns <= s.to_ns)
        {
            totals.count += 1;
            totals.total_ms += s.ms();
            totals.longest_ms = totals.longest_ms.max(s.ms());
        }
    }
}

/// How many freezes, how long in all and the longest, over one or more windows.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    /// Freezes seen.
    pub count: usize,
    /// Their length together.
    pub total_ms: f64,
    /// The longest one.
    pub longest_ms: f64,
}

impl Drop for StallProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Every online CPU, not only those this process is pinned to: a benchmark pins the server and
/// the load generator to different CPUs, and a freeze of either matters.
pub fn online_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf only reads a system value.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        if online > 0 {
            return (0..online as usize).collect();
        }
    }
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// Scheduling policies the benchmark helpers run their threads at.
#[derive(Debug, Clone, Copy)]
pub enum Policy {
    /// The lowest real-time priority: runs before anything else wanting the CPU.
    RealTime,
    /// `SCHED_IDLE`: runs only when nothing else wants the CPU.
    #[allow(
        dead_code,
        reason = "used by keep_awake.rs, which not every benchmark including this file has"
    )]
    Idle,
}

/// Pins the calling thread to `cpu` and gives it `policy`; false if that is not allowed.
pub fn pin(cpu: usize, policy: Policy) -> bool {
    #[cfg(target_os = "linux")]
    {
        let (policy, priority) = match policy {
            Policy::RealTime => (libc::SCHED_FIFO, 1),
            Policy::Idle => (libc::SCHED_IDLE, 0),
        };
        // SAFETY: both calls only read the structures passed by reference, which are fully
        // initialised, and act on the calling thread (pid 0).
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            let param = libc::sched_param {
                sched_priority: priority,
            };
            libc::sched_setscheduler(0, policy, &param) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (cpu, policy);
        false
    }
}

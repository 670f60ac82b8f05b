//! Gives the heap that closed connections freed back to the operating system.
//!
//! A client on socket.io's default transport starts on long-polling: HTTP connections,
//! requests and response buffers, all freed once it upgrades to a WebSocket. glibc keeps such
//! freed memory between live allocations instead of returning it, so after a wave of
//! connections the process holds a few KiB per client it no longer uses (measured in
//! BENCHMARKS.md: 8.5 KiB per upgraded client against 7.5 KiB for a WebSocket-only one).
//! The same holds after a wave of clients leaves. `malloc_trim` hands those pages back. It
//! walks the heap, so it runs only after enough connections (HTTP connections, upgrades and
//! WebSocket sessions) closed, at most every [`TRIM_EVERY`], off the async workers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Closed connections that make a trim worth its walk over the heap.
const TRIM_AFTER_CLOSED: usize = 256;

/// The shortest time between two trims.
const TRIM_EVERY: Duration = Duration::from_secs(1);

/// Counts closed connections and trims the heap when enough of them have closed.
#[derive(Default)]
pub struct HeapTrim {
    closed: AtomicUsize,
    running: Arc<AtomicBool>,
    last: std::sync::Mutex<Option<Instant>>,
}

impl HeapTrim {
    /// Notes that `n` connections closed and their memory was freed.
    pub fn connections_closed(&self, n: usize) {
        if n > 0 {
            self.closed.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Trims in the background if enough connections closed since the last trim and it was
    /// long enough ago; called on a timer.
    pub fn maybe_trim(&self) {
        if !supported() || self.closed.load(Ordering::Relaxed) < TRIM_AFTER_CLOSED {
            return;
        }
        let mut last = self
            .last
            .lock()
            .expect("no code panics while holding this lock");
        if last.is_some_and(|at| at.elapsed() < TRIM_EVERY)
            || self.running.swap(true, Ordering::AcqRel)
        {
            return;
        }
        *last = Some(Instant::now());
        self.closed.store(0, Ordering::Relaxed);
        let running = self.running.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            trim();
            metrics::counter!(crate::telemetry::metric::HEAP_TRIMS).increment(1);
            tracing::debug!(took = ?started.elapsed(), "returned freed heap to the OS");
            running.store(false, Ordering::Release);
        });
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn supported() -> bool {
    true
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn supported() -> bool {
    false
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks and releases glibc's own free lists; it takes the arena
    // locks itself and has no preconditions on the caller.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

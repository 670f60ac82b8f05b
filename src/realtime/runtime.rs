//! The realtime runtime: Socket.IO connections (engine.io's task per session, its flusher,
//! and for sessions upgraded from polling their writer tasks) and the hub's fan-out run on a
//! tokio runtime of their own.
//!
//! One event to a workspace with 10 000 sockets means 10 000 writes. On a shared runtime a
//! REST request that arrives meanwhile waits in the same run queue behind them (REST p99 of
//! seconds at 10 000 clients × 20 updates/s when each socket had a writer task); on its own
//! runtime, the OS schedules the two sets of threads, so requests keep their latency, and the
//! realtime threads can be given a lower priority so that under CPU pressure deliveries wait
//! rather than requests.

use tokio::runtime::{Builder, Handle, Runtime};

/// Where Socket.IO requests arrive; they are the ones moved to the realtime runtime.
pub const SOCKET_IO_PATH: &str = "/socket.io";

/// The runtime Socket.IO and fan-out run on: either one of its own or the caller's.
pub struct RealtimeRuntime {
    /// Held only to keep the runtime alive; shut down without blocking on drop.
    runtime: Option<Runtime>,
    handle: Handle,
}

impl RealtimeRuntime {
    /// A runtime of `threads` workers whose threads run `nice` steps below the process's
    /// priority; `threads == 0` shares the current runtime instead.
    pub fn start(threads: usize, nice: i32) -> std::io::Result<Self> {
        if threads == 0 {
            return Ok(Self::shared());
        }
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("taskwire-realtime")
            .on_thread_start(move || lower_thread_priority(nice))
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        Ok(RealtimeRuntime {
            runtime: Some(runtime),
            handle,
        })
    }

    /// The current runtime, for apps that want everything on one runtime.
    pub fn shared() -> Self {
        RealtimeRuntime {
            runtime: None,
            handle: Handle::current(),
        }
    }

    /// Where realtime tasks are spawned.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for RealtimeRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks end, which tokio forbids inside async code
        // (where `Taskwire` is dropped); by then every socket has been closed anyway.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_thread_priority(nice: i32) {
    if nice <= 0 {
        return;
    }
    // On Linux the nice value belongs to the thread (`who == 0` is the calling thread), so this
    // lowers only the realtime workers. Lowering needs no privilege; a failure leaves the
    // thread at the process's priority, which is merely less fair to requests.
    // SAFETY: getpriority and setpriority only read and write the calling thread's priority.
    unsafe {
        let current = libc::getpriority(libc::PRIO_PROCESS, 0);
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, (current + nice).min(19));
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_thread_priority(_nice: i32) {}

//! Keeps every CPU from going idle while a benchmark runs. On a virtual machine an idle virtual
//! CPU is halted, and the host can take milliseconds to run it again when a packet or timer
//! needs it (measured here: REST p50 4.9 ms with idle CPUs, 2.0 ms without). One busy thread
//! per CPU at `SCHED_IDLE` priority fills the idle time instead; the kernel runs it only when
//! nothing else wants the CPU and preempts it at once when something does, so it takes no
//! time from the benchmark — like booting with `idle=poll`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The running spinners; they stop when this is dropped.
pub struct KeepAwake {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl KeepAwake {
    /// Starts one idle-priority spinner per online CPU; `None` where that policy is not
    /// available (a spinner at normal priority would steal time from the benchmark).
    #[cfg(target_os = "linux")]
    pub fn start() -> Option<KeepAwake> {
        {
            // SAFETY: sysconf only reads a system value.
            let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize;
            let stop = Arc::new(AtomicBool::new(false));
            let (ok_tx, ok_rx) = std::sync::mpsc::channel();
            let threads = (0..online)
                .map(|cpu| {
                    let (stop, ok_tx) = (stop.clone(), ok_tx.clone());
                    std::thread::Builder::new()
                        .name(format!("keep-awake-{cpu}"))
                        .spawn(move || {
                            // SAFETY: both calls read fully initialised structures passed by
                            // reference and act on the calling thread (pid 0).
                            let ok = unsafe {
                                let mut set: libc::cpu_set_t = std::mem::zeroed();
                                libc::CPU_SET(cpu, &mut set);
                                libc::sched_setaffinity(
                                    0,
                                    std::mem::size_of::<libc::cpu_set_t>(),
                                    &set,
                                );
                                let param = libc::sched_param { sched_priority: 0 };
                                libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0
                            };
                            let _ = ok_tx.send(ok);
                            if !ok {
                                return;
                            }
                            while !stop.load(Ordering::Relaxed) {
                                std::hint::spin_loop();
                            }
                        })
                        .expect("spinner thread starts")
                })
                .collect();
            let all_ok = (0..online).all(|_| ok_rx.recv().unwrap_or(false));
            let awake = KeepAwake { stop, threads };
            all_ok.then_some(awake)
        }
    }

    /// Not available here.
    #[cfg(not(target_os = "linux"))]
    pub fn start() -> Option<KeepAwake> {
        None
    }
}

impl Drop for KeepAwake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

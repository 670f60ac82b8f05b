//! Keeps every CPU from going idle while a benchmark runs. On a virtual machine an idle virtual
//! CPU is halted, and the host can take milliseconds to run it again when a packet or timer
//! needs it (measured here: REST p50 4.9 ms with idle CPUs, 2.0 ms without). One busy thread
//! per CPU at `SCHED_IDLE` priority fills the idle time instead; the kernel runs it only when
//! nothing else wants the CPU and preempts it at once when something does, so it takes no
//! time from the benchmark — like booting with `idle=poll`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::stall_probe::{Policy, online_cpus, pin};

/// The running spinners; they stop when this is dropped.
pub struct KeepAwake {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl KeepAwake {
    /// Starts one idle-priority spinner per online CPU; `None` where that policy is not
    /// available (a spinner at normal priority would steal time from the benchmark).
    pub fn start() -> Option<KeepAwake> {
        let cpus = online_cpus();
        let stop = Arc::new(AtomicBool::new(false));
        let (ok_tx, ok_rx) = std::sync::mpsc::channel();
        let threads = cpus
            .iter()
            .map(|&cpu| {
                let (stop, ok_tx) = (stop.clone(), ok_tx.clone());
                std::thread::Builder::new()
                    .name(format!("keep-awake-{cpu}"))
                    .spawn(move || {
                        let ok = pin(cpu, Policy::Idle);
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
        let all_ok = cpus.iter().all(|_| ok_rx.recv().unwrap_or(false));
        let awake = KeepAwake { stop, threads };
        all_ok.then_some(awake)
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

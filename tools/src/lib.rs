//! Benchmark tooling for taskwire, kept apart from the server and from `examples/` (which holds
//! what a user copies): the load generator (`src/bin/loadgen.rs`), the notification latency
//! benchmark (`src/bin/notify_bench.rs`) and what both need to measure the server rather than
//! the host: a probe that notices machine freezes, one that reads the kernel's pressure stall
//! counters, and threads that keep idle CPUs awake.
//! `benches/*.sh` build and run them; BENCHMARKS.md says how.

pub mod keep_awake;
pub mod pressure;
pub mod stall_probe;

# Shared by the benchmark scripts: release binaries and stopping the server under test.
# Expects ROOT and CARGO_TARGET_DIR; sets TASKWIRE and LOADGEN.

SERVER_PID=""

# Stops the server in SERVER_PID: SIGTERM, up to 10 s for a graceful exit, then SIGKILL.
stop_server() {
  if [[ -n "$SERVER_PID" ]]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

# Builds the release server and load generator once.
build_release() {
  echo "==> building release taskwire and the load generator" >&2
  cargo build --release --quiet -p taskwire --bin taskwire -p taskwire-tools --bin loadgen
  TASKWIRE="$CARGO_TARGET_DIR/release/taskwire"
  LOADGEN="$CARGO_TARGET_DIR/release/loadgen"
}

# Writes the page cache's dirty pages out before a run. A build just before a run leaves
# gigabytes of them; their writeback then makes the database's fsync at each commit wait, and
# a run stalled that way (REST and delivery held up for seconds together) measures the disk,
# not the server. Other processes writing during a run are not covered.
settle_disk() {
  sync
}

AWAKE_PIDS=()

# On a virtual machine an idle virtual CPU is halted, and the host can take milliseconds to run
# it again when a packet or timer needs it: latency then measures the host, not the server. An
# idle-priority (SCHED_IDLE) spinner per CPU fills the idle time instead and gives way at once
# to anything else, like booting with idle=poll. KEEP_AWAKE=0 lets the CPUs idle. Each spinner
# ends by itself after an hour even if this script is killed.
keep_cpus_awake() {
  [[ "${KEEP_AWAKE:-1}" == 1 ]] || return 0
  if ! command -v chrt >/dev/null; then echo "chrt not found: CPUs may idle" >&2; return 0; fi
  local cpu
  for cpu in $(seq 0 $(( $(nproc --all) - 1 ))); do
    timeout 3600 chrt --idle 0 taskset -c "$cpu" sh -c 'while :; do :; done' &
    AWAKE_PIDS+=($!)
  done
}

# Stops the spinners of keep_cpus_awake.
stop_keeping_awake() {
  local pid
  for pid in "${AWAKE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  AWAKE_PIDS=()
}

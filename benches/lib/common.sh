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
  cargo build --release --quiet --bin taskwire --example loadgen
  TASKWIRE="$CARGO_TARGET_DIR/release/taskwire"
  LOADGEN="$CARGO_TARGET_DIR/release/examples/loadgen"
}

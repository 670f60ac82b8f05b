#!/usr/bin/env bash
# CPU profile of release taskwire under fan-out load: the server pinned to CPU 0, the load
# generator to CPU 1 (10 000 clients, 5 updates/s by default), `perf record` attached to the
# server during the update phase only. Writes benches/results/profile-*.txt (flat profile by
# symbol and by shared object) and keeps perf.data in a temporary directory unless
# KEEP_PERF_DATA is set.
#
#   benches/profile.sh [clients] [rate]
#
# Needs `perf` (Debian: linux-perf). Only software events (cpu-clock) are used, so it works in
# virtual machines without hardware counters.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
CLIENTS="${1:-10000}"
RATE="${2:-5}"
RECORD_SECONDS="${RECORD_SECONDS:-15}"
RESULTS="$ROOT/benches/results"
mkdir -p "$RESULTS"

cargo build --release --quiet -p taskwire --bin taskwire -p taskwire-tools --bin loadgen
ulimit -n "$(ulimit -Hn)"
# As in run.sh: priority over parallel builds on the machine (see there).
NICE="${NICE:--10}"
[[ "$NICE" == 0 ]] || echo "$NICE" 2>/dev/null >"/proc/$$/autogroup" || true
TMP="$(mktemp -d)"
SERVER_PID=""
LOADGEN_PID=""
cleanup() {
  [[ -n "$LOADGEN_PID" ]] && kill "$LOADGEN_PID" 2>/dev/null || true
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [[ -n "${KEEP_PERF_DATA:-}" ]]; then echo "perf data kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

DATABASE_URL="sqlite://$TMP/tw.db" HOST=127.0.0.1 PORT=5070 LOG_LEVEL=warn REST_RATE_LIMIT=0 SOCKET_RATE_LIMIT=0 \
  nice -n "$NICE" taskset -c 0 "$CARGO_TARGET_DIR/release/taskwire" >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
for _ in $(seq 1 100); do grep -q "listening on" "$TMP/server.out" && break; sleep 0.1; done

# Updates start once every client is connected and has seen the run's task; the ramp of
# 10 000 clients takes a few seconds, so recording starts after it.
UPDATES=$((RATE * (RECORD_SECONDS + 15)))
nice -n "$NICE" taskset -c 1 "$CARGO_TARGET_DIR/release/loadgen" --url http://127.0.0.1:5070 \
  --clients "$CLIENTS" --updates "$UPDATES" --rate "$RATE" --server-pid "$SERVER_PID" \
  --label taskwire-profiled --duration 180 --json >"$TMP/report.json" 2>"$TMP/summary.txt" &
LOADGEN_PID=$!
sleep 12
# DWARF unwinding: the release build has debug info but no frame pointers.
perf record -e cpu-clock -F 499 --call-graph dwarf,16384 -p "$SERVER_PID" -o "$TMP/perf.data" -- sleep "$RECORD_SECONDS" 2>/dev/null
wait "$LOADGEN_PID" || true
LOADGEN_PID=""
cat "$TMP/summary.txt" >&2

OUT="$RESULTS/profile-taskwire-$CLIENTS-$RATE"
perf report -i "$TMP/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^$' | head -40 >"$OUT-dso.txt" || true
perf report -i "$TMP/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -v '^$' | head -120 >"$OUT-symbols.txt" || true
perf report -i "$TMP/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | grep -v '^$' | head -150 >"$OUT-inclusive.txt" || true
perf report -i "$TMP/perf.data" --no-children --sort symbol --stdio -g caller,0.5,callee,function,percent --percent-limit 2 2>/dev/null | grep -v '^$' | head -400 >"$OUT-callers.txt" || true
cp "$TMP/summary.txt" "$OUT-summary.txt"
echo "profile written to $OUT-*.txt" >&2

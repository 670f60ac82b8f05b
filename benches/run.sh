#!/usr/bin/env bash
# The fan-out benchmark: taskwire against the Node socket.io reference peer on this machine,
# each server pinned to CPU 0 and the load generator to CPU 1, for N = 1 000, 5 000 and
# 10 000 clients at 5 and 20 updates/s, plus a REST check (200 updates/s with 10 000 clients,
# taskwire on SQLite). Writes raw JSON to benches/results/ and the tables into BENCHMARKS.md
# (between the `results` markers; the rest of that file is left alone).
#
#   benches/run.sh                    # the full set (about 15 minutes)
#   benches/run.sh --find-ceiling     # the full set, then taskwire's ceiling (10 more minutes)
#   benches/run.sh --ceiling-only     # only the ceiling search
#   benches/run.sh --repeats          # only taskwire at 10 000 × 5/s and 20/s, REPEATS times
#                                     # each (default 3, about 6 minutes): how much runs vary
#   benches/run.sh --quick            # N = 1 000 only, 5 s of updates: checks the tooling
#   benches/run.sh --transports       # only 10 000 clients, each transport back to back in one
#                                     # sitting: 5/s for every server, 20/s for taskwire
#                                     # (about 8 minutes)
#
# Every cell is measured once per transport in TRANSPORTS ("websocket upgrade"): `websocket`
# clients connect with `transports: ['websocket']`, `upgrade` clients as socket.io-client does
# by default (long-polling, then the upgrade; see tools/src/bin/loadgen.rs). Result files are
# named <server>-<clients>-<rate> for websocket and <server>-upgrade-<clients>-<rate> for
# upgrade; the --transports sitting writes transports-<server>-<transport>-<clients>-<rate>.
#
# Environment: SECONDS_PER_RUN (updates phase, default 20), CLIENTS ("1000 5000 10000"),
# RATES ("5 20"), SERVERS ("taskwire node"), TRANSPORTS ("websocket upgrade"), REST_CHECK (1:
# the REST run of the full set), KEEP_AWAKE (1: idle-priority spinners keep idle
# CPUs from halting, see benches/lib/common.sh). The load generator watches for machine freezes
# (a virtual CPU descheduled by the host) and reports delivery p99 also without the events in
# flight during one. Every run is bounded by the load generator's
# --duration and the script by a per-step timeout; it stops by itself.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

MODE=full
CEILING=0
REPEAT=0
SITTING=0
for arg in "$@"; do
  case "$arg" in
    --transports) SITTING=1; MODE=none ;;
    --find-ceiling) CEILING=1 ;;
    --ceiling-only) CEILING=1; MODE=none ;;
    --repeats) REPEAT=1; MODE=none ;;
    --quick) MODE=quick ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

SECONDS_PER_RUN="${SECONDS_PER_RUN:-20}"
CLIENTS="${CLIENTS:-1000 5000 10000}"
RATES="${RATES:-5 20}"
SERVERS="${SERVERS:-taskwire node}"
TRANSPORTS="${TRANSPORTS:-websocket upgrade}"
REST_CHECK="${REST_CHECK:-1}"
# Unmeasured updates first, so Node's JIT (and any lazily grown buffer) is warm.
WARMUP="${WARMUP:-10}"
# Priority of the server and the load generator over whatever else runs on the machine (other
# builds take CPU 0 and 1 too, pinning does not keep them off). 0 to run at normal priority.
NICE="${NICE:--10}"
# Linux shares CPU between process sessions (autogroups, one per setsid) before it looks at
# nice values, so the nice value has to be set on this script's autogroup too; without it a
# parallel build started elsewhere takes half of CPU 0 whatever the server's nice value.
AUTOGROUP="not changed"
if [[ "$NICE" != 0 ]] && echo "$NICE" 2>/dev/null >"/proc/$$/autogroup"; then
  AUTOGROUP="$(cat "/proc/$$/autogroup")"
fi
if [[ "$MODE" == quick ]]; then CLIENTS=1000; SECONDS_PER_RUN=5; fi

RESULTS="$ROOT/benches/results"
TMP="$(mktemp -d)"
PORT=5077
source "$ROOT/benches/lib/common.sh"
trap 'stop_server; stop_keeping_awake; rm -rf "$TMP"' EXIT

build_release
keep_cpus_awake
if [[ ! -d benches/peers/node/node_modules ]]; then
  (cd benches/peers/node && npm ci --no-audit --no-fund --silent)
fi

# Each client is one open file in the server and one in the load generator.
NOFILE_BEFORE="$(ulimit -Sn) (hard $(ulimit -Hn))"
ulimit -n "$(ulimit -Hn)"
NOFILE_AFTER="$(ulimit -Sn)"
echo "==> open files: soft limit was $NOFILE_BEFORE, now $NOFILE_AFTER" >&2
mkdir -p "$RESULTS"

# Machine and conditions, for the report (the ceiling search alone keeps its own record).
MACHINE_ENV=machine.env
[[ "$MODE" == none ]] && MACHINE_ENV=machine-ceiling.env
[[ "$REPEAT" == 1 ]] && MACHINE_ENV=machine-repeats.env
[[ "$SITTING" == 1 ]] && MACHINE_ENV=machine-transports.env
{
  echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
  echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
  echo "memory=$(free -g | awk '/^Mem:/ {print $2}') GiB"
  echo "kernel=$(uname -r)"
  echo "rustc=$(rustc --version)"
  echo "node=$(node --version)"
  echo "socketio=$(cd benches/peers/node && node -p "require('socket.io/package.json').version")"
  echo "nofile_before=$NOFILE_BEFORE"
  echo "nofile_after=$NOFILE_AFTER"
  echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "nice=$NICE"
  echo "autogroup=$AUTOGROUP"
  echo "kept_awake=${KEEP_AWAKE:-1}"
} >"$RESULTS/$MACHINE_ENV"

# Starts a fresh server of kind $1 pinned to CPU 0; sets SERVER_PID and URL.
start_server() {
  local kind="$1"
  PORT=$((PORT + 1))
  # The redirections below truncate these files only once the background job has started, so
  # without this the loop further down could read the previous server's address.
  rm -f "$TMP/server.out" "$TMP/server.err"
  case "$kind" in
    taskwire)
      rm -f "$TMP"/tw.db*
      DATABASE_URL="sqlite://$TMP/tw.db" HOST=127.0.0.1 PORT="$PORT" LOG_LEVEL=warn REST_RATE_LIMIT=0 SOCKET_RATE_LIMIT=0 \
        nice -n "$NICE" taskset -c 0 "$TASKWIRE" >"$TMP/server.out" 2>"$TMP/server.err" &
      ;;
    node)
      HOST=127.0.0.1 PORT="$PORT" nice -n "$NICE" taskset -c 0 node benches/peers/node/server.mjs \
        >"$TMP/server.out" 2>"$TMP/server.err" &
      ;;
  esac
  # nice and taskset exec the server, so $! is the server's own pid.
  SERVER_PID=$!
  URL=""
  for _ in $(seq 1 150); do
    URL="$(sed -n "s/^.* listening on \(http:[^ ]*:$PORT\)\$/\1/p" "$TMP/server.out" 2>/dev/null)"
    [[ -n "$URL" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$URL" ]]; then
    echo "$kind did not start:" >&2; cat "$TMP/server.err" >&2; return 1
  fi
  sleep 1 # let start-up work (migrations, JIT warm-up of module loading) finish
}

# One measurement: server kind, clients, rate, updates, result name and the clients'
# transport (websocket when not given). Prints the summary.
measure() {
  local kind="$1" n="$2" rate="$3" updates="$4" name="$5" transport="${6:-websocket}"
  settle_disk
  start_server "$kind"
  echo "==> $name: $kind, $n $transport clients, $updates updates at $rate/s" >&2
  timeout 300 nice -n "$NICE" taskset -c 1 "$LOADGEN" --url "$URL" --transport "$transport" --clients "$n" --updates "$updates" \
    --rate "$rate" --warmup "$WARMUP" --drain 10 --duration 240 --server-pid "$SERVER_PID" --label "$kind" --json --freeze-probe \
    >"$RESULTS/$name.json" 2>"$TMP/summary.txt" || true
  cat "$TMP/summary.txt" >&2
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "$kind exited during the run; its stderr:" >&2
    tail -20 "$TMP/server.err" >&2
  fi
  stop_server
}

# Like measure, but runs a second time when the first produced no report (a server that did
# not come up, or a load generator that could not reach it).
measure_once_more() {
  local name="$5"
  measure "$@" || true
  if [[ ! -s "$RESULTS/$name.json" ]]; then
    echo "==> $name produced no report; running it once more" >&2
    measure "$@" || true
  fi
}

if [[ "$MODE" != none ]]; then
  for n in $CLIENTS; do
    for rate in $RATES; do
      for kind in $SERVERS; do
        for transport in $TRANSPORTS; do
          name="$kind-$n-$rate"
          [[ "$transport" == websocket ]] || name="$kind-$transport-$n-$rate"
          measure_once_more "$kind" "$n" "$rate" $((rate * SECONDS_PER_RUN)) "$name" "$transport"
        done
      done
    done
  done
  if [[ "$MODE" == full && "$REST_CHECK" == 1 ]]; then
    # REST latency while 10 000 clients listen: 200 updates/s for 10 s on SQLite.
    measure_once_more taskwire 10000 200 2000 rest-taskwire-10000-200
  fi
fi

# A run passes the ceiling criteria with no loss and p99 under 250 ms.
passes() {
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["lost"] == 0 and r["duplicates"] == 0 and r["delivery"]["p99_ms"] < 250 else 1)
' "$1" 2>/dev/null
}

if [[ "$SITTING" == 1 ]]; then
  # The transports back to back at 10 000 clients, so their ratio is of one sitting: at 5/s
  # for every server, at 20/s for taskwire (its zero-loss target; Node is in the full set).
  rm -f "$RESULTS"/transports-*.json
  for rate in 5 20; do
    for kind in $SERVERS; do
      [[ "$rate" == 5 || "$kind" == taskwire ]] || continue
      for transport in $TRANSPORTS; do
        measure_once_more "$kind" 10000 "$rate" $((rate * SECONDS_PER_RUN)) \
          "transports-$kind-$transport-10000-$rate" "$transport"
      done
    done
  done
fi

if [[ "$REPEAT" == 1 ]]; then
  # The two 10 000-client cells again, with the same settings: one run is not a distribution.
  rm -f "$RESULTS"/repeat-taskwire-*.json
  for i in $(seq 1 "${REPEATS:-3}"); do
    for rate in 5 20; do
      measure_once_more taskwire 10000 "$rate" $((rate * SECONDS_PER_RUN)) "repeat-taskwire-10000-$rate-$i"
    done
  done
fi

if [[ "$CEILING" == 1 ]]; then
  # Highest update rate at 10 000 clients: rising rates until the first that fails.
  for rate in 5 7 10 15 20 25 30 40; do
    name="ceiling-rate-taskwire-10000-$rate"
    measure_once_more taskwire 10000 "$rate" $((rate * 15)) "$name"
    passes "$RESULTS/$name.json" || break
  done
  # Highest client count at 5 updates/s, up to what the open-file limit allows (each side
  # needs one descriptor per client plus a few dozen of its own).
  max_n=$(( $(ulimit -Sn) - 100 ))
  for n in 6000 7000 8000 9000 10000 12000 14000 16000 18000 "$max_n"; do
    (( n <= max_n )) || continue
    name="ceiling-clients-taskwire-$n-5"
    measure_once_more taskwire "$n" 5 75 "$name"
    passes "$RESULTS/$name.json" || break
  done
fi

echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/$MACHINE_ENV"
python3 benches/report.py "$RESULTS" BENCHMARKS.md
echo "==> wrote BENCHMARKS.md" >&2

#!/usr/bin/env bash
# Several processes against one: taskwire × 3 processes (Postgres + Redis, clients and REST
# updates spread round-robin over them) against one process with the same total clients
# (Postgres, no Redis). All servers are pinned to CPU 0, the load generator to CPU 1, so both
# set-ups have the same CPU; Postgres and Redis are the machine's own. For each: delivery
# p50/p99, lost events, server RSS and CPU (summed over the processes), Redis commands and
# Postgres transactions per update, at each rate in RATES; then the rates at which delivery p99
# passes 1 s (CEILING_RATES); then, at the first rate, a run of the processes during which their
# Redis is killed and restarted (REDIS_RESTART=0 skips it). Writes raw JSON to benches/results/cluster-*.json and prints a
# table; BENCHMARKS.md ("Several processes") holds the recorded run.
#
#   benches/cluster.sh                 # 9 000 clients, 5 and 20 updates/s, then the ceiling
#   CLIENTS=3000 RATES=5 CEILING_RATES= benches/cluster.sh     # a quick look
#
# Bounded: every load-generator run has --duration, the script a timeout per step.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

CLIENTS="${CLIENTS:-9000}"
PROCESSES="${PROCESSES:-3}"
RATES="${RATES:-5 20}"
CEILING_RATES="${CEILING_RATES-40 80}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-20}"
WARMUP="${WARMUP:-10}"
NICE="${NICE:--10}"
PG_ADMIN="${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/test}"
PG_BASE="${PG_ADMIN%/*}"
REDIS_URL_BENCH="${REDIS_URL_BENCH:-redis://127.0.0.1:6379}"
RESULTS="$ROOT/benches/results"
TMP="$(mktemp -d)"
PORT=5200
PIDS=()
DB=""
source "$ROOT/benches/lib/common.sh"

stop_servers() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
  if [[ -n "$DB" ]]; then
    psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    DB=""
  fi
}
# The servers and the load generator run at nice $NICE (in an autogroup of that nice value,
# see benches/run.sh); the machine's Postgres and Redis would then get a tenth of a busy CPU and
# queue every commit and every message behind them, which no deployment does to its services.
# For the run they get the same priority (their processes, and their autogroups, since Linux
# shares CPU between autogroups first); new Postgres backends inherit it from the postmaster.
# The previous values come back on exit.
SERVICE_PIDS=()
RESTORE_NICE=()
services_at_server_priority() {
  [[ "$NICE" != 0 ]] || return 0
  local pid
  SERVICE_PIDS=($(pgrep -x redis-server || true) $(pgrep -x postgres || true))
  for pid in "${SERVICE_PIDS[@]}"; do
    RESTORE_NICE+=("$pid:$(ps -o ni= -p "$pid" | tr -d ' '):$(sed -n 's/.* nice //p' "/proc/$pid/autogroup" 2>/dev/null)")
    renice -n "$NICE" -p "$pid" >/dev/null 2>&1 || true
    echo "$NICE" >"/proc/$pid/autogroup" 2>/dev/null || true
  done
  echo "==> Postgres and Redis (${#SERVICE_PIDS[@]} processes) at nice $NICE for the run" >&2
}
restore_services() {
  local entry pid ni group
  for entry in "${RESTORE_NICE[@]}"; do
    IFS=: read -r pid ni group <<<"$entry"
    [[ -n "$ni" ]] && renice -n "$ni" -p "$pid" >/dev/null 2>&1 || true
    [[ -n "$group" ]] && echo "$group" >"/proc/$pid/autogroup" 2>/dev/null || true
  done
  # Backends forked during the run inherited the raised priority; they end with their
  # connections, but idle ones from other clients may linger.
  for pid in $(pgrep -x postgres || true); do renice -n 0 -p "$pid" >/dev/null 2>&1 || true; done
}
trap 'stop_servers; stop_keeping_awake; restore_services; rm -rf "$TMP"' EXIT

build_release
keep_cpus_awake
ulimit -n "$(ulimit -Hn)"
mkdir -p "$RESULTS"
if [[ "$NICE" != 0 ]]; then echo "$NICE" >"/proc/$$/autogroup" 2>/dev/null || true; fi
services_at_server_priority

# Starts $1 processes on a new database (with Redis when more than one); sets URLS and SPIDS.
start_servers() {
  local n="$1" i
  DB="taskwire_bench_$(date +%s%N)"
  psql "$PG_ADMIN" -qc "CREATE DATABASE $DB" >/dev/null
  local prefix="bench-$DB"
  URLS=""
  SPIDS=""
  for i in $(seq 1 "$n"); do
    PORT=$((PORT + 1))
    local extra=()
    # The previous run's output must not be read as this process's listening line.
    rm -f "$TMP/server-$i.out" "$TMP/server-$i.err"
    if [[ "$n" -gt 1 ]]; then extra=(REDIS_URL="$REDIS_URL_BENCH" REDIS_PREFIX="$prefix"); fi
    env "${extra[@]}" DATABASE_URL="$PG_BASE/$DB" HOST=127.0.0.1 PORT="$PORT" LOG_LEVEL=warn \
      REST_RATE_LIMIT=0 SOCKET_RATE_LIMIT=0 JOB_RESULT_DIR="$TMP/results-$i" \
      nice -n "$NICE" taskset -c 0 "$TASKWIRE" >"$TMP/server-$i.out" 2>"$TMP/server-$i.err" &
    PIDS+=($!)
    local url=""
    for _ in $(seq 1 150); do
      url="$(sed -n "s/^taskwire listening on \(http:[^ ]*\)\$/\1/p" "$TMP/server-$i.out" 2>/dev/null)"
      [[ -n "$url" ]] && break
      sleep 0.1
    done
    if [[ -z "$url" ]]; then echo "process $i did not start:" >&2; cat "$TMP/server-$i.err" >&2; return 1; fi
    URLS="${URLS:+$URLS,}$url"
    SPIDS="${SPIDS:+$SPIDS,}${PIDS[-1]}"
  done
  sleep 1
}

redis_commands() { redis-cli -u "$REDIS_URL_BENCH" INFO stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p'; }
pg_transactions() {
  psql "$PG_ADMIN" -Atc "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$DB'"
}

# One run: processes, rate, result name, and optionally a command run in the background while
# the load generator runs (the Redis restart).
measure() {
  local n="$1" rate="$2" name="$3" during="${4:-}"
  local updates
  updates=$(awk "BEGIN {print int($rate * $SECONDS_PER_RUN)}")
  settle_disk
  start_servers "$n"
  echo "==> $name: $n process(es), $CLIENTS clients, $updates updates at $rate/s" >&2
  local r0 p0 r1 p1
  r0="$(redis_commands)"; p0="$(pg_transactions)"
  local hook=""
  if [[ -n "$during" ]]; then "$during" & hook=$!; fi
  timeout 400 nice -n "$NICE" taskset -c 1 "$LOADGEN" --url "$URLS" --clients "$CLIENTS" \
    --updates "$updates" --rate "$rate" --warmup "$WARMUP" --drain 10 --duration 300 \
    --server-pid "$SPIDS" --label "taskwire×$n" --json --freeze-probe \
    >"$TMP/run.json" 2>"$TMP/summary.txt" || true
  if [[ -n "$hook" ]]; then wait "$hook" || true; fi
  sleep 1.5 # Postgres publishes its counters with a short delay
  r1="$(redis_commands)"; p1="$(pg_transactions)"
  cat "$TMP/summary.txt" >&2
  local i
  for i in $(seq 1 "$n"); do
    if ! kill -0 "${PIDS[$((i - 1))]}" 2>/dev/null; then
      echo "process $i exited during the run; its stderr:" >&2
      tail -20 "$TMP/server-$i.err" >&2
    fi
  done
  # Per update, over everything the run sent (warm-up and the run's own task included).
  python3 - "$TMP/run.json" "$RESULTS/$name.json" "$n" $((r1 - r0)) $((p1 - p0)) $((updates + WARMUP + 1)) <<'PY'
import json, sys
src, dst, n, redis, pg, writes = sys.argv[1:]
report = json.load(open(src))
report["processes"] = int(n)
report["redis_commands_per_update"] = int(redis) / int(writes) if int(n) > 1 else 0
report["pg_transactions_per_update"] = int(pg) / int(writes)
json.dump(report, open(dst, "w"), indent=1)
PY
  stop_servers
}

for rate in $RATES; do
  measure 1 "$rate" "cluster-1x${CLIENTS}-${rate}"
  measure "$PROCESSES" "$rate" "cluster-${PROCESSES}x$((CLIENTS / PROCESSES))-${rate}"
done
for rate in $CEILING_RATES; do
  measure 1 "$rate" "cluster-1x${CLIENTS}-${rate}"
  measure "$PROCESSES" "$rate" "cluster-${PROCESSES}x$((CLIENTS / PROCESSES))-${rate}"
done

# Redis killed and restarted during a run at the first rate: the processes use a redis-server
# of this script's own; it is killed (SIGKILL) RESTART_AT seconds into the load and started
# again on the same port RESTART_AFTER seconds later. Delivery must lose nothing; its max shows
# how late the events of the outage arrived.
RESTART_AT="${RESTART_AT:-15}"
RESTART_AFTER="${RESTART_AFTER:-3}"
if [[ "${REDIS_RESTART:-1}" == 1 ]]; then
  RPORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  start_private_redis() {
    nice -n "$NICE" redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >>"$TMP/redis.log" 2>&1 &
    for _ in $(seq 1 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && return 0; sleep 0.05; done
    echo "private redis-server did not start" >&2; cat "$TMP/redis.log" >&2; return 1
  }
  restart_redis() {
    sleep "$RESTART_AT"
    pkill -KILL -f "redis-server 127.0.0.1:$RPORT" || true
    echo "==> Redis killed" >&2
    sleep "$RESTART_AFTER"
    start_private_redis
    echo "==> Redis answering again" >&2
  }
  start_private_redis
  SHARED_REDIS="$REDIS_URL_BENCH"
  REDIS_URL_BENCH="redis://127.0.0.1:$RPORT"
  rate="${RATES%% *}"
  measure "$PROCESSES" "$rate" "cluster-${PROCESSES}x$((CLIENTS / PROCESSES))-${rate}-redis-restart" restart_redis
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  REDIS_URL_BENCH="$SHARED_REDIS"
fi

python3 - "$RESULTS" "$CLIENTS" "$PROCESSES" $RATES $CEILING_RATES <<'PY'
import json, os, sys
results, clients, procs, *rates = sys.argv[1:]
clients, procs = int(clients), int(procs)
print(f"| set-up | rate | delivery p50 / p99 (ms) | p99 outside freezes | lost | RSS/conn KiB | CPU µs/event | Redis cmds/update | PG xacts/update |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
for rate in rates:
    for name, label in ((f"cluster-1x{clients}-{rate}", f"1 × {clients}"),
                        (f"cluster-{procs}x{clients // procs}-{rate}", f"{procs} × {clients // procs}")):
        path = os.path.join(results, name + ".json")
        if not os.path.exists(path):
            continue
        r = json.load(open(path))
        d, s = r["delivery"], r.get("server") or {}
        clear = (r.get("delivery_outside_freezes") or {}).get("p99_ms", float("nan"))
        print(f"| {label} | {rate}/s | {d['p50_ms']:.1f} / {d['p99_ms']:.1f} | {clear:.1f} | {r['lost']} | "
              f"{s.get('rss_per_conn_kib', float('nan')):.1f} | {s.get('cpu_us_per_event', float('nan')):.2f} | "
              f"{r['redis_commands_per_update']:.1f} | {r['pg_transactions_per_update']:.1f} |")
rate = rates[0] if rates else None
path = os.path.join(results, f"cluster-{procs}x{clients // procs}-{rate}-redis-restart.json")
if rate and os.path.exists(path):
    r = json.load(open(path))
    d = r["delivery"]
    print(f"\nRedis killed and restarted during {procs} × {clients // procs} at {rate}/s: "
          f"{r['lost']} lost, delivery p50 / p99 / max {d['p50_ms']:.1f} / {d['p99_ms']:.1f} / {d['max_ms']:.1f} ms")
PY

#!/usr/bin/env bash
# The soak: 10 000 Socket.IO clients (socket.io-client's default transports: long-polling, then
# the upgrade) held for 10 minutes while taskwire makes 5 task updates a second, and around
# them 1 000 clients a minute arrive and leave (benches/soak/churn.mjs: WebSocket, polling-only
# and upgrading clients, clients with a refused token, clients whose TCP connection is dropped
# without a close, SSE streams). taskwire runs with its default settings, auth on (JWT_SECRET)
# and SQLite, pinned to CPU 0; the clients run on CPU 1.
#
#   benches/soak.sh                 # 10 000 clients, 10 minutes (about 13 minutes in all)
#   SOAK_CLIENTS=1000 SOAK_SECONDS=60 benches/soak.sh   # a short run to check the tooling
#
# Every 10 s it samples the server's RSS, open file descriptors, engine.io sessions, SSE streams
# and open connections. It reports RSS one minute in and at the end of the 10 minutes, the
# growth between them, the events lost by the clients that stayed, REST latency through the
# run, and whether descriptors, sessions and SSE streams went back to their idle baseline after
# every client left (waiting up to 2 minutes, since a dropped TCP connection is only noticed
# by the heartbeat: 25 s ping interval + 20 s timeout). Writes benches/results/soak.json and
# benches/results/soak-samples.csv. Bounded: every step has a timeout; it stops by itself.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

CLIENTS="${SOAK_CLIENTS:-10000}"
SECONDS_HELD="${SOAK_SECONDS:-600}"
RATE="${SOAK_RATE:-5}"
CHURN_PER_MINUTE="${SOAK_CHURN_PER_MINUTE:-1000}"
SAMPLE_EVERY=10
NICE="${NICE:--10}"
if [[ "$NICE" != 0 ]]; then echo "$NICE" 2>/dev/null >"/proc/$$/autogroup" || true; fi

RESULTS="$ROOT/benches/results"
TMP="$(mktemp -d)"
mkdir -p "$RESULTS"
source "$ROOT/benches/lib/common.sh"
SERVER_PID=""
SAMPLER_PID=""
cleanup() {
  [[ -n "$SAMPLER_PID" ]] && kill "$SAMPLER_PID" 2>/dev/null || true
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null || true
  stop_keeping_awake
  rm -rf "$TMP"
}
trap cleanup EXIT

build_release
keep_cpus_awake
(cd benches/soak && { [[ -d node_modules ]] || npm ci --no-audit --no-fund --silent; })
ulimit -n "$(ulimit -Hn)"

SECRET="soak-secret-$(date +%s)"
PORT="${SOAK_PORT:-5177}"
URL="http://127.0.0.1:$PORT"
TOKEN="$(JWT_SECRET="$SECRET" "$TASKWIRE" token --sub soak --workspace soak --ttl 7200)"
BAD_TOKEN="$(JWT_SECRET="not-$SECRET" "$TASKWIRE" token --sub intruder --workspace soak --ttl 7200)"

settle_disk
echo "==> starting taskwire (defaults, JWT_SECRET set, SQLite) on $URL" >&2
JWT_SECRET="$SECRET" DATABASE_URL="sqlite://$TMP/soak.db" JOB_RESULT_DIR="$TMP/results" \
  HOST=127.0.0.1 PORT="$PORT" LOG_LEVEL=warn \
  nice -n "$NICE" taskset -c 0 "$TASKWIRE" >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$TMP/server.out" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.err" >&2; exit 1; }
  sleep 0.1
done
sleep 1

# One sample: seconds since start, RSS KiB, fds, engine.io sessions, SSE streams, connections.
metric() { awk -v name="$1" '$1 ~ "^"name"([{ ]|$)" { sum += $NF } END { print sum + 0 }' "$TMP/metrics"; }
sample() {
  curl -s --max-time 5 "$URL/metrics" >"$TMP/metrics" || : >"$TMP/metrics"
  local rss fds
  rss="$(awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status")"
  fds="$(ls "/proc/$SERVER_PID/fd" | wc -l)"
  echo "$(( $(date +%s) - START )),$rss,$fds,$(metric taskwire_engineio_sessions),$(metric taskwire_sse_streams),$(metric taskwire_connections_open)"
}
START="$(date +%s)"
BASELINE="$(sample)"
echo "==> idle: $BASELINE (t,rss_kib,fds,sessions,sse,connections)" >&2
echo "t_s,rss_kib,fds,engineio_sessions,sse_streams,connections_open,phase" >"$RESULTS/soak-samples.csv"
echo "$BASELINE,idle" >>"$RESULTS/soak-samples.csv"

echo "==> holding $CLIENTS clients, $((RATE * SECONDS_HELD)) updates at $RATE/s" >&2
timeout $((SECONDS_HELD + 300)) nice -n "$NICE" taskset -c 1 "$LOADGEN" --url "$URL" \
  --transport upgrade --clients "$CLIENTS" --updates $((RATE * SECONDS_HELD)) --rate "$RATE" \
  --token "$TOKEN" --drain 10 --duration $((SECONDS_HELD + 240)) --server-pid "$SERVER_PID" \
  --label taskwire --json --freeze-probe >"$TMP/holders.json" 2>"$TMP/holders.err" &
LOADGEN_PID=$!

# The churn starts once the held clients are connected, so minute 1 is a minute into it.
for _ in $(seq 1 240); do
  sessions="$(sample | cut -d, -f4)"
  (( sessions >= CLIENTS )) && break
  kill -0 "$LOADGEN_PID" 2>/dev/null || break
  sleep 0.5
done
HELD_AT="$(date +%s)"
echo "==> $sessions sessions held; churn for ${SECONDS_HELD} s at $CHURN_PER_MINUTE/min" >&2
timeout $((SECONDS_HELD + 120)) nice -n "$NICE" taskset -c 1 node benches/soak/churn.mjs \
  --url "$URL" --token "$TOKEN" --bad-token "$BAD_TOKEN" --per-minute "$CHURN_PER_MINUTE" \
  --seconds "$SECONDS_HELD" >"$TMP/churn.json" 2>"$TMP/churn.err" &
CHURN_PID=$!

(
  while :; do
    sleep "$SAMPLE_EVERY"
    echo "$(sample),held"
  done
) >>"$RESULTS/soak-samples.csv" &
SAMPLER_PID=$!
wait "$LOADGEN_PID" || true
wait "$CHURN_PID" || true
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""
cat "$TMP/holders.err" >&2
echo "==> churn: $(head -c 600 "$TMP/churn.json")" >&2

echo "==> every client gone; waiting for the server to return to its baseline" >&2
base_fds="$(echo "$BASELINE" | cut -d, -f3)"
for _ in $(seq 1 120); do
  AFTER="$(sample)"
  fds="$(echo "$AFTER" | cut -d, -f3)"
  sessions="$(echo "$AFTER" | cut -d, -f4)"
  sse="$(echo "$AFTER" | cut -d, -f5)"
  (( sessions == 0 && sse == 0 && fds <= base_fds )) && break
  sleep 1
done
echo "$AFTER,after" >>"$RESULTS/soak-samples.csv"
echo "==> after: $AFTER" >&2

python3 - "$RESULTS" "$TMP/holders.json" "$TMP/churn.json" "$HELD_AT" "$START" "$SECONDS_HELD" \
  "$BASELINE" "$AFTER" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import csv, json, sys
results, holders_path, churn_path, held_at, start, seconds, baseline, after, load = sys.argv[1:]
held_from = int(held_at) - int(start)
rows = [r for r in csv.DictReader(open(f"{results}/soak-samples.csv")) if r["phase"] == "held"]
def at(offset):
    # The held-phase sample nearest to `offset` seconds after the clients were all connected.
    return min(rows, key=lambda r: abs(int(r["t_s"]) - held_from - offset))
m1, m_end = at(60), at(int(seconds))
holders = json.load(open(holders_path)) if open(holders_path).read().strip() else {}
churn = json.load(open(churn_path)) if open(churn_path).read().strip() else {}
cols = ["t_s", "rss_kib", "fds", "engineio_sessions", "sse_streams", "connections_open"]
base = dict(zip(cols, map(int, baseline.split(","))))
end = dict(zip(cols, map(int, after.split(","))))
report = {
    "clients": holders.get("clients"), "transport": holders.get("transport"),
    "seconds": int(seconds), "load_after": load,
    "rss_minute_1_kib": int(m1["rss_kib"]), "rss_end_kib": int(m_end["rss_kib"]),
    "rss_growth_pct": round(100 * (int(m_end["rss_kib"]) - int(m1["rss_kib"])) / int(m1["rss_kib"]), 2),
    "rss_max_kib": max(int(r["rss_kib"]) for r in rows),
    "idle": base, "after": end,
    "back_to_baseline": end["engineio_sessions"] == 0 and end["sse_streams"] == 0 and end["fds"] <= base["fds"],
    "holders": {k: holders.get(k) for k in ("connected", "connect_failures", "dropped_connections", "received", "expected", "lost", "duplicates", "delivery", "rest", "rest_outside_freezes", "rest_errors", "freezes")},
    "churn": churn,
}
json.dump(report, open(f"{results}/soak.json", "w"), indent=2)
h = report["holders"]
print(f"RSS minute 1 {report['rss_minute_1_kib']} KiB, minute {int(seconds)//60} {report['rss_end_kib']} KiB "
      f"({report['rss_growth_pct']:+.2f} %), max {report['rss_max_kib']} KiB")
print(f"held clients: {h['connected']} connected, lost {h['lost']}, duplicates {h['duplicates']}, "
      f"delivery p99 {(h['delivery'] or {}).get('p99_ms')} ms, REST p99 {(h['rest'] or {}).get('p99_ms')} ms, REST errors {h['rest_errors']}")
print(f"churn: {json.dumps(churn.get('total'))}")
print(f"idle {base}\nafter {end}\nback to baseline: {report['back_to_baseline']}")
PY

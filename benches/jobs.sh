#!/usr/bin/env bash
# The job benchmark: a `bulk_update` of TASKS tasks (100 000) on SQLite, release build, the
# server pinned to CPU 0 and the load generator to CPU 1. It reports the job's tasks/second
# and the server's peak RSS, and compares what other clients see while the job runs with what
# they see when the server is idle: socket delivery latency and REST latency of the load
# generator (CLIENTS sockets, UPDATES updates at RATE/s in their own workspace; the job runs
# in another workspace, so its 100 000 task_updated events are not theirs to receive).
#
#   benches/jobs.sh            # writes benches/results/jobs.json and prints a markdown table
#
# Environment: TASKS (100000), CLIENTS (200), RATE (20), UPDATES (300: 15 s of updates, so the
# whole measurement falls inside the job; the report says how much did), KEEP_AWAKE (1: keep
# idle CPUs from halting, see benches/lib/common.sh). The load generator watches for machine
# freezes (a virtual CPU descheduled by the host) and the report gives each latency as measured
# and without the samples in flight during a freeze. Bounded: every wait has a timeout and the
# load generator its --duration.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
TASKS="${TASKS:-100000}"
CLIENTS="${CLIENTS:-200}"
RATE="${RATE:-20}"
UPDATES="${UPDATES:-1200}"
RESULTS="$ROOT/benches/results"
TMP="$(mktemp -d)"
SECRET="jobs-bench-secret"
# Below the kernel's ephemeral range (32768+), where TIME_WAIT client sockets of an earlier
# benchmark would make the bind fail.
PORT=$((20000 + RANDOM % 12000))

source "$ROOT/benches/lib/common.sh"
trap 'stop_server; stop_keeping_awake; rm -rf "$TMP"' EXIT

build_release
keep_cpus_awake
ulimit -n "$(ulimit -Hn)"
mkdir -p "$RESULTS"

start_server() {
  rm -f "$TMP/server.out"
  JWT_SECRET="$SECRET" DATABASE_URL="sqlite://$TMP/jobs.db" JOB_RESULT_DIR="$TMP/results" \
    HOST=127.0.0.1 PORT="$PORT" LOG_LEVEL=warn REST_RATE_LIMIT=0 SOCKET_RATE_LIMIT=0 \
    TASK_TIMEOUT_SECONDS=3600 taskset -c 0 "$TASKWIRE" >"$TMP/server.out" 2>"$TMP/server.err" &
  SERVER_PID=$!
  for _ in $(seq 1 150); do
    grep -q "listening" "$TMP/server.out" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server did not start" >&2; cat "$TMP/server.err" >&2; exit 1
}

URL="http://127.0.0.1:$PORT"
token() { JWT_SECRET="$SECRET" "$TASKWIRE" token --sub "$1" --workspace "$2" --ttl 86400; }
BENCH_TOKEN="$(token loadgen bench)"
BULK_TOKEN="$(token bulk bulk)"

# Waits for a job to finish (bounded) and prints its JSON.
wait_job() {
  local id="$1" limit="$2" start=$SECONDS job state
  while :; do
    job="$(curl -sf -H "authorization: Bearer $BULK_TOKEN" "$URL/api/jobs/$id")"
    state="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])' <<<"$job")"
    if [[ "$state" != queued && "$state" != running ]]; then echo "$job"; return 0; fi
    if (( SECONDS - start > limit )); then echo "job $id still $state after ${limit}s" >&2; exit 1; fi
    sleep 0.5
  done
}
job_id() { python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])'; }

echo "==> seeding $TASKS tasks with an import job" >&2
start_server
python3 -c "
import sys
print('title,status,assignee')
for i in range($TASKS):
    print(f'task {i},pending,user{i % 50}')
" >"$TMP/seed.csv"
seed_id="$(curl -sf -X POST -H "authorization: Bearer $BULK_TOKEN" -H 'content-type: text/csv' \
  --data-binary "@$TMP/seed.csv" "$URL/api/jobs?kind=import&format=csv" | job_id)"
wait_job "$seed_id" 600 >"$TMP/seed.json"
# A fresh process for the measurement, so its peak RSS is the job's and not the seeding's.
stop_server
start_server

echo "==> idle: $CLIENTS clients, $UPDATES updates at $RATE/s" >&2
taskset -c 1 "$LOADGEN" --url "$URL" --clients "$CLIENTS" --updates "$UPDATES" --rate "$RATE" \
  --token "$BENCH_TOKEN" --server-pid "$SERVER_PID" --duration 120 --drain 5 --label idle --json --freeze-probe \
  >"$TMP/idle.json"
RSS_IDLE="$(awk '/VmRSS/ {print $2}' /proc/$SERVER_PID/status)"

echo "==> busy: the same load while bulk_update changes $TASKS tasks" >&2
JOB_SUBMITTED=$(date +%s.%N)
LOADGEN_START=$JOB_SUBMITTED
bulk_id="$(curl -sf -X POST -H "authorization: Bearer $BULK_TOKEN" -H 'content-type: application/json' \
  -d '{"kind": "bulk_update", "params": {"filter": {}, "patch": {"status": "completed"}}}' \
  "$URL/api/jobs" | job_id)"
taskset -c 1 "$LOADGEN" --url "$URL" --clients "$CLIENTS" --updates "$UPDATES" --rate "$RATE" \
  --token "$BENCH_TOKEN" --server-pid "$SERVER_PID" --duration 120 --drain 5 --label busy --json --freeze-probe \
  >"$TMP/busy.json"
LOADGEN_DONE=$(date +%s.%N)
wait_job "$bulk_id" 1200 >"$TMP/bulk.json"
PEAK_KIB="$(awk '/VmHWM/ {print $2}' /proc/$SERVER_PID/status)"
stop_server

python3 - "$TMP" "$RESULTS/jobs.json" "$RSS_IDLE" "$PEAK_KIB" "$JOB_SUBMITTED" "$LOADGEN_DONE" "$TASKS" "${KEEP_AWAKE:-1}" <<'PY'
import json, sys, datetime
tmp, out, rss_idle, peak, submitted, loadgen_done, tasks, keep_awake = sys.argv[1:]
load = lambda n: json.load(open(f"{tmp}/{n}.json"))
idle, busy, bulk = load("idle"), load("busy"), load("bulk")
ts = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
seconds = ts(bulk["finished_at"]) - ts(bulk["started_at"])
overlap = min(float(loadgen_done), ts(bulk["finished_at"])) - float(submitted)
loadgen_seconds = float(loadgen_done) - float(submitted)
def phase(r):
    out = {"delivery_p99_ms": r["delivery"]["p99_ms"], "delivery_p50_ms": r["delivery"]["p50_ms"],
           "rest_p99_ms": r["rest"]["p99_ms"], "rest_p50_ms": r["rest"]["p50_ms"], "lost": r["lost"],
           "freezes": r.get("freezes")}
    if r.get("delivery_outside_freezes"):
        out["outside_freezes"] = {
            "delivery_p99_ms": r["delivery_outside_freezes"]["p99_ms"],
            "delivery_p50_ms": r["delivery_outside_freezes"]["p50_ms"],
            "rest_p99_ms": r["rest_outside_freezes"]["p99_ms"],
            "rest_p50_ms": r["rest_outside_freezes"]["p50_ms"],
        }
    return out
ratio = lambda b, i: round(b / max(i, 0.001), 2)
report = {
    "tasks": int(tasks), "cpus_kept_awake": keep_awake == "1", "state": bulk["state"], "result": bulk["result"],
    "job_seconds": round(seconds, 2), "tasks_per_second": round(bulk["result"]["updated"] / seconds),
    "peak_rss_mib": round(int(peak) / 1024, 1), "idle_rss_mib": round(int(rss_idle) / 1024, 1),
    "loadgen_busy_seconds_overlapping_job": round(overlap, 1),
    "loadgen_busy_seconds": round(loadgen_seconds, 1),
    "idle": phase(idle), "busy": phase(busy),
}
i, b = report["idle"], report["busy"]
report["delivery_p99_ratio"] = ratio(b["delivery_p99_ms"], i["delivery_p99_ms"])
report["rest_p99_ratio"] = ratio(b["rest_p99_ms"], i["rest_p99_ms"])
if "outside_freezes" in i and "outside_freezes" in b:
    io, bo = i["outside_freezes"], b["outside_freezes"]
    report["outside_freezes"] = {"delivery_p99_ratio": ratio(bo["delivery_p99_ms"], io["delivery_p99_ms"]),
                                 "rest_p99_ratio": ratio(bo["rest_p99_ms"], io["rest_p99_ms"])}
json.dump(report, open(out, "w"), indent=2)
print(f"| bulk_update of {report['tasks']} tasks (SQLite) | {report['job_seconds']} s, {report['tasks_per_second']} tasks/s, peak RSS {report['peak_rss_mib']} MiB (idle {report['idle_rss_mib']} MiB) |")
print("|---|---|")
print(f"| socket delivery p50 / p99, idle | {i['delivery_p50_ms']:.1f} / {i['delivery_p99_ms']:.1f} ms |")
print(f"| socket delivery p50 / p99, during the job | {b['delivery_p50_ms']:.1f} / {b['delivery_p99_ms']:.1f} ms ({report['delivery_p99_ratio']}x) |")
print(f"| REST update p50 / p99, idle | {i['rest_p50_ms']:.1f} / {i['rest_p99_ms']:.1f} ms |")
print(f"| REST update p50 / p99, during the job | {b['rest_p50_ms']:.1f} / {b['rest_p99_ms']:.1f} ms ({report['rest_p99_ratio']}x) |")
print(f"| events lost (idle / busy) | {i['lost']} / {b['lost']} |")
print(f"| load generator time inside the job | {report['loadgen_busy_seconds_overlapping_job']} of {report['loadgen_busy_seconds']} s |")
if "outside_freezes" in report:
    io, bo, r = i["outside_freezes"], b["outside_freezes"], report["outside_freezes"]
    fz = lambda p: f"{p['freezes']['count']} ({p['freezes']['total_ms']:.0f} ms)" if p.get("freezes") else "?"
    print(f"| machine freezes (idle / busy) | {fz(i)} / {fz(b)} |")
    print(f"| without samples in flight during a freeze: delivery p99 idle / busy | {io['delivery_p99_ms']:.1f} / {bo['delivery_p99_ms']:.1f} ms ({r['delivery_p99_ratio']}x) |")
    print(f"| without samples in flight during a freeze: REST p99 idle / busy | {io['rest_p99_ms']:.1f} / {bo['rest_p99_ms']:.1f} ms ({r['rest_p99_ratio']}x) |")
PY

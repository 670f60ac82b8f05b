#!/usr/bin/env bash
# Smoke run of the load generator, part of scripts/test.sh: starts a taskwire binary on a free
# port with a throw-away SQLite database, connects 50 Socket.IO clients, makes 20 updates and
# fails unless every client received every update. Takes a few seconds.
#
#   benches/smoke.sh [path/to/taskwire]      (default: target/debug/taskwire)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${1:-${TASKWIRE_BIN:-$ROOT/target/debug/taskwire}}"

TMP="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

PORT=0 HOST=127.0.0.1 DATABASE_URL="sqlite://$TMP/smoke.db" LOG_LEVEL=warn REST_RATE_LIMIT=0 \
  "$BIN" >"$TMP/server.out" 2>"$TMP/server.err" &
SERVER_PID=$!

# The server prints one `taskwire listening on http://ADDR` line once it accepts connections.
URL=""
for _ in $(seq 1 100); do
  URL="$(sed -n 's/^taskwire listening on \(http:[^ ]*\)$/\1/p' "$TMP/server.out")"
  [[ -n "$URL" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$TMP/server.err" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$URL" ]] || { echo "taskwire did not start" >&2; cat "$TMP/server.err" >&2; exit 1; }

cargo run --quiet -p taskwire-tools --bin loadgen -- --url "$URL" --clients 50 --updates 20 --rate 20 \
  --drain 5 --duration 20 --server-pid "$SERVER_PID" --label smoke --json --fail-on-loss \
  >"$TMP/report.json"
# Check the JSON itself too, so a report that stops carrying these fields fails loudly.
python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if (r["lost"], r["received"], r["duplicates"], r["connect_failures"]) == (0, 1000, 0, 0) else 1)
' "$TMP/report.json" || { echo "loadgen smoke run lost events:" >&2; cat "$TMP/report.json" >&2; exit 1; }
echo "loadgen smoke run: 50 clients x 20 updates, nothing lost" >&2

#!/usr/bin/env bash
# Property-based API testing: schemathesis (PyPI, pinned in tests/schemathesis/requirements.txt)
# generates requests from /api/openapi.json, valid and invalid bodies, queries, headers and
# path parameters, and follows the document's links (create -> get / patch / delete, submit ->
# get / cancel / result) in its stateful phase. Every response must be no 5xx and match the
# document: status code, content type, headers and body schema. Afterwards the server is
# stopped and its SQLite database is checked for half-written changes
# (tests/schemathesis/consistency.py). Before each run, openapi-spec-validator checks that the
# document the server serves is valid OpenAPI 3.1.
#
# Two runs, each on a fresh database and a free loopback port:
#   default  the binary's default settings (auth off; rate limits at their defaults);
#   auth     JWT_SECRET set and a bearer token sent (schemathesis also tries the operations
#            without it and with a broken one and expects 401), with a webhook receiver so
#            the notification operations have real rows; rate limits at their defaults,
#            which now apply (per user): a 429 must match the document too.
#
#   scripts/test-schemathesis.sh                        # builds target/debug/taskwire first
#   TASKWIRE_BIN=target/release/taskwire scripts/test-schemathesis.sh
#   SCHEMATHESIS_MAX_EXAMPLES=1000 SCHEMATHESIS_SEED=$RANDOM scripts/test-schemathesis.sh
#                                                       # a longer local run, another seed
#
# Settings (environment): SCHEMATHESIS_MAX_EXAMPLES (examples per operation and phase, default
# 250), SCHEMATHESIS_SEED (default 18, fixed so CI runs repeat), SCHEMATHESIS_RUNS (default
# "default auth"). Reports (JUnit XML, the server's log, the database) go to
# target/schemathesis/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib/taskwire-bin.sh"

MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-250}"
SEED="${SCHEMATHESIS_SEED:-18}"
RUNS="${SCHEMATHESIS_RUNS:-default auth}"
DIR="tests/schemathesis"
VENV="$DIR/.venv"
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/schemathesis"
mkdir -p "$OUT"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "==> creating $VENV" >&2
  "${PYTHON:-python3}" -m venv "$VENV"
fi
echo "==> pip install -r $DIR/requirements.txt" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$DIR/requirements.txt"

WORK="$(mktemp -d -t taskwire-schemathesis-XXXXXX)"
SERVER_PID=""
SINK_PID=""
cleanup() {
  for pid in "$SERVER_PID" "$SINK_PID"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Waits for "<prefix> <url-or-port>" on the first line matching prefix in FILE; prints the rest.
wait_for_line() {
  local file="$1" pattern="$2" pid="$3"
  for _ in $(seq 1 200); do
    if line=$(grep -m1 -E "$pattern" "$file" 2>/dev/null); then
      echo "$line"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "test-schemathesis: no line matching '$pattern' from pid $pid" >&2
  cat "$file" >&2 || true
  return 1
}

# Starts taskwire with the given extra environment on a fresh database; sets SERVER_PID, BASE
# and DB.
start_server() {
  local name="$1"
  shift
  DB="$WORK/$name.db"
  # Only what a run sets itself: nothing from the caller's environment changes the defaults.
  env -i PATH="$PATH" HOME="${HOME:-/tmp}" RUST_LOG=warn \
    HOST=127.0.0.1 PORT=0 DATABASE_URL="sqlite://$DB" "$@" \
    "$TASKWIRE_BIN" >"$WORK/$name.out" 2>"$OUT/$name-server.log" &
  SERVER_PID=$!
  local line
  line=$(wait_for_line "$WORK/$name.out" '^taskwire listening on http://' "$SERVER_PID")
  BASE="${line#taskwire listening on }"
}

# Stops the server with SIGTERM (a graceful shutdown must exit 0).
stop_server() {
  kill -TERM "$SERVER_PID"
  local status=0
  wait "$SERVER_PID" || status=$?
  SERVER_PID=""
  if [[ $status -ne 0 ]]; then
    echo "test-schemathesis: taskwire exited $status on SIGTERM" >&2
    return 1
  fi
}

# Runs schemathesis against BASE with extra arguments; the task streams never end, so they are
# left to the Rust tests (tests/openapi.rs, tests/replay.rs) that read them with a real client.
run_schemathesis() {
  local name="$1"
  shift
  local started=$SECONDS
  echo "==> openapi-spec-validator ($name): $BASE/api/openapi.json" >&2
  "$VENV/bin/python" -c 'import sys, urllib.request; open(sys.argv[2], "wb").write(urllib.request.urlopen(sys.argv[1]).read())' \
    "$BASE/api/openapi.json" "$OUT/$name-openapi.json" || return 1
  # (set -e does not apply inside a function called with ||, hence each || return.)
  "$VENV/bin/openapi-spec-validator" --schema 3.1 "$OUT/$name-openapi.json" || return 1
  echo "==> schemathesis ($name): $BASE/api/openapi.json, seed $SEED, $MAX_EXAMPLES examples per operation" >&2
  "$VENV/bin/schemathesis" --no-color run "$BASE/api/openapi.json" \
    --seed "$SEED" \
    --max-examples "$MAX_EXAMPLES" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --exclude-operation-id task_stream \
    --exclude-operation-id task_updates \
    --request-timeout 20 \
    --suppress-health-check all \
    --report junit --report-dir "$OUT/$name" \
    "$@" || return 1
  echo "==> schemathesis ($name) took $((SECONDS - started)) s" >&2
}

status=0
for run in $RUNS; do
  case "$run" in
    default)
      start_server default
      run_schemathesis default || status=1
      stop_server || status=1
      cp "$DB" "$OUT/default.db"
      "$VENV/bin/python" "$DIR/consistency.py" "$DB" || status=1
      ;;
    auth)
      "$VENV/bin/python" "$DIR/webhook_sink.py" >"$WORK/sink.out" &
      SINK_PID=$!
      sink=$(wait_for_line "$WORK/sink.out" '^listening ' "$SINK_PID")
      secret="schemathesis-$(date +%s%N)"
      token=$(JWT_SECRET="$secret" "$TASKWIRE_BIN" token --sub schemathesis --workspace fuzz --name Fuzz --ttl 3600)
      start_server auth JWT_SECRET="$secret" WEBHOOK_URL="http://127.0.0.1:${sink#listening }/hook"
      run_schemathesis auth --header "Authorization: Bearer $token" || status=1
      stop_server || status=1
      kill "$SINK_PID" && wait "$SINK_PID" || true
      SINK_PID=""
      cp "$DB" "$OUT/auth.db"
      "$VENV/bin/python" "$DIR/consistency.py" "$DB" --webhooks 1 || status=1
      ;;
    *)
      echo "test-schemathesis: unknown run '$run' (default, auth)" >&2
      exit 2
      ;;
  esac
done

if [[ $status -ne 0 ]]; then
  echo "test-schemathesis: FAILED (reports in $OUT)" >&2
else
  echo "test-schemathesis: every run passed" >&2
fi
exit $status

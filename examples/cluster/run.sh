#!/usr/bin/env bash
# Several taskwire processes on one Postgres database and one Redis, behind nginx, on one
# machine. Ctrl-C (or SIGTERM) stops them all.
#
#   createdb -h 127.0.0.1 -U postgres taskwire      # once
#   examples/cluster/run.sh                           # 3 processes, nginx on 127.0.0.1:8080
#   PROCESSES=4 LISTEN=0.0.0.0:8080 examples/cluster/run.sh
#
# Settings (environment): DATABASE_URL (postgres://postgres@127.0.0.1:5432/taskwire),
# REDIS_URL (redis://127.0.0.1:6379), PROCESSES (3), FIRST_PORT (3001: the processes listen on
# FIRST_PORT, FIRST_PORT+1, …), LISTEN (nginx, 127.0.0.1:8080), TASKWIRE_BIN (the release
# build, then the debug build, of this checkout). Every other taskwire setting (JWT_SECRET,
# WEBHOOK_URL, …) is passed through to all processes; they must agree.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/taskwire}"
export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
PROCESSES="${PROCESSES:-3}"
FIRST_PORT="${FIRST_PORT:-3001}"
LISTEN="${LISTEN:-127.0.0.1:8080}"
BIN="${TASKWIRE_BIN:-}"
if [[ -z "$BIN" ]]; then
  for candidate in "$ROOT/target/release/taskwire" "$ROOT/target/debug/taskwire"; do
    [[ -x "$candidate" ]] && BIN="$candidate" && break
  done
fi
[[ -x "${BIN:-}" ]] || { echo "run.sh: no taskwire binary; run \`cargo build --release\` or set TASKWIRE_BIN" >&2; exit 1; }
command -v nginx >/dev/null || { echo "run.sh: nginx not found (Debian: apt-get install nginx-light)" >&2; exit 1; }

WORK="$(mktemp -d -t taskwire-cluster.XXXXXX)"
chmod 755 "$WORK" # nginx's workers (not root) keep request bodies in temp dirs here
pids=()
stop() {
  trap - INT TERM EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  rm -rf "$WORK"
}
trap stop INT TERM EXIT

servers=""
for ((i = 0; i < PROCESSES; i++)); do
  port=$((FIRST_PORT + i))
  HOST=127.0.0.1 PORT="$port" "$BIN" > >(sed "s/^/[taskwire:$port] /") 2>&1 &
  pids+=($!)
  servers+="server 127.0.0.1:$port max_fails=1 fail_timeout=5s; "
done

sed -e "s|@LISTEN@|$LISTEN|" -e "s|@SERVERS@|$servers|" "$HERE/nginx.conf" > "$WORK/nginx.conf"
nginx -p "$WORK" -c "$WORK/nginx.conf" -e stderr &
pids+=($!)

echo "taskwire: $PROCESSES processes on ports $FIRST_PORT..$((FIRST_PORT + PROCESSES - 1)), nginx on http://$LISTEN (Ctrl-C stops all)" >&2
# A process that dies leaves the others running (try `kill -9` on one: its clients move on).
wait "${pids[@]}"

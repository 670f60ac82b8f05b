#!/usr/bin/env bash
# Client-compatibility suite: real socket.io clients (npm socket.io-client 4.x and 2.x,
# ngx-socket-io + RxJS, python-socketio) against the taskwire binary; three processes on
# Postgres + Redis behind nginx (cluster.test.mjs).
#
#   scripts/test-clients.sh                       # builds target/debug/taskwire first
#   TASKWIRE_BIN=target/release/taskwire scripts/test-clients.sh   # use an existing binary
#
# Runs both the Node and the Python part, then exits non-zero if either failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

source "$ROOT/scripts/lib/taskwire-bin.sh"

# The multi-process suite puts Debian's nginx in front of three processes (examples/cluster).
if ! command -v nginx >/dev/null; then
  echo "==> apt-get install nginx-light" >&2
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq nginx-light >/dev/null
fi
for tool in nginx redis-server psql; do
  command -v "$tool" >/dev/null || { echo "test-clients: $tool is required (multi-process suite)" >&2; exit 1; }
done

echo "==> npm ci (tests/clients)" >&2
(cd tests/clients && npm ci --no-audit --no-fund --loglevel=error >/dev/null)

# Before the Node suites: cluster.test.mjs runs python-socketio clients from this venv too.
PYDIR="tests/clients/python"
VENV="$PYDIR/.venv"
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "==> creating $VENV" >&2
  "${PYTHON:-python3}" -m venv "$VENV"
fi
echo "==> pip install -r $PYDIR/requirements.txt" >&2
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PYDIR/requirements.txt"

status=0

echo "==> node --test tests/clients/*.test.mjs" >&2
node --test --test-concurrency=2 --test-timeout=120000 tests/clients/*.test.mjs || status=1

echo "==> pytest $PYDIR" >&2
(cd "$PYDIR" && .venv/bin/python -m pytest -q -p no:cacheprovider) || status=1

if [[ $status -ne 0 ]]; then
  echo "test-clients: FAILED" >&2
else
  echo "test-clients: all client suites passed" >&2
fi
exit $status

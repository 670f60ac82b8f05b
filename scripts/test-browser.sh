#!/usr/bin/env bash
# Browser suite: the web board at / and the Angular and React examples in a real Chromium
# (Debian's package, driven by playwright-core from npm; nothing downloads a browser).
#
#   scripts/test-browser.sh                       # builds target/debug/taskwire first
#   TASKWIRE_BIN=target/release/taskwire scripts/test-browser.sh   # use an existing binary
#
# Installs what it needs: the chromium package when /usr/bin/chromium is missing (as root, or
# through sudo), and npm ci in tests/browser and in both examples. The examples are built by
# the tests themselves (npm run build), as a user would build them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

source "$ROOT/scripts/lib/taskwire-bin.sh"

export CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "$CHROMIUM_PATH" ]]; then
  echo "==> apt-get install chromium" >&2
  SUDO=()
  if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq chromium >/dev/null
fi
"$CHROMIUM_PATH" --version 2>/dev/null >&2

# The committed lockfiles pin every version. The Angular build tools pull in optional native
# binaries for each platform; a registry mirror that lacks some of them leaves those entries
# out of the lockfile, and `npm ci` then refuses it as out of sync. `npm install` installs the
# same locked versions for this platform, so it is the fallback.
for dir in tests/browser examples/angular-tasks examples/react-tasks; do
  echo "==> npm ci ($dir)" >&2
  if ! (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1); then
    echo "    npm ci refused the lockfile; installing the locked versions with npm install" >&2
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  fi
done

echo "==> node --test tests/browser/*.test.mjs" >&2
# One file at a time: each starts Chromium, and two cores are plenty for one browser.
NG_CLI_ANALYTICS=false node --test --test-concurrency=1 --test-timeout=300000 tests/browser/*.test.mjs

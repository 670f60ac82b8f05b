#!/usr/bin/env bash
# The whole test suite, as CI runs it: the engine.io fork check, formatting, lints, Rust unit
# + integration tests (on SQLite and on the Postgres at 127.0.0.1:5432), then the client-compatibility suites with the
# real socket.io clients from npm and PyPI, and schemathesis against the OpenAPI document.
# Installs what those need (npm ci, Python venvs).
#
#   scripts/test.sh
#
# Needs: Rust toolchain, Node 20 + npm, Python 3.11, PostgreSQL reachable as
# postgres://postgres@127.0.0.1:5432/test (override with TEST_POSTGRES_URL).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# First: everything below is meaningless if socketioxide silently left the patched engine.io.
echo "==> engine.io fork in use (scripts/check-engineio-fork.sh)" >&2
scripts/check-engineio-fork.sh

echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check

echo "==> cargo clippy --workspace --all-targets -- -D warnings" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "==> cargo test --workspace" >&2
cargo test --workspace --all-targets --quiet

echo "==> load generator smoke run (50 clients)" >&2
cargo build --bin taskwire --quiet
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/taskwire"
benches/smoke.sh "$BIN"

echo "==> client compatibility suites" >&2
TASKWIRE_BIN="$BIN" scripts/test-clients.sh

echo "==> schemathesis against the OpenAPI document" >&2
TASKWIRE_BIN="$BIN" scripts/test-schemathesis.sh

echo "==> browser suite" >&2
TASKWIRE_BIN="$BIN" scripts/test-browser.sh

# Sourced by the test scripts: sets and exports TASKWIRE_BIN, building the debug binary when
# it is not given, and fails early when it is not an executable. Expects ROOT to be set.
if [[ -z "${TASKWIRE_BIN:-}" ]]; then
  echo "==> cargo build --bin taskwire" >&2
  cargo build --bin taskwire
  TASKWIRE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/taskwire"
fi
case "$TASKWIRE_BIN" in
  /*) ;;
  *) TASKWIRE_BIN="$ROOT/$TASKWIRE_BIN" ;;
esac
export TASKWIRE_BIN
if [[ ! -x "$TASKWIRE_BIN" ]]; then
  echo "$(basename "$0"): taskwire binary not found or not executable: $TASKWIRE_BIN" >&2
  exit 1
fi

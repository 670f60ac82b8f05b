#!/usr/bin/env bash
# Runs the libFuzzer targets in fuzz/ for a bounded time each and prints, per target, the
# executions, executions per second and whether it crashed. Stops by itself; exits 1 when a
# target crashed (its input is saved in fuzz/artifacts/<target>/). See docs/testing.md.
#
#   scripts/fuzz.sh                    # every target, 60 s each
#   FUZZ_SECONDS=600 scripts/fuzz.sh task_body import_json
#   FUZZ_SANITIZER=address scripts/fuzz.sh
#
# FUZZ_SECONDS     seconds per target (default 60)
# FUZZ_SANITIZER   none (default: fastest; panics and failed assertions are still found) or
#                  address (also finds memory errors in unsafe and C code; slower)
# FUZZ_TIMEOUT     seconds one input may take before it counts as a hang (default 10)
#
# Needs the nightly toolchain (rustup toolchain install nightly); installs cargo-fuzz when
# missing. The seed corpora in fuzz/corpus/<target>/ are read, never written: what a run
# learns goes to fuzz/work/<target>/ (ignored by git) and is reused by the next run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT/fuzz"

SECONDS_EACH="${FUZZ_SECONDS:-60}"
SANITIZER="${FUZZ_SANITIZER:-none}"
TIMEOUT="${FUZZ_TIMEOUT:-10}"

case "$SANITIZER" in
  none | address) ;;
  *) echo "FUZZ_SANITIZER must be none or address (got $SANITIZER)" >&2; exit 2 ;;
esac

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Debug assertions on: overflow checks turn silent wrap-arounds into findings.
build_flags=(--sanitizer "$SANITIZER" --debug-assertions)

# One build of every target; each run below then finds it up to date.
echo "==> building the fuzz targets (nightly, sanitizer: $SANITIZER)" >&2
cargo +nightly fuzz build "${build_flags[@]}"

logs="$ROOT/fuzz/target/fuzz-logs"
mkdir -p "$logs"
results=()
failed=0
for target in "${targets[@]}"; do
  work="$ROOT/fuzz/work/$target"
  seeds="$ROOT/fuzz/corpus/$target"
  mkdir -p "$work" "$seeds" "$ROOT/fuzz/artifacts/$target"
  dict=()
  case "$target" in
    task_body | socket_command | import_csv | import_json | job_upload)
      dict=("-dict=$ROOT/fuzz/dicts/task.dict") ;;
  esac
  log="$logs/$target.log"
  echo "==> $target for ${SECONDS_EACH}s (log: $log)" >&2
  status=0
  # The first corpus directory receives new inputs, so the committed seeds stay as they are.
  cargo +nightly fuzz run "${build_flags[@]}" "$target" "$work" "$seeds" -- \
    -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -rss_limit_mb=2048 \
    -print_final_stats=1 "${dict[@]}" >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  # How long it really ran: a crash ends a run early.
  took="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -n 1)"
  if [ -z "$runs" ]; then
    # A crash ends the run before the final stats; the last status line has the count.
    runs="$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')"
    rate="$(grep -oE 'exec/s: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+')"
  fi
  if [ "$status" -eq 0 ]; then
    outcome="ok"
  else
    failed=1
    artifact="$(grep -oE "(crash|leak|timeout|oom|slow-unit)-[0-9a-f]+" "$log" | tail -n 1)"
    outcome="CRASHED (exit $status${artifact:+, fuzz/artifacts/$target/$artifact})"
  fi
  results+=("$(printf '%-16s %6ss %12s runs %9s exec/s  %s' \
    "$target" "${took:--}" "${runs:-?}" "${rate:-?}" "$outcome")")
done

echo
echo "target           seconds    executions     exec/s  result"
printf '%s\n' "${results[@]}"
exit "$failed"

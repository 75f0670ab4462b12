#!/usr/bin/env bash
# Fuzzing campaigns (cargo-fuzz, libFuzzer, nightly): scripts/fuzz.sh [TARGET|all] [SECONDS] [PARALLEL]
#
# Runs each target for SECONDS (default 600) at the lowest priority, one libFuzzer job each, PARALLEL
# targets at a time (default 1), over its committed corpus in fuzz/corpus/TARGET (new inputs are added
# there: reduce it with scripts/fuzz_corpus_cap.py, see there, before committing). A crash leaves its input
# in fuzz/artifacts/TARGET; copy it to fuzz/regressions/TARGET so that the replay test (tests/fuzz_replay.rs)
# keeps it, and fix it. Prints one line per target: executions, executions per second, coverage, crashes.
# Logs in $FUZZ_LOGS (default target/fuzz-logs). No network; bounded in time; every fuzzer it starts ends.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/fuzz"
target=${1:-all}
secs=${2:-600}
parallel=${3:-1}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target/fuzz-nightly}
logs=${FUZZ_LOGS:-$root/target/fuzz-logs}
mkdir -p "$logs"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# -s none: the workspace forbids unsafe code, so AddressSanitizer adds little but cost; -a keeps
# debug assertions and overflow checks on in the optimised build.
flags=(-s none -O -a --fuzz-dir "$fuzz")
if [ "$target" = all ]; then
  mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir "$fuzz")
else
  targets=("$target")
fi
cargo +nightly fuzz build "${flags[@]}"

run_one() {
  local t=$1 dir="$logs/$1"
  rm -rf "$dir" && mkdir -p "$dir" "$fuzz/corpus/$t" "$fuzz/artifacts/$t" && touch "$dir/started"
  # -jobs=1 runs one worker whose output goes to fuzz-0.log in the current directory.
  (cd "$dir" && nice -n 19 cargo +nightly fuzz run "${flags[@]}" "$t" "$fuzz/corpus/$t" -- \
      -max_total_time="$secs" -timeout=10 -jobs=1 -workers=1 -print_final_stats=1 \
      -artifact_prefix="$fuzz/artifacts/$t/" >"$dir/run.log" 2>&1) || true
  local log="$dir/fuzz-0.log"
  [ -f "$log" ] || log="$dir/run.log"
  local execs rate cov crashes
  execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | awk '{print $2}')
  rate=$(grep -ao 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -1 | awk '{print $2}')
  cov=$(grep -ao 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  # Only what this run left (older artifacts may still be there).
  crashes=$(find "$fuzz/artifacts/$t" -type f -newer "$dir/started" \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
  printf '%s: %s s, %s executions, %s exec/s, cov %s, crashes/ooms/timeouts %s\n' \
    "$t" "$secs" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$crashes" | tee "$dir/summary"
}

running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$parallel" ]; then
    wait -n
    running=$((running - 1))
  fi
done
wait
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

#!/usr/bin/env bash
# Browser tests of the web console (called by .ci/run). Installs Debian's chromium and the pinned
# test dependencies (npm ci) when missing, builds the binary, generates a small data set with one
# hostile `<script>` label, starts `shuzhu demo` in the background (every listener on a free port,
# URLs in demo.json), runs the tests with node's test runner, stops the demo and exits non-zero on
# any failure. Screenshots go to target/screenshots/.
#
# Hooks into the demo, both for tests only: `--data` with the hostile cases appended by hostile.mjs,
# and `--stop-node-on-usr1 NODE` (the last test sends SIGUSR1 to see a partial answer).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

if [ ! -x /usr/bin/chromium ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
fi
if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
  (cd "$here" && npm ci --no-audit --no-fund)
fi

cargo build --locked --bin shuzhu
bin="${CARGO_TARGET_DIR:-$root/target}/debug/shuzhu"

work=$(mktemp -d)
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ]; then
    kill "$demo_pid" 2>/dev/null || true
    wait "$demo_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" gen --out "$work/data" --courts 3 --cases-per-court 4000 >/dev/null
court=$(cd "$work/data" && for d in */; do [ -f "$d/cases.csv" ] && { echo "${d%/}"; break; }; done)
node "$here/hostile.mjs" "$work/data/$court"

"$bin" demo --dir "$work/demo" --data "$work/data" --stop-node-on-usr1 "$court" >"$work/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 600); do
  grep -q "Serving until" "$work/demo.log" && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$work/demo.log"; echo "demo exited early" >&2; exit 1; }
  sleep 0.2
done
grep -q "Serving until" "$work/demo.log" || { tail -20 "$work/demo.log"; echo "demo did not start" >&2; exit 1; }

mkdir -p "$root/target/screenshots"
# The last file stops a node for its partial-answer test: console.test.js when the demo serves the
# console, else answer.test.js.
files="verify.test.js answer.test.js"
if grep -q '"console"' "$work/demo/demo.json"; then
  files="$files console.test.js"
else
  echo "demo.json has no console link: the gateway serves no console, so the console tests cannot run" >&2
  exit 1
fi
last=${files##* }
status=0
: >"$work/tests.log"
for f in $files; do # one run per file, in this order
  stop=""
  [ "$f" = "$last" ] && stop="$court"
  (cd "$here" && SHUZHU_DEMO="$work/demo" SHUZHU_BIN="$bin" DEMO_PID="$demo_pid" STOP_NODE="$stop" \
    SCREENSHOTS="$root/target/screenshots" node --test --test-reporter=spec "$f") \
    | tee -a "$work/tests.log" || status=$?
done
pass=$(awk '/^ℹ pass /{n += $3} END {print n + 0}' "$work/tests.log")
fail=$(awk '/^ℹ fail /{n += $3} END {print n + 0}' "$work/tests.log")
echo "browser tests: ${pass} passed, ${fail} failed"
if [ "$status" -ne 0 ]; then
  echo "--- demo log (tail) ---"
  tail -30 "$work/demo.log"
  cp "$work/tests.log" "$root/target/browser-tests.log"
fi
exit "$status"

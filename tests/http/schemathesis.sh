#!/usr/bin/env bash
# Robustness of the HTTPS JSON API: schemathesis (from PyPI, pinned) generates requests from the
# gateway's own /v1/openapi.json against a small demo federation, as a requester and as an auditor,
# and checks that no answer is a 5xx and every answer (status, content type, body) matches the
# document. `positive_data_acceptance` is left out: the pipeline refuses requests the document cannot
# call invalid (an unknown indicator, month 13, `from` not before `to`, a tree size beyond the ledger)
# with the documented 400, which that check counts as a failure. Bounded: a few examples per operation, under two minutes. Installs schemathesis into a
# venv under the cargo target directory when missing; needs python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
version=4.32.5
target="${CARGO_TARGET_DIR:-target}"
venv="$target/schemathesis-venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$version"
fi
cargo build --locked --quiet --bin shuzhu
dir=$(mktemp -d)
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ]; then kill "$demo_pid" 2>/dev/null || true; wait "$demo_pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT
"$target/debug/shuzhu" demo --dir "$dir/demo" --courts 2 --cases-per-court 500 >"$dir/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 120); do
  [ -f "$dir/demo/demo.json" ] && grep -q "Serving until" "$dir/demo.log" && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$dir/demo.log"; echo "schemathesis: the demo did not start" >&2; exit 1; }
  sleep 1
done
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$dir/demo/demo.json" "$1"; }
http=$(field http)
ca=$(field ca)
status=0
for who in requester auditor; do
  token=$(tr -d '\n' <"$dir/demo/tokens/$who.jwt")
  echo "schemathesis $version against $http as $who"
  timeout 150 "$venv/bin/schemathesis" run "$http/v1/openapi.json" \
    --url "$http" \
    --header "Authorization: Bearer $token" \
    --tls-verify "$ca" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --max-examples 15 \
    --seed 1 \
    --workers 1 \
    --no-color || status=$?
done
exit "$status"

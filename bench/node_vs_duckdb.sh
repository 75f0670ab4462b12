#!/usr/bin/env bash
# Node engine vs DuckDB, import speed and resident bytes per case (issue 6; a benchmark, not a test).
#
#   bench/node_vs_duckdb.sh [--cases N] [--runs R] [--dir DIR]
#
# Generates N cases (default 10 000 000) over 32 courts with the deterministic generator and joins them
# into one CSV (one node holds them all), imports it into a fresh node store (validation, minimisation,
# sled, fsync), loads the engine, then runs 3 indicators × 2 groupings on the node and in DuckDB (same
# CSV in a DuckDB table, one session), alternating, R times each (default 5), checks that every group's
# numerator and denominator agree, and prints min/median times and node/DuckDB ratios.
set -euo pipefail

CASES=10000000
RUNS=5
DIR=/tmp/shuzhu-bench
while [ $# -gt 0 ]; do
  case "$1" in
    --cases) CASES="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --dir) DIR="$2"; shift 2 ;;
    *) echo "usage: $0 [--cases N] [--runs R] [--dir DIR]" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
COURTS=32
PER=$(( (CASES + COURTS - 1) / COURTS ))

python3 -c "import duckdb" 2>/dev/null || python3 -m pip install --quiet duckdb
cargo build --release -p shuzhu-gen --example generate -p shuzhu-node --example engine_bench

mkdir -p "$DIR"
CSV="$DIR/cases-$COURTS-$PER.csv"
if [ ! -s "$CSV" ]; then
  rm -rf "$DIR/gen"
  "$TARGET/release/examples/generate" "$DIR/gen" "$COURTS" "$PER" | tail -1
  first=1
  for f in "$DIR"/gen/court-*/cases.csv; do
    if [ $first = 1 ]; then cat "$f"; first=0; else tail -n +2 "$f"; fi
  done > "$CSV.tmp"
  mv "$CSV.tmp" "$CSV"
  rm -rf "$DIR/gen"
fi
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); cases: $((PER * COURTS)) in $CSV"

"$TARGET/release/examples/engine_bench" import --csv "$CSV" --store "$DIR/store"
"$TARGET/release/examples/engine_bench" query --csv "$CSV" --store "$DIR/store" --runs "$RUNS" --duckdb "$ROOT/bench/duckdb_side.py"

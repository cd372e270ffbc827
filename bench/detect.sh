#!/usr/bin/env bash
# Detection benchmarks: the NAB score per profile (our scorer, bench/nab_score.py), points
# scored per second per core (Criterion), and memory for a simulated fleet.
#   NAB_DIR   NAB layout to score (default /work/shared/data/nab)
#   DEVICES   simulated devices for the memory run (default 1000000, 8 metrics each)
set -euo pipefail
cd "$(dirname "$0")/.."
NAB_DIR="${NAB_DIR:-/work/shared/data/nab}"
DEVICES="${DEVICES:-1000000}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2- | tr ' ' '\n' | grep -E '^(avx2|avx512f|sha_ni|aes|bmi2|fma)$' | tr '\n' ' ')"

cargo build -q --release -p edgeward-detect --examples
target="${CARGO_TARGET_DIR:-target}/release/examples"

echo "== NAB ($NAB_DIR): targets above numenta's 67.21 / 61.15 / 72.15 on this subset"
"$target/nab" "$NAB_DIR" "$OUT"
python3 bench/nab_score.py "$NAB_DIR" "$OUT"

echo "== points scored per second per core (target >= 500,000)"
cargo bench -q -p edgeward-detect --bench score -- --warm-up-time 1 --measurement-time 3 2>&1 | grep -E '^score/|thrpt'

echo "== memory: $DEVICES devices x 8 metrics (target <= 4 GiB; state target <= 256 bytes)"
DEVICES="$DEVICES" "$target/fleet_memory"

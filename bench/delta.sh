#!/usr/bin/env bash
# Bytes fetched by a delta update of a 256 MiB image: (a) 1 % scattered change, (b) a
# 4 MiB insertion in the middle, (c) a new model file next to an old one. Target: at most
# 5 % of the full size for (a) and (b). Runs crates/edgeward-update/examples/delta_bench.rs
# (release build); needs about 1.5 GiB of RAM and of space in $TMPDIR.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2- | tr ' ' '\n' | grep -E '^(sha_ni|avx2|avx512f|aes|pclmulqdq|bmi2)$' | tr '\n' ' ')"
echo "cores: $(nproc)"
# DELTA_AVG_SIZE=4096 bench/delta.sh compares another average chunk size.
cargo run --quiet --release -p edgeward-update --example delta_bench

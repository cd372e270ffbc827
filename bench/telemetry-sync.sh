#!/usr/bin/env bash
# SQLite telemetry ingest with `[database] telemetry_sync = "full"` (the default: every
# acknowledged batch fsynced before the answer) against "normal" (WAL without an fsync per
# commit: a power loss can lose the last acknowledged batches, never corrupt the database),
# at 8 and 128 devices. Authenticated `POST /v1/device/telemetry` over mTLS keep-alive,
# one connection per enrolled device (crates/edgeward-server/examples/loadgen.rs), the
# database in a temporary directory on the disk TMPDIR is on.
#
#   bench/telemetry-sync.sh [SECONDS] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-1}"
rounds="${2:-5}"
cargo build -q --release -p edgeward-server --example loadgen
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
fs=$(df -T "${TMPDIR:-/tmp}" | awk 'NR == 2 { print $2 " on " $1 }')
echo "CPU: ${cpu:-unknown}, $(nproc) cores; database on ${fs:-unknown}; ${rounds} rounds of ${seconds} s"
for devices in 8 128; do
  for sync in full normal; do
    result=$(LOADGEN_PHASES=telemetry LOADGEN_TELEMETRY_SYNC=$sync \
      cargo run -q --release -p edgeward-server --example loadgen -- "$seconds" "$devices" "$rounds")
    echo "$result" | python3 -c "$(cat <<'PY'
import json, sys
r = json.load(sys.stdin)
print("  %3d devices  telemetry_sync = %-7s %8.0f req/s  %6.1f us CPU/req  errors %s"
      % (r["concurrency"], r["telemetry_sync"], r["telemetry_per_sec"], r["telemetry_cpu_us"], r["errors"]["telemetry"]))
PY
)"
  done
done

#!/usr/bin/env bash
# edgeward-server throughput on loopback with mutual TLS and keep-alive: authenticated
# telemetry POSTs as a ratio of the same server's unauthenticated /healthz (target ≥ 0.7),
# full mTLS handshakes per second, and token verifications per second per core (criterion;
# target ≥ 1,000,000). Server and load generator share this machine's cores.
#
# Throughput is measured at saturation: 128 keep-alive connections by default. With fewer
# (32) an acknowledged telemetry POST waits for its group commit and the cores idle meanwhile,
# so the ratio then measures commit latency rather than work per request. The load generator
# also prints the CPU time per request of each phase (server and client together), which
# stays comparable when the machine is busy. The phases alternate in twenty rounds of one
# second each, so that drift in the machine's speed (large on shared VMs) weighs on both.
#
#   bench/server.sh [SECONDS] [CONCURRENCY] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-1}"
concurrency="${2:-128}"
rounds="${3:-20}"
cargo build -q --release -p edgeward-server --example loadgen
result=$(cargo run -q --release -p edgeward-server --example loadgen -- "$seconds" "$concurrency" "$rounds")
echo "$result" | python3 -c "$(cat <<'PY'
import json, sys
r = json.load(sys.stdin)
print("mTLS keep-alive, %d connections, %d rounds of %d s per phase" % (r["concurrency"], r["rounds"], r["seconds"]))
print("  GET /healthz (no token)           %10.0f req/s  %5.1f us CPU/req" % (r["healthz_per_sec"], r["healthz_cpu_us"]))
print("  POST /v1/device/telemetry (auth)  %10.0f req/s  %5.1f us CPU/req" % (r["telemetry_per_sec"], r["telemetry_cpu_us"]))
ratio = r["telemetry_to_healthz"]
print("  ratio authenticated/healthz       %10.3f   (target >= 0.7: %s)" % (ratio, "met" if ratio >= 0.7 else "MISSED"))
print("  same, CPU per request             %10.3f" % r["cpu_ratio"])
print("  full mTLS handshakes              %10.0f /s" % r["full_handshakes_per_sec"])
print("  errors                            %s" % r["errors"])
PY
)"
echo
echo "token verification, one core (criterion):"
cargo bench -q -p edgeward-proto --bench tokens -- --noplot 2>/dev/null | grep -E "^token/|thrpt" | sed 's/^/  /'

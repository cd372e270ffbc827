#!/usr/bin/env bash
# Telemetry over MQTT/TLS through a real Mosquitto on loopback (Debian's mosquitto package):
# batches per second edgeward-server ingests from many publishing devices (each one a device
# certificate, QoS 1, at most WINDOW unacknowledged: a bounded load) as a ratio of what the
# broker alone delivers to one plain subscriber for the same publishers (target >= 0.8),
# and the time from a revocation request to the device's live session being closed by the
# broker (target <= 1 s). Server, broker and load generator share this machine's cores.
#
#   bench/mqtt.sh [SECONDS] [DEVICES] [WINDOW] [REVOCATIONS]
#
# The registry is SQLite; with EDGEWARD_BENCH_POSTGRES=postgres://USER@HOST:PORT/DB set, a
# fresh database on that PostgreSQL server.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-5}"
devices="${2:-32}"
window="${3:-16}"
revocations="${4:-5}"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'aes|avx2|avx512f|sha_ni|pclmulqdq|bmi2' | tr '\n' ' ')"
echo "broker: $(/usr/sbin/mosquitto -h 2>/dev/null | head -1)"
cargo build -q --release -p edgeward-server --example mqtt_loadgen
result=$(cargo run -q --release -p edgeward-server --example mqtt_loadgen -- "$seconds" "$devices" "$window" "$revocations")
echo "$result" | python3 -c "$(cat <<'PY'
import json, sys
r = json.load(sys.stdin)
print("%d devices over MQTT/TLS (QoS 1, window %d), %d s per phase, registry on %s" % (r["devices"], r["window"], r["seconds"], r["backend"]))
print("  broker alone, delivered to one subscriber  %10.0f msg/s" % r["broker_alone_per_sec"])
print("  edgeward-server ingested (gate + store)    %10.0f msg/s" % r["server_ingested_per_sec"])
ratio = r["ratio"]
print("  ratio server/broker                        %10.3f   (target >= 0.8: %s)" % (ratio, "met" if ratio >= 0.8 else "MISSED"))
k = sorted(r["revocation_to_disconnect_ms"])
if k:
    worst = k[-1]
    print("  revocation to disconnect                   median %.1f ms, worst %.1f ms over %d   (target <= 1000 ms: %s)" % (k[len(k)//2], worst, len(k), "met" if worst <= 1000 else "MISSED"))
PY
)"

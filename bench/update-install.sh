#!/usr/bin/env bash
# Time for a device to check for and install a 256 MiB update from a local HTTP server
# (`edgeward-agent update`: TUF refresh, hardware and counter checks, every chunk verified
# against its signed SHA-256 and written into the inactive A/B slot, the whole checked
# against the signed hashes, fsynced, switched on trial), as a ratio of the time to
# download the same file with curl and run sha256sum on it. Target: at most 1.3x.
# The server is bench/range_server.py (python's http.server plus range requests) on
# loopback; both sides fetch from it. Builds edgeward and edgeward-agent (dev profile,
# optimized). Works in ${BENCH_DIR:-/tmp/edgeward-bench/update}; needs about 1 GiB there.
# Best of ${RUNS:-5} runs each, the two sides alternating (the machine may be shared).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SIZE_MIB=${SIZE_MIB:-256}
RUNS=${RUNS:-5}
DIR=${BENCH_DIR:-/tmp/edgeward-bench/update}

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2- | tr ' ' '\n' | grep -E '^(sha_ni|avx2|avx512f|aes|pclmulqdq|bmi2)$' | tr '\n' ' ')"
echo "cores: $(nproc)"

cargo build --quiet -p edgeward-cli -p edgeward-agent
EDGEWARD=$CARGO_TARGET_DIR/debug/edgeward
AGENT=$CARGO_TARGET_DIR/debug/edgeward-agent

rm -rf "$DIR"
mkdir -p "$DIR"
cd "$DIR"
head -c $((SIZE_MIB << 20)) /dev/urandom > image.img
export EDGEWARD_ROOT_PASSPHRASE=bench-passphrase
"$EDGEWARD" release publish --repo repo --version 2.0.0 --hardware bench \
    --security-counter 1 --kind firmware image.img > /dev/null
TARGET=$(ls repo/targets/*.image.img)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 "$ROOT/bench/range_server.py" "$DIR/repo" "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs -o /dev/null "http://127.0.0.1:$PORT/metadata/timestamp.json" && break; sleep 0.1; done
URL="http://127.0.0.1:$PORT/targets/$(basename "$TARGET")"

device() {
    rm -rf device && mkdir -p device
    cat > device/agent.toml <<TOML
server = "https://127.0.0.1:1"
enroll_server = "https://127.0.0.1:1"
server_ca = "$DIR/device/no-ca.pem"
element = "soft:$DIR/device/se"
state_dir = "$DIR/device/state"

[update]
hardware = "bench"
metadata_url = "http://127.0.0.1:$PORT/metadata/"
targets_url = "http://127.0.0.1:$PORT/targets/"
trusted_root = "$DIR/repo/metadata/1.root.json"

[[update.component]]
name = "firmware"
target = "image.img"
slots = ["$DIR/device/slot-a", "$DIR/device/slot-b"]
health_command = ["true"]
TOML
}

now() { date +%s.%N; }
best() { sort -g | head -1; }

cat "$TARGET" > /dev/null   # the server's file in the page cache for both sides
agent_times=() curl_times=() sum_times=()
for _ in $(seq "$RUNS"); do
    device
    sync   # no writeback of the previous run's files during the timed one
    t0=$(now)
    "$AGENT" update --config device/agent.toml --json > device/result.json
    t1=$(now)
    grep -q '"status": "installed"\|"status": "awaiting_reboot"' device/result.json \
        || { cat device/result.json; echo "the update did not install" >&2; exit 1; }
    cmp -s device/slot-b image.img || { echo "slot b does not hold the image" >&2; exit 1; }
    agent_times+=("$(echo "$t1 - $t0" | bc -l)")

    rm -f downloaded.img
    sync
    t0=$(now)
    curl -fs -o downloaded.img "$URL"
    t1=$(now)
    sha256sum downloaded.img > /dev/null
    t2=$(now)
    curl_times+=("$(echo "$t1 - $t0" | bc -l)")
    sum_times+=("$(echo "$t2 - $t1" | bc -l)")
done

A=$(printf '%s\n' "${agent_times[@]}" | best)
C=$(printf '%s\n' "${curl_times[@]}" | best)
S=$(printf '%s\n' "${sum_times[@]}" | best)
B=$(echo "$C + $S" | bc -l)
printf '\n%-52s %8s\n' "${SIZE_MIB} MiB update, best of $RUNS" "seconds"
printf '%-52s %8.2f\n' "edgeward-agent update (check + install, fsynced)" "$A"
printf '%-52s %8.2f\n' "curl download" "$C"
printf '%-52s %8.2f\n' "sha256sum" "$S"
printf '%-52s %8.2f\n' "curl + sha256sum" "$B"
printf '%-52s %8.2fx (target <= 1.3x)\n' "ratio" "$(echo "$A / $B" | bc -l)"

#!/usr/bin/env bash
# The device agent's resident memory (target <= 20 MiB): a real edgeward-server on loopback
# (SQLite, free ports, a scratch data directory), one device registered through the admin
# API, then `edgeward-agent run` (soft secure element) enrolling and delivering telemetry
# batches for SECONDS; VmRSS and VmHWM (the peak) come from /proc/PID/status of the agent.
#
#   bench/agent-rss.sh [SECONDS]        (default 20)
#
# Release builds of edgeward-agent and edgeward-server ($CARGO_TARGET_DIR/release), or the
# binaries named by EDGEWARD_AGENT / EDGEWARD_SERVER.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
target="${CARGO_TARGET_DIR:-target}"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores"
echo "flags: $(grep -m1 '^flags' /proc/cpuinfo | grep -o -w -E 'aes|avx2|avx512f|sha_ni|pclmulqdq|bmi2' | tr '\n' ' ')"

if [ -z "${EDGEWARD_AGENT:-}" ] || [ -z "${EDGEWARD_SERVER:-}" ]; then
  cargo build -q --release -p edgeward-agent -p edgeward-server --bins
fi
agent="${EDGEWARD_AGENT:-$target/release/edgeward-agent}"
server="${EDGEWARD_SERVER:-$target/release/edgeward-server}"

work=$(mktemp -d)
server_pid="" agent_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$server" --data-dir "$work/server" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
  --enroll-listen 127.0.0.1:0 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 600); do
  grep -q 'enrollment listening' "$work/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
port() { sed -n "s|.*$1 listening on https://127.0.0.1:\([0-9]*\).*|\1|p" "$work/server.log" | tail -n 1; }
device_port=$(port 'device API (mTLS)') admin_port=$(port 'admin API') enroll_port=$(port enrollment)
ca="$work/server/server-ca.pem"
curl -sSf --cacert "$ca" -H "Authorization: Bearer $(cat "$work/server/admin-token")" \
  -d '{"id":"rss-bench-1","hardware_class":"bench"}' "https://127.0.0.1:$admin_port/v1/admin/devices" |
  sed -n 's/.*"enrollment_token":"\([^"]*\)".*/\1/p' >"$work/token"
[ -s "$work/token" ] || { echo "no enrollment token from the admin API" >&2; exit 1; }

cat >"$work/agent.toml" <<EOF
server = "https://127.0.0.1:$device_port"
enroll_server = "https://127.0.0.1:$enroll_port"
server_ca = "$ca"
element = "soft:$work/se"
state_dir = "$work/agent"
enrollment_token_file = "$work/token"
telemetry_interval_ms = 100
command_interval_ms = 250
EOF
"$agent" run --config "$work/agent.toml" 2>"$work/agent.log" &
agent_pid=$!
status() { "$agent" status --json --config "$work/agent.toml" 2>/dev/null || true; }
for _ in $(seq 1 600); do
  status | grep -q '"telemetry_sent": *[1-9]' && break
  kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; exit 1; }
  sleep 0.1
done
sleep "$seconds"
kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; exit 1; }
s=$(status)
sent=$(sed -n 's/.*"telemetry_sent": *\([0-9]*\).*/\1/p' <<<"$s")
state=$(sed -n 's/.*"state": *"\([a-z_]*\)".*/\1/p' <<<"$s")
kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$agent_pid/status"; }
rss=$(kib VmRSS) hwm=$(kib VmHWM) anon=$(kib RssAnon) file=$(kib RssFile) threads=$(kib Threads)
echo "agent $state after enrollment and ${seconds}s of telemetry every 100 ms, delivered every 250 ms: $sent events sent"
awk -v r="$rss" -v h="$hwm" -v a="$anon" -v f="$file" -v t="$threads" 'BEGIN {
  printf "  VmRSS  %6.2f MiB (heap and stacks %.2f, mapped binary and libraries %.2f)\n", r / 1024, a / 1024, f / 1024
  printf "  VmHWM  %6.2f MiB (peak)\n  threads %d\n", h / 1024, t
  printf "  target VmHWM <= 20 MiB: %s\n", (h <= 20 * 1024) ? "met" : "MISSED"
}'

#!/usr/bin/env bash
# Whole-program comparison: verifying the five-stage example boot chain with a 256 MiB OS
# image and a 1 GiB model (`edgeward-agent boot`, stages in order, each large stage's 64 MiB
# shards hashed on all cores) against `openssl dgst -sha256` over the same five files.
#   target: edgeward-agent/openssl <= 0.6
#
# Every timing is the best of N runs with the files in the page cache; before each timed run
# the script waits (up to IDLE_WAIT s) for the CPUs to be idle.
# Environment: BENCH_DIR (default /tmp/edgeward-bench), N (default 5), IDLE_WAIT (default
# 60), OS_SIZE (default 256MiB), MODEL_SIZE (default 1GiB), OPENSSL (default openssl).
# Exits 0 whether or not the target is met; non-zero if a command fails.
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$(pwd)"

N="${N:-5}"
OS_SIZE="${OS_SIZE:-256MiB}"
MODEL_SIZE="${MODEL_SIZE:-1GiB}"
OPENSSL="${OPENSSL:-openssl}"
work="${BENCH_DIR:-/tmp/edgeward-bench}/boot"

echo "building edgeward and edgeward-agent (release)..." >&2
cargo build --release -p edgeward-cli -p edgeward-agent >&2
target_dir="$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bin="${target_dir:-$repo/target}/release"

rm -rf "$work"
mkdir -p "$work"
cd "$work"
log="$work/commands.log"
: >"$log"
# shellcheck source=bench/timing.sh
. "$repo/bench/timing.sh"

export EDGEWARD_ROOT_PASSPHRASE="bench-passphrase"
"$bin/edgeward" pki init --dir pki >>"$log"
echo "writing the example chain (OS $OS_SIZE, model $MODEL_SIZE)..." >&2
"$bin/edgeward" boot example --pki pki --out ex --os-size "$OS_SIZE" --model-size "$MODEL_SIZE" >>"$log"
stages=()
for f in ex/stages/*; do
    case "$f" in *.sig) ;; *) stages+=("$f") ;; esac
done
cat "${stages[@]}" >/dev/null # into the page cache

best_of "$bin/edgeward-agent" boot --chain ex/chain.toml --se soft:ex/se --state state
t_boot=$BEST
best_of "$OPENSSL" dgst -sha256 "${stages[@]}"
t_openssl=$BEST

cpus=$(nproc 2>/dev/null || echo "?")
echo
echo "boot chain verification vs openssl dgst -sha256, 5 stages (OS $OS_SIZE, model $MODEL_SIZE), ${cpus} CPUs, best of $N"
awk -v e="$t_boot" -v p="$t_openssl" 'BEGIN {
    r = e / p
    printf "%-36s %9s %9s %7s %9s %4s\n", "case", "edgeward", "openssl", "ratio", "target", "met"
    printf "%-36s %9.3f %9.3f %7.3f %9s %4s\n", "edgeward-agent boot (5 stages)", e, p, r, "<= 0.6", (r <= 0.6 ? "yes" : "NO")
}'
if [ "$contended" -gt 0 ]; then
    echo "WARNING: $contended timed run(s) started while other processes kept the CPUs busy;"
    echo "         the numbers may be pessimistic (run again on an idle machine, or raise IDLE_WAIT)."
fi
echo "work dir: $work (commands' output in commands.log)"

#!/usr/bin/env bash
# Whole-program comparison: verifying a 1 GiB file with `edgeward verify` against
# `openssl dgst -sha256 -verify`, both with the same P-256 key.
#
#   (a) bundle:  edgeward sign FILE --shard-size 64MiB (key mode) -> edgeward verify
#                 target: edgeward/openssl <= 0.55 (the shards are hashed on all cores)
#   (a0) bundle, files mode (edgeward's default: one SHA-256 stream, like openssl)
#                 informational, no target: a single stream cannot beat openssl by much
#   (b) raw:     edgeward sign --raw -> edgeward verify --raw
#                 target: edgeward/openssl <= 1.05 (both hash one stream)
#
# Every timing is the best of N runs with the file in the page cache.
# Before each timed run the script waits (up to IDLE_WAIT s) for the CPUs to be idle.
# Environment: BENCH_DIR (default /tmp/edgeward-bench), N (default 5), IDLE_WAIT (default
# 60), SIZE_MIB (default 1024), SHARD_SIZE (bytes, default 64 MiB), OPENSSL (default
# openssl), EDGEWARD (a prebuilt binary instead of the workspace build).
# Exits 0 whether or not the targets are met; non-zero if a command fails.
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$(pwd)"

N="${N:-5}"
SIZE_MIB="${SIZE_MIB:-1024}"
SHARD_SIZE="${SHARD_SIZE:-67108864}"
OPENSSL="${OPENSSL:-openssl}"
work="${BENCH_DIR:-/tmp/edgeward-bench}/verify-vs-openssl"

echo "building edgeward (release)..." >&2
cargo build --release -p edgeward-cli >&2
target_dir="$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
EDGEWARD="${EDGEWARD:-${target_dir:-$repo/target}/release/edgeward}"
[ -x "$EDGEWARD" ] || { echo "no edgeward binary at $EDGEWARD" >&2; exit 1; }

mkdir -p "$work"
cd "$work"
log="$work/commands.log"
: >"$log"

# --- input data and keys --------------------------------------------------------------
size=$((SIZE_MIB * 1024 * 1024))
if [ ! -f data.bin ] || [ "$(stat -c %s data.bin)" -ne "$size" ]; then
    echo "writing ${SIZE_MIB} MiB of random data..." >&2
    head -c "$size" /dev/urandom >data.bin.tmp
    mv data.bin.tmp data.bin
fi
"$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k.pem 2>>"$log"
"$OPENSSL" pkey -in k.pem -pubout -out pub.pem

# Warm the page cache: every command below reads the file from memory.
cat data.bin >/dev/null

# --- signatures (not timed) -------------------------------------------------------------
"$EDGEWARD" sign data.bin --key k.pem --shard-size "$SHARD_SIZE" -o f.sig >>"$log"
"$EDGEWARD" sign data.bin --key k.pem --shard-size 0 -o f-files.sig >>"$log"
"$EDGEWARD" sign data.bin --key k.pem --raw -o f.edgeward.rawsig >>"$log"
"$OPENSSL" dgst -sha256 -sign k.pem -out f.rawsig data.bin
# Interoperability, both directions, before anything is timed.
"$OPENSSL" dgst -sha256 -verify pub.pem -signature f.edgeward.rawsig data.bin >>"$log"
"$EDGEWARD" verify data.bin --raw --signature f.rawsig --pubkey pub.pem >>"$log"

# --- timing -------------------------------------------------------------------------------
# shellcheck source=bench/timing.sh
. "$repo/bench/timing.sh"

echo "timing (best of $N)..." >&2
best_of "$OPENSSL" dgst -sha256 -verify pub.pem -signature f.rawsig data.bin
t_openssl=$BEST
best_of "$EDGEWARD" verify data.bin --signature f.sig --pubkey pub.pem
t_bundle=$BEST
best_of "$EDGEWARD" verify data.bin --signature f-files.sig --pubkey pub.pem
t_files=$BEST
best_of "$EDGEWARD" verify data.bin --raw --signature f.edgeward.rawsig --pubkey pub.pem
t_raw=$BEST

# row NAME EDGEWARD_SECONDS PEER_SECONDS TARGET ("-" for none)
row() {
    awk -v name="$1" -v e="$2" -v p="$3" -v target="$4" 'BEGIN {
        ratio = e / p
        met = (target == "-") ? "-" : ((ratio <= target + 0) ? "yes" : "NO")
        tgt = (target == "-") ? "-" : sprintf("<= %s", target)
        printf "%-44s %9.3f %9.3f %7.3f %9s %4s\n", name, e, p, ratio, tgt, met
    }'
}

cpus=$(nproc 2>/dev/null || echo "?")
echo
echo "edgeward vs openssl, ${SIZE_MIB} MiB file in the page cache, ${cpus} CPUs, best of $N"
printf "%-44s %9s %9s %7s %9s %4s\n" "case" "edgeward" "openssl" "ratio" "target" "met"
row "(a) bundle verify, shards ${SHARD_SIZE} B" "$t_bundle" "$t_openssl" 0.55
row "(a0) bundle verify, files mode (default)" "$t_files" "$t_openssl" -
row "(b) raw verify (one SHA-256 stream)" "$t_raw" "$t_openssl" 1.05
echo
echo "openssl: $OPENSSL dgst -sha256 -verify pub.pem -signature f.rawsig data.bin"
if [ "$contended" -gt 0 ]; then
    echo "WARNING: $contended timed run(s) started while other processes kept the CPUs busy;"
    echo "         the numbers may be pessimistic (run again on an idle machine, or raise IDLE_WAIT)."
fi
echo "work dir: $work (commands' output in commands.log)"

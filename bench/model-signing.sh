#!/usr/bin/env bash
# Whole-program comparison with the OpenSSF reference implementation: signing and verifying a
# 1 GiB model directory (4 x 200 MiB + 2 x 100 MiB weights and a few small JSON files) in key
# mode with `edgeward` and with `model_signing` (Python), same P-256 key, default settings
# of both (one SHA-256 per file).
#
#   sign:   edgeward sign DIR --key k.pem -o e.sig
#           model_signing sign key DIR --private_key k.pem --signature m.sig
#   verify: edgeward verify DIR --signature e.sig --pubkey pub.pem
#           model_signing verify key DIR --signature m.sig --public_key pub.pem
#   target: edgeward/model_signing <= 0.5 for each.
#
# Signatures are written outside the model directory. Every timing is the best of N runs
# with the model in the page cache. Each tool also verifies the other's signature once
# (not timed), so the comparison is between interchangeable outputs.
# Before each timed run the script waits (up to IDLE_WAIT s) for the CPUs to be idle.
# Environment: BENCH_DIR (default /tmp/edgeward-bench), N (default 5), IDLE_WAIT (default
# 60), MODEL_SIGNING (default /var/cache/edgeward/venv/bin/model_signing), OPENSSL (default
# openssl), EDGEWARD (a prebuilt binary instead of the workspace build).
# Exits 0 whether or not the targets are met; non-zero if a command fails.
set -euo pipefail

cd "$(dirname "$0")/.."
repo="$(pwd)"

N="${N:-5}"
MODEL_SIGNING="${MODEL_SIGNING:-/var/cache/edgeward/venv/bin/model_signing}"
OPENSSL="${OPENSSL:-openssl}"
work="${BENCH_DIR:-/tmp/edgeward-bench}/model-signing"

[ -x "$MODEL_SIGNING" ] || command -v "$MODEL_SIGNING" >/dev/null || {
    echo "model_signing not found at $MODEL_SIGNING (set MODEL_SIGNING)" >&2
    exit 1
}

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

# --- the model -------------------------------------------------------------------------
MIB=$((1024 * 1024))
# make_file PATH MIB: random bytes, kept from an earlier run if the size is right.
make_file() {
    local want=$(($2 * MIB))
    if [ ! -f "$1" ] || [ "$(stat -c %s "$1")" -ne "$want" ]; then
        head -c "$want" /dev/urandom >"$1.tmp"
        mv "$1.tmp" "$1"
    fi
}
echo "writing the 1 GiB model..." >&2
mkdir -p model
for i in 1 2 3 4; do make_file "model/model-0000$i-of-00004.safetensors" 200; done
for i in 1 2; do make_file "model/optimizer-$i.bin" 100; done
cat >model/config.json <<'EOF'
{"architectures": ["EdgewardBenchModel"], "hidden_size": 4096, "num_hidden_layers": 32,
 "num_attention_heads": 32, "vocab_size": 32000, "torch_dtype": "bfloat16"}
EOF
echo '{"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}' >model/tokenizer_config.json
echo '{"metadata": {"total_size": 838860800}, "weight_map": {}}' >model/model.safetensors.index.json
echo '{"do_sample": true, "temperature": 0.7}' >model/generation_config.json

# model_signing needs a PKCS#8 PEM key ("PRIVATE KEY"); edgeward reads it too.
"$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out k.pem 2>>"$log"
"$OPENSSL" pkey -in k.pem -pubout -out pub.pem

# Warm the page cache.
cat model/* >/dev/null

# --- signatures and cross-checks (not timed) ---------------------------------------------
"$EDGEWARD" sign model --key k.pem -o e.sig >>"$log"
"$MODEL_SIGNING" sign key model --private_key k.pem --signature m.sig >>"$log" 2>&1
"$MODEL_SIGNING" verify key model --signature e.sig --public_key pub.pem >>"$log" 2>&1
"$EDGEWARD" verify model --signature m.sig --pubkey pub.pem >>"$log"

# --- timing -------------------------------------------------------------------------------
# shellcheck source=bench/timing.sh
. "$repo/bench/timing.sh"

echo "timing (best of $N)..." >&2
best_of "$EDGEWARD" sign model --key k.pem -o e.sig
t_e_sign=$BEST
best_of "$MODEL_SIGNING" sign key model --private_key k.pem --signature m.sig
t_m_sign=$BEST
best_of "$EDGEWARD" verify model --signature e.sig --pubkey pub.pem
t_e_verify=$BEST
best_of "$MODEL_SIGNING" verify key model --signature m.sig --public_key pub.pem
t_m_verify=$BEST
# How much of model_signing's time is the Python start-up (imports), for the reader.
best_of "$MODEL_SIGNING" --help
t_m_help=$BEST

row() {
    awk -v name="$1" -v e="$2" -v p="$3" -v target="$4" 'BEGIN {
        ratio = e / p
        met = (ratio <= target + 0) ? "yes" : "NO"
        printf "%-30s %9.3f %14.3f %7.3f %8s %4s\n", name, e, p, ratio, "<= " target, met
    }'
}

total_mib=$(du -sm model | cut -f1)
cpus=$(nproc 2>/dev/null || echo "?")
ms_version=$("$MODEL_SIGNING" --version 2>/dev/null | head -n 1 || true)
echo
echo "edgeward vs model_signing ${ms_version}, ${total_mib} MiB model in the page cache, ${cpus} CPUs, best of $N"
printf "%-30s %9s %14s %7s %8s %4s\n" "case" "edgeward" "model_signing" "ratio" "target" "met"
row "sign (key mode)" "$t_e_sign" "$t_m_sign" 0.5
row "verify (key mode)" "$t_e_verify" "$t_m_verify" 0.5
printf "(model_signing --help alone takes %.3f s: Python start-up and imports)\n" "$t_m_help"
echo
if [ "$contended" -gt 0 ]; then
    echo "WARNING: $contended timed run(s) started while other processes kept the CPUs busy;"
    echo "         the numbers may be pessimistic (run again on an idle machine, or raise IDLE_WAIT)."
fi
echo "work dir: $work (commands' output in commands.log)"

#!/usr/bin/env bash
# Installs what the test suite needs when it is missing (idempotent), then runs the whole
# suite: unit, integration and interop tests against the real openssl, Python
# `cryptography` and `model_signing`; the no_std build of edgeward-core; a fuzz smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/edgeward/target}"
VENV="${EDGEWARD_VENV:-/var/cache/edgeward/venv}"
mkdir -p "$CARGO_TARGET_DIR" "$(dirname "$VENV")"

say() { printf '\n== %s\n' "$*"; }

say "system packages"
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v python3 >/dev/null || missing+=(python3 python3-venv)
command -v cc >/dev/null || missing+=(build-essential)
command -v curl >/dev/null || missing+=(curl)
command -v unshare >/dev/null || missing+=(util-linux)
command -v psql >/dev/null || missing+=(postgresql postgresql-client)
command -v redis-server >/dev/null || missing+=(redis-server)
# Secure-element backends: SoftHSM2 (PKCS#11), swtpm + the TSS libraries (TPM 2.0).
command -v softhsm2-util >/dev/null || missing+=(softhsm2)
command -v swtpm >/dev/null || missing+=(swtpm swtpm-tools)
command -v tpm2_startup >/dev/null || missing+=(tpm2-tools)
command -v pkg-config >/dev/null || missing+=(pkg-config)
pkg-config --exists tss2-esys 2>/dev/null || missing+=(libtss2-dev)
# aws-lc-rs builds its C library with cmake; age is the peer of the model-encryption tests.
command -v cmake >/dev/null || missing+=(cmake)
command -v age >/dev/null || missing+=(age)
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "missing: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
fi
openssl version

say "services: PostgreSQL and Redis on loopback"
if ! psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'select 1' >/dev/null 2>&1; then
  cluster=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$cluster" ]; then
    hba="/etc/postgresql/$cluster/main/pg_hba.conf"
    # The tests connect as postgres over TCP on loopback without a password.
    grep -q '^host all all 127.0.0.1/32 trust' "$hba" || sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$cluster" main start 2>/dev/null ||
      pg_ctlcluster --skip-systemctl-redirect "$cluster" main reload
  fi
  for _ in $(seq 1 30); do
    psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'select 1' >/dev/null 2>&1 && break
    sleep 1
  done
fi
psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'select version()'
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping

say "python venv ($VENV)"
if ! "$VENV/bin/python" -c 'import model_signing, cryptography, OpenSSL, imgtool, onnx, numpy, sklearn, safetensors' 2>/dev/null; then
  python3 -m venv "$VENV" || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q --upgrade pip
  # model_signing 1.1 imports pyOpenSSL for certificate mode without declaring it.
  "$VENV/bin/pip" install -q 'model-signing>=1.1,<1.2' 'cryptography>=42' pyopenssl
  # MCUboot's imgtool (boot tests); onnx, numpy, scikit-learn, safetensors (model tests).
  "$VENV/bin/pip" install -q 'imgtool>=2.1' 'onnx>=1.15' numpy 'scikit-learn>=1.3' safetensors
fi
"$VENV/bin/python" -c 'import importlib.metadata as m; print("model_signing", m.version("model-signing"), "cryptography", m.version("cryptography"))'
export EDGEWARD_PYTHON="$VENV/bin/python"
export EDGEWARD_MODEL_SIGNING="$VENV/bin/model_signing"

say "edgeward-core builds as no_std + alloc"
cargo build -q -p edgeward-core --no-default-features
if cargo tree -p edgeward-core --no-default-features -e normal,features | grep -q 'feature "std"'; then
  echo "edgeward-core --no-default-features pulls in a dependency's std feature:" >&2
  cargo tree -p edgeward-core --no-default-features -e normal,features -i std 2>&1 | head -20 >&2 || true
  exit 1
fi

say "cargo test"
cargo test --workspace --all-targets
# Optional features, each with its own real peer: tract-onnx (the ONNX secure-load test) and
# the TPM 2.0 backend (on swtpm).
cargo test -p edgeward-model --features onnx --test crypt_onnx
cargo test -p edgeward-se --features tpm
cargo test -p edgeward-boot --features tpm --test tpm
cargo test -p edgeward-cli --features tpm --test se_tpm

say "TUF conformance suite (theupdateframework/tuf-conformance, no expected failures)"
# The suite is read from a local git copy (see the script); CI has no GitHub access, so a
# machine without one says NOT RUN here, loudly, instead of passing silently.
tuf_status=0
scripts/tuf-conformance.sh || tuf_status=$?
if [ "$tuf_status" -eq 3 ]; then
  echo "TUF conformance: NOT RUN (no copy of the suite on this machine); the client's own tests ran above"
elif [ "$tuf_status" -ne 0 ]; then
  exit "$tuf_status"
fi

say "fuzz smoke"
if [ -x scripts/fuzz-smoke.sh ]; then
  FUZZ_RUNS="${FUZZ_RUNS:-2000}" scripts/fuzz-smoke.sh
fi

say "demo"
cargo run -q --release -p edgeward-cli -- demo --json | "$VENV/bin/python" -c 'import json,sys; d=json.load(sys.stdin); assert d["ok"], d; print(len(d["steps"]), "demo steps ok")'

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

say "python venv ($VENV)"
if ! "$VENV/bin/python" -c 'import model_signing, cryptography, OpenSSL' 2>/dev/null; then
  python3 -m venv "$VENV" || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install -q --upgrade pip
  # model_signing 1.1 imports pyOpenSSL for certificate mode without declaring it.
  "$VENV/bin/pip" install -q 'model-signing>=1.1,<1.2' 'cryptography>=42' pyopenssl
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

say "fuzz smoke"
if [ -x scripts/fuzz-smoke.sh ]; then
  FUZZ_RUNS="${FUZZ_RUNS:-2000}" scripts/fuzz-smoke.sh
fi

say "demo"
cargo run -q --release -p edgeward-cli -- demo --json | "$VENV/bin/python" -c 'import json,sys; d=json.load(sys.stdin); assert d["ok"], d; print(len(d["steps"]), "demo steps ok")'

#!/usr/bin/env bash
# Installs what the test suite needs when it is missing (idempotent), then runs the whole
# suite: one build of the workspace with every feature the suite needs, the Debian packages
# installed and purged, the unit, integration and interop tests against the real openssl,
# Python `cryptography` and `model_signing`, SoftHSM2 and swtpm, the TUF conformance suite,
# the dependency audit, the no_std check of edgeward-core, a fuzz smoke run and the demo.
# The tool installs, the no_std check and the fuzz build run in the background beside the
# build and the tests (warm_up below).
#
# The console gets one line per phase with its time; everything the tools print goes to
# $CARGO_TARGET_DIR/test-logs/<phase>.log, and a failing phase shows the end of its log.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/edgeward/target}"
VENV="${EDGEWARD_VENV:-/var/cache/edgeward/venv}"
LOGS="$CARGO_TARGET_DIR/test-logs"
mkdir -p "$CARGO_TARGET_DIR" "$(dirname "$VENV")" "$LOGS"

# Every optional feature the suite tests, built together once. .ci/run's clippy uses the
# same set (checked below) so that both share build scripts and dependencies in the cache.
FEATURES=edgeward-model/onnx,edgeward-se/tpm,edgeward-boot/provision,edgeward-boot/tpm,edgeward-cli/tpm
if ! grep -q -- "--features $FEATURES" .ci/run; then
  echo "test.sh: .ci/run's clippy does not use --features $FEATURES; keep the two in step" >&2
  exit 1
fi

suite_start=$SECONDS
# phase NAME COMMAND...: runs COMMAND with its output in $LOGS/NAME.log and prints one line.
phase() {
  local name=$1 start=$SECONDS status=0
  shift
  # In the background so that `set -e` holds inside the phase (it is off on the left of ||).
  "$@" >"$LOGS/$name.log" 2>&1 &
  wait $! || status=$?
  local took=$((SECONDS - start))
  if [ "$status" -ne 0 ]; then
    printf '%-16s FAILED (exit %d) after %dm%02ds; end of %s:\n' \
      "$name" "$status" $((took / 60)) $((took % 60)) "$LOGS/$name.log" >&2
    tail -n 60 "$LOGS/$name.log" >&2
    exit "$status"
  fi
  printf '%-16s ok  %3dm%02ds  %s\n' "$name" $((took / 60)) $((took % 60)) \
    "$(summary "$name")"
}
# summary NAME: the phase's one-line result, read from its log.
summary() {
  case $1 in
  tests)
    awk '/^test result:/ { p += $4; f += $6; i += $8 }
         END { printf "%d passed, %d failed, %d ignored", p, f, i }' "$LOGS/tests.log"
    ;;
  *) grep -h '^summary: ' "$LOGS/$1.log" | tail -n 1 | cut -c10- ;;
  esac
}

system_packages() {
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  # The system's own (the inference tests run it as the worker's user, who cannot reach a
  # Python under /root).
  [ -x /usr/bin/python3 ] || missing+=(python3 python3-venv)
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
  # The TUF conformance suite runs its client under faketime.
  command -v faketime >/dev/null || missing+=(faketime)
  # The Debian packages (debs phase): dpkg-shlibdeps, strip, adduser, deb-systemd-helper,
  # systemd-analyze (checks the units).
  command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
  command -v strip >/dev/null || missing+=(binutils)
  command -v adduser >/dev/null || missing+=(adduser)
  command -v deb-systemd-helper >/dev/null || missing+=(init-system-helpers)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
      echo "missing: ${missing[*]} (run as root or install them)"
      return 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
  echo "summary: $(openssl version | cut -d' ' -f1-2)${missing[*]:+; installed ${missing[*]}}"
}

services() {
  if ! psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'select 1' >/dev/null 2>&1; then
    local cluster hba
    cluster=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$cluster" ]; then
      hba="/etc/postgresql/$cluster/main/pg_hba.conf"
      # The tests connect as postgres over TCP on loopback without a password.
      grep -q '^host all all 127.0.0.1/32 trust' "$hba" || sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
      pg_ctlcluster --skip-systemctl-redirect "$cluster" main start ||
        pg_ctlcluster --skip-systemctl-redirect "$cluster" main reload
    fi
    for _ in $(seq 1 30); do
      psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'select 1' >/dev/null 2>&1 && break
      sleep 1
    done
  fi
  local pg
  pg=$(psql -h 127.0.0.1 -U postgres -d postgres -qtAc 'show server_version')
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  redis-cli -h 127.0.0.1 -p 6379 ping
  echo "summary: PostgreSQL $pg on 127.0.0.1:5432, Redis on 127.0.0.1:6379"
}

# The agent's isolated inference worker runs as its own system user (the agent creates it when
# missing; made here too so that the suite's tests find it whatever runs first).
worker_user() {
  if ! getent passwd edgeward-infer >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin edgeward-infer
  fi
  echo "summary: user $(getent passwd edgeward-infer | cut -d: -f1,3,4)"
}

python_venv() {
  if ! "$VENV/bin/python" -c 'import model_signing, cryptography, OpenSSL, imgtool, onnx, numpy, sklearn, safetensors, schemathesis' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    # model_signing 1.1 imports pyOpenSSL for certificate mode without declaring it.
    "$VENV/bin/pip" install -q 'model-signing>=1.1,<1.2' 'cryptography>=42' pyopenssl
    # MCUboot's imgtool (boot tests); onnx, numpy, scikit-learn, safetensors (model tests).
    "$VENV/bin/pip" install -q 'imgtool>=2.1' 'onnx>=1.15' numpy 'scikit-learn>=1.3' safetensors
    # schemathesis drives the server from its OpenAPI document (edgeward-server's openapi tests).
    "$VENV/bin/pip" install -q 'schemathesis>=4,<5'
  fi
  echo "summary: $VENV: $("$VENV/bin/python" -c 'import importlib.metadata as m; print("model_signing", m.version("model-signing"), "cryptography", m.version("cryptography"))')"
}

# The RustSec database is a local snapshot (its repository cannot be reached from CI):
# $EDGEWARD_ADVISORY_DB, else shared/advisory-db next to the clone that holds .git (for a git
# worktree, that clone), else next to the local repository this one was cloned from. Ignored
# advisories and the reasons are in .cargo/audit.toml. A machine with no snapshot anywhere
# says NOT RUN on the console instead of passing silently.
audit() {
  local db="${EDGEWARD_ADVISORY_DB:-}" candidates=() common origin
  if [ -n "$db" ]; then
    candidates=("$db")
  else
    common=$(git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || pwd)
    candidates+=("$(dirname "$common")/../shared/advisory-db")
    origin=$(git config --get remote.origin.url 2>/dev/null || true)
    [ -d "$origin" ] && candidates+=("$origin/../shared/advisory-db")
  fi
  db=""
  for c in "${candidates[@]}"; do
    [ -d "$c/crates" ] && { db=$c; break; }
  done
  if [ -z "$db" ]; then
    [ -n "${EDGEWARD_ADVISORY_DB:-}" ] && { echo "no RustSec advisory database at $EDGEWARD_ADVISORY_DB"; return 1; }
    echo "summary: NOT RUN: no RustSec advisory database at ${candidates[*]} (set EDGEWARD_ADVISORY_DB)"
    return 0
  fi
  cargo audit --version >/dev/null 2>&1 || install_tool cargo-audit
  cargo audit --db "$db" --no-fetch
  cargo audit --db "$db" --no-fetch --file fuzz/Cargo.lock
  echo "summary: no advisories in Cargo.lock or fuzz/Cargo.lock (cargo-audit $(cargo audit --version | awk '{print $NF}'), database $(cd "$db" && pwd))"
}

# The no_std check builds in a target directory of its own (check-mode artifacts of other
# features), so that the background warm-up below can run it beside the main build.
NO_STD_TARGET_DIR="$CARGO_TARGET_DIR/no-std"

no_std_check() {
  CARGO_TARGET_DIR="$NO_STD_TARGET_DIR" cargo check -p edgeward-core --no-default-features
}

no_std() {
  no_std_check
  if cargo tree -p edgeward-core --no-default-features -e normal,features | grep -q 'feature "std"'; then
    echo "edgeward-core --no-default-features pulls in a dependency's std feature:"
    cargo tree -p edgeward-core --no-default-features -e normal,features -i std 2>&1 | head -20 || true
    return 1
  fi
  echo "summary: edgeward-core checks with --no-default-features (no_std + alloc), no std feature"
}

# One build of every target. It also makes the programs (edgeward, edgeward-agent,
# edgeward-server, edgeward-tuf-client) in $CARGO_TARGET_DIR/debug, for the integration
# tests, the README tour, the TUF suite and the demo. (A separate `cargo build` would resolve
# features without the dev-dependencies and rebuild much of the dependency graph.)
build() {
  cargo test --workspace --all-targets --features "$FEATURES" --no-run
  echo "summary: workspace, features $FEATURES"
}

# The Debian packages of the agent and the server, from the build phase's binaries:
# installed with dpkg -i, run, purged (scripts/deb-test.sh; needs root).
debs() {
  scripts/deb-test.sh "$CARGO_TARGET_DIR/debug"
}

tests() {
  cargo test --workspace --all-targets --features "$FEATURES" --no-fail-fast
}

tuf() {
  local status=0
  EDGEWARD_TUF_CLIENT="$CARGO_TARGET_DIR/debug/edgeward-tuf-client" scripts/tuf-conformance.sh || status=$?
  case $status in
  0) echo "summary: every test passed, no expected failures" ;;
  # No copy of the suite on this machine: said loudly, not passed silently.
  3) echo "summary: NOT RUN (no copy of the suite on this machine); the client's own tests ran" ;;
  *) return "$status" ;;
  esac
}

fuzz() {
  FUZZ_RUNS="${FUZZ_RUNS:-2000}" scripts/fuzz-smoke.sh
  echo "summary: $(grep -h '^fuzz-smoke: all' "$LOGS/fuzz-smoke.log" | cut -c13-)"
}

demo() {
  "$CARGO_TARGET_DIR/debug/edgeward" demo --json >"$LOGS/demo.json"
  "$VENV/bin/python" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["ok"], d; print("summary:", len(d["steps"]), "demo steps ok")' "$LOGS/demo.json"
}

# install_tool CRATE: installs a cargo subcommand the suite needs, as a debug build without
# debug info (each reads a lock file or drives cargo, which takes well under a second
# unoptimised, and compiles in a fraction of a release build's time), building in a temporary
# directory (the suite's target directory is the build's).
install_tool() {
  env -u CARGO_TARGET_DIR CARGO_PROFILE_DEV_DEBUG=0 cargo install --locked --debug "$1"
}

# The work no later phase waits on until the end — installing cargo-fuzz and cargo-audit,
# the no_std check, and the nightly fuzz build in its own target directory — runs in the
# background at the lowest CPU priority from the build on: it takes the cores when the build
# and the tests leave them idle (on a cold two-core machine, minutes of them) instead of
# adding its own minutes at the end, and the build, which the tests wait for, goes first. It
# only warms caches: the audit, no_std and fuzz-smoke phases do their work again (up to date
# by then, so in seconds) and report any failure.
warm_up() {
  cargo audit --version >/dev/null 2>&1 || install_tool cargo-audit
  no_std_check
  # Installs cargo-fuzz first when it is missing.
  FUZZ_BUILD_ONLY=1 scripts/fuzz-smoke.sh
}

echo "logs in $LOGS"
phase system system_packages
phase services services
phase worker-user worker_user
export EDGEWARD_VENV="$VENV" EDGEWARD_PYTHON="$VENV/bin/python"
export EDGEWARD_MODEL_SIGNING="$VENV/bin/model_signing"
warm_start=$SECONDS
# Beside the build: the venv (downloads from PyPI, half a minute on a fresh machine; the tests
# are the first to need it) and the warm-up. Each runs in a process group of its own (job
# control on while they start; stdin from /dev/null, which job control no longer does for
# them), so that a phase that fails and ends the suite also ends pip, cargo and rustc instead
# of leaving them running. Not in a session of its own: the kernel's autogroup scheduling
# would give a new session an equal share of the CPU, and `nice` would no longer put the build
# first.
set -m
phase venv python_venv </dev/null &
venv_pid=$!
nice -n 19 bash -c "$(declare -f install_tool no_std_check warm_up); NO_STD_TARGET_DIR='$NO_STD_TARGET_DIR'; warm_up" \
  </dev/null >"$LOGS/warm-up.log" 2>&1 &
warm_pid=$!
set +m
trap 'kill -- -"$warm_pid" -"$venv_pid" 2>/dev/null || true' EXIT
phase build build
phase debs debs
wait "$venv_pid" || { echo "the venv phase failed (above; $LOGS/venv.log), and the tests need it" >&2; exit 1; }
phase tests tests
phase tuf-conformance tuf
# The warm-up's own failures show in the phases that redo its work.
warm_status=0
wait "$warm_pid" || warm_status=$?
printf '%-16s %s %3dm%02ds  (background, from the build on; log %s)\n' warm-up \
  "$([ "$warm_status" -eq 0 ] && echo ok || echo "exit $warm_status")" \
  $(((SECONDS - warm_start) / 60)) $(((SECONDS - warm_start) % 60)) "$LOGS/warm-up.log"
phase audit audit
phase no_std no_std
phase fuzz-smoke fuzz
phase demo demo
took=$((SECONDS - suite_start))
printf 'suite passed in %dm%02ds\n' $((took / 60)) $((took % 60))

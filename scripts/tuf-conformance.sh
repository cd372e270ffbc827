#!/usr/bin/env bash
# Runs the public TUF conformance suite (theupdateframework/tuf-conformance) against
# edgeward-update's client, `edgeward-tuf-client`, with no expected failures.
#
#   scripts/tuf-conformance.sh [REF...]    default: the newest release tag, then main
#
# The suite is not vendored in this repository. It is read from a git copy of it:
# $TUF_CONFORMANCE_GIT (a clone or a bare git directory), else the mirror this workplace
# keeps at /work/.mirror/theupdateframework+tuf-conformance/repo. Each REF is unpacked into
# $TUF_CONFORMANCE_CACHE (default /var/cache/edgeward/tuf-conformance) with its own venv
# holding the suite's pinned pip dependencies; `faketime` comes from Debian.
#
# Exit status: 0 when every test of every REF passed; 1 when one failed; 3 when no copy of
# the suite is available (after printing NOT RUN and why).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/edgeward/target}"
CACHE="${TUF_CONFORMANCE_CACHE:-/var/cache/edgeward/tuf-conformance}"
GIT="${TUF_CONFORMANCE_GIT:-/work/.mirror/theupdateframework+tuf-conformance/repo}"

if ! git --git-dir="$GIT" rev-parse -q --verify HEAD >/dev/null 2>&1 &&
  ! git -C "$GIT" rev-parse -q --verify HEAD >/dev/null 2>&1; then
  echo "TUF conformance: NOT RUN — no copy of theupdateframework/tuf-conformance at $GIT" >&2
  echo "  (clone it anywhere and set TUF_CONFORMANCE_GIT to its path)" >&2
  exit 3
fi
gitc() { git --git-dir="$GIT" "$@" 2>/dev/null || git -C "$GIT" "$@"; }

refs=("$@")
if ((${#refs[@]} == 0)); then
  latest=$(gitc tag --list 'v*' | sort -V | tail -n 1)
  refs=("$latest" HEAD)
fi

if ! command -v faketime >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime
fi

# scripts/test.sh passes the client its workspace build made (EDGEWARD_TUF_CLIENT); building
# it here with -p would resolve other features and rebuild shared dependencies.
client="${EDGEWARD_TUF_CLIENT:-}"
if [ -z "$client" ]; then
  cargo build -q -p edgeward-update --bin edgeward-tuf-client
  client="$CARGO_TARGET_DIR/debug/edgeward-tuf-client"
fi
if [ ! -x "$client" ]; then
  echo "no TUF client at $client" >&2
  exit 1
fi
if [ -e "$client.xfails" ]; then
  echo "refusing to run with expected failures listed in $client.xfails" >&2
  exit 1
fi

status=0
for ref in "${refs[@]}"; do
  sha=$(gitc rev-parse --verify "$ref^{commit}")
  name="$ref"
  [ "$ref" = HEAD ] && name="main"
  src="$CACHE/src-$sha"
  venv="$CACHE/venv-$sha"
  if [ ! -f "$src/pyproject.toml" ]; then
    rm -rf "$src" && mkdir -p "$src"
    gitc archive "$sha" | tar -x -C "$src"
  fi
  if ! "$venv/bin/python" -c 'import tuf_conformance, pytest' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "$src"
  fi
  echo "== tuf-conformance $name ($sha) against $client"
  # Run from the unpacked source so that the suite's own conftest.py is used.
  if ! (cd "$src" && "$venv/bin/pytest" -q -p no:cacheprovider tuf_conformance --entrypoint "$client"); then
    status=1
  fi
done
exit $status

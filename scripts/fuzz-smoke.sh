#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ briefly: a smoke test that the parsers survive
# ${FUZZ_RUNS:-5000} mutated inputs each (after replaying the seed inputs in fuzz/seeds/).
# Exits non-zero on the first crash; libFuzzer leaves the input in fuzz/artifacts/<target>/.
#
#   FUZZ_RUNS=20000 scripts/fuzz-smoke.sh            # all targets
#   scripts/fuzz-smoke.sh bundle statement           # some targets
#   FUZZ_MAX_LEN=65536 scripts/fuzz-smoke.sh          # longest input libFuzzer generates
#   FUZZ_BUILD_ONLY=1 scripts/fuzz-smoke.sh           # build the targets, run nothing
#
# The smoke builds fuzz/Cargo.toml's dev profile (`cargo fuzz build --dev`: opt-level 1 with
# many codegen units per crate, where cargo-fuzz builds release at one; the same sanitizer and
# coverage instrumentation as a campaign); long campaigns use `cargo fuzz run TARGET` (release).
set -euo pipefail

cd "$(dirname "$0")/.."
root="$(pwd)"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz" >&2
    # A debug build without debug info, outside the fuzz and suite target directories: it
    # only drives cargo, and compiles in a fraction of a release build's time.
    env -u CARGO_TARGET_DIR CARGO_PROFILE_DEV_DEBUG=0 cargo install --locked --debug cargo-fuzz
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz-smoke: a nightly toolchain is needed (rustup toolchain install nightly)" >&2
    exit 2
fi

# Fuzz builds (nightly, sanitizers) keep their own cache outside the clone.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/cache/edgeward/target-fuzz}"
runs="${FUZZ_RUNS:-5000}"
max_len="${FUZZ_MAX_LEN:-65536}"

cd "$root/fuzz"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "fuzz-smoke: no fuzz targets found" >&2
    exit 2
fi

# Build every target in one cargo run (shared dependencies built once, both cores busy);
# `cargo fuzz run` below then finds them up to date.
if [ "$#" -gt 0 ]; then
    for target in "${targets[@]}"; do cargo +nightly fuzz build --dev "$target"; done
else
    cargo +nightly fuzz build --dev
fi

if [ -n "${FUZZ_BUILD_ONLY:-}" ]; then
    echo "fuzz-smoke: built ${#targets[@]} targets" >&2
    exit 0
fi

failed=()
for target in "${targets[@]}"; do
    corpus="$root/fuzz/corpus/$target"
    mkdir -p "$corpus"
    dirs=("$corpus")
    if [ -d "$root/fuzz/seeds/$target" ]; then
        dirs+=("$root/fuzz/seeds/$target")
    fi
    echo "=== fuzz target $target: $runs runs" >&2
    if ! cargo +nightly fuzz run --dev "$target" "${dirs[@]}" -- \
        -runs="$runs" -max_len="$max_len" -timeout=60 -print_final_stats=1; then
        echo "fuzz-smoke: target $target FAILED (see fuzz/artifacts/$target/)" >&2
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz-smoke: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz-smoke: all ${#targets[@]} targets survived $runs runs" >&2

#!/usr/bin/env bash
# Builds the Debian packages edgeward-agent and edgeward-server from binaries already built,
# with dpkg-deb alone (no cargo-deb to install: nothing to compile, so CI pays seconds, not
# minutes). Each package holds the binary (stripped; the agent's with the inference worker
# it starts, edgeward-inference-worker), its systemd unit, its configuration
# (a conffile, /etc/edgeward/*.toml), its document and the maintainer scripts made from
# packaging/debian/*.in. Dependencies on shared libraries come from dpkg-shlibdeps (the
# agent built with the TPM feature links the TSS libraries). See docs/packaging.md.
#
#   packaging/build-debs.sh [BIN_DIR [OUT_DIR]]
#
# BIN_DIR defaults to $CARGO_TARGET_DIR/release (cargo build --release -p edgeward-agent
# -p edgeward-server), OUT_DIR to $CARGO_TARGET_DIR/debian. DEB_COMPRESS (xz, gzip, zstd or
# none; default xz) is dpkg-deb's compressor; DEB_VERSION overrides the version (default:
# the workspace's, revision 1). Prints the paths of the two packages.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
bin_dir="${1:-$target/release}"
out_dir="${2:-$target/debian}"
compress="${DEB_COMPRESS:-xz}"
upstream=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
version="${DEB_VERSION:-$upstream-1}"
arch=$(dpkg --print-architecture)

for tool in dpkg-deb dpkg-shlibdeps strip; do
  command -v "$tool" >/dev/null || { echo "build-debs.sh: $tool is missing (apt-get install dpkg-dev binutils)" >&2; exit 1; }
done
[ -n "$upstream" ] || { echo "build-debs.sh: no version in Cargo.toml's [workspace.package]" >&2; exit 1; }

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# package NAME CONFIG DOC DESCRIPTION [EXTRA_BIN...]: builds $out_dir/NAME_VERSION_ARCH.deb
# with the binary NAME and the EXTRA_BINs (programs NAME starts) in /usr/bin.
package() {
  local name=$1 config=$2 doc=$3 description=$4
  shift 4
  local work="$scratch/$name"
  local root="$work/root"

  install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/systemd/system" \
    "$root/etc/edgeward" "$root/usr/share/doc/$name"
  local program
  for program in "$name" "$@"; do
    [ -x "$bin_dir/$program" ] || { echo "build-debs.sh: no $bin_dir/$program (build it first)" >&2; exit 1; }
    install -m 0755 "$bin_dir/$program" "$root/usr/bin/$program"
    strip --strip-unneeded "$root/usr/bin/$program"
  done
  install -m 0644 "packaging/$name.service" "$root/usr/lib/systemd/system/$name.service"
  install -m 0644 "packaging/$config.example" "$root/etc/edgeward/$config"
  install -m 0644 "docs/$doc" "$root/usr/share/doc/$name/$doc"
  install -m 0644 packaging/debian/copyright "$root/usr/share/doc/$name/copyright"

  for script in postinst prerm postrm; do
    sed -e "s|@NAME@|$name|g" -e "s|@CONF@|/etc/edgeward/$config|g" \
      "packaging/debian/$script.in" >"$root/DEBIAN/$script"
    chmod 0755 "$root/DEBIAN/$script"
  done
  echo "/etc/edgeward/$config" >"$root/DEBIAN/conffiles"

  # dpkg-shlibdeps reads debian/control of a source package: a minimal one in $work.
  mkdir "$work/debian"
  printf 'Source: edgeward\n\nPackage: %s\nArchitecture: any\n' "$name" >"$work/debian/control"
  local shlibs
  shlibs=$(cd "$work" && dpkg-shlibdeps -O $(printf -- '-eroot/usr/bin/%s ' "$name" "$@") 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
  [ -n "$shlibs" ] || { echo "build-debs.sh: dpkg-shlibdeps found no libraries for $name" >&2; exit 1; }

  (cd "$root" && find usr etc -type f ! -path 'etc/*' -print0 | sort -z | xargs -0 md5sum) \
    >"$root/DEBIAN/md5sums"
  local size
  size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
  cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $arch
Maintainer: Edgeward <edgeward@example.invalid>
Installed-Size: $size
Depends: adduser, $shlibs
Recommends: init-system-helpers
Section: admin
Priority: optional
Homepage: https://example.invalid/edgeward
Description: $description
EOF
  mkdir -p "$out_dir"
  local deb="$out_dir/${name}_${version}_${arch}.deb"
  dpkg-deb --root-owner-group -Z"$compress" --build "$root" "$deb" >/dev/null
  echo "$deb"
}

package edgeward-agent agent.toml agent.md "Edgeward device agent
 The long-running process on each device: enrollment from the secure element, telemetry
 over mutual TLS (HTTPS or MQTT) with an on-disk queue while the server is away, and the
 server's signed incident commands (quarantine, forensics, wipe, re-provisioning), and the
 isolated inference worker it starts (edgeward-inference-worker)." edgeward-inference-worker
package edgeward-server server.toml server.md "Edgeward server: device registry and control plane
 Enrolls devices, keeps the device registry (SQLite, or PostgreSQL at scale) and serves
 the mutually authenticated device API, the enrollment listener and the private admin
 API; signs the commands devices execute and ingests their telemetry."

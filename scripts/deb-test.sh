#!/usr/bin/env bash
# The Debian packages end to end on this machine, as root: builds edgeward-agent and
# edgeward-server (packaging/build-debs.sh) from the binaries in BIN_DIR, installs them with
# dpkg -i, checks the users, directories, modes, files and enablement links, starts the
# installed server as its user with the installed configuration on free loopback ports,
# enrolls the installed agent against it (as its user, from its state directory) until
# telemetry is delivered, then purges both and checks that the machine is as before.
#
#   scripts/deb-test.sh [BIN_DIR]      (default $CARGO_TARGET_DIR/debug)
#
# Refuses to run (exit 1) when not root or when either package, its user or its directories
# already exist here: it must leave the machine exactly as it found it. Runs of it on one
# machine take turns (flock).
set -eEuo pipefail
cd "$(dirname "$0")/.."

# Any command failing outside a condition stops the test with its line, never silently.
trap 'echo "deb-test: FAILED at line $LINENO: $BASH_COMMAND" >&2' ERR
fail() {
  echo "deb-test: FAILED: $*" >&2
  exit 1
}
[ "$(id -u)" -eq 0 ] || fail "must run as root (dpkg -i, adduser); run the suite as root"

target="${CARGO_TARGET_DIR:-target}"
bin_dir="${1:-$target/debug}"
packages=(edgeward-agent edgeward-server)

exec 9>/run/lock/edgeward-deb-test.lock
flock -w 900 9 || fail "another deb-test.sh held /run/lock/edgeward-deb-test.lock for 15 minutes"

# What the packages touch, listed before and compared after the purge: names with
# edgeward in them (users, groups, files, dpkg's database) and the directories under
# /etc/systemd/system, so that another package installed meanwhile by someone else on the
# machine does not count.
snapshot() {
  getent passwd | cut -d: -f1 | sort | grep edgeward || true
  getent group | cut -d: -f1 | sort | grep edgeward || true
  find /etc/systemd/system -type d | sort
  find /etc/systemd/system /var/lib/systemd /etc /var/lib /run /usr/bin /usr/lib/systemd/system \
    /usr/share/doc -maxdepth 3 -name '*edgeward*' 2>/dev/null | sort || true
  # A purged package may stay in dpkg's database as not-installed (un); none is known: 1.
  { dpkg-query -W -f '${binary:Package} ${db:Status-Abbrev}\n' 'edgeward*' 2>/dev/null || true; } |
    awk '$2 !~ /^un/' | sort
}

for p in "${packages[@]}"; do
  if dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null | grep -qv '^un'; then
    fail "$p is known to dpkg here ($(dpkg-query -W -f '${db:Status-Abbrev}' "$p")); the test would alter it: dpkg --purge $p first"
  fi
  getent passwd "$p" >/dev/null && fail "user $p exists here; the test would alter it"
  getent group "$p" >/dev/null && fail "group $p exists here; the test would alter it"
  [ -e "/var/lib/$p" ] && fail "/var/lib/$p exists here; the test would alter it"
  [ -e "/run/$p" ] && fail "/run/$p exists here; the test would alter it"
done
before=$(snapshot)

work=$(mktemp -d)
server_pid="" agent_pid=""
cleanup() {
  local status=$?
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  wait 2>/dev/null
  for p in "${packages[@]}"; do
    if dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null | grep -qv '^un'; then
      dpkg_retry --purge "$p" >/dev/null 2>&1 || echo "deb-test: could not purge $p" >&2
    fi
  done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

# dpkg_retry ARGS...: dpkg, waiting while another dpkg or apt holds its lock.
dpkg_retry() {
  local out status
  for _ in $(seq 1 120); do
    status=0
    out=$(dpkg "$@" 2>&1) || status=$?
    if [ "$status" -ne 0 ] && grep -q 'lock' <<<"$out"; then
      sleep 1
      continue
    fi
    echo "$out"
    return "$status"
  done
  echo "$out"
  return 1
}

# expect WHAT ACTUAL WANTED
expect() {
  [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
  echo "ok: $1 = $3"
}

debs=$(DEB_COMPRESS=none packaging/build-debs.sh "$bin_dir" "$work/debs")
mapfile -t debs <<<"$debs"
[ "${#debs[@]}" -eq 2 ] || fail "build-debs.sh made ${#debs[@]} packages, not 2"
for deb in "${debs[@]}"; do
  echo "built $(basename "$deb"): $(dpkg-deb -f "$deb" Depends)"
  dpkg-deb -f "$deb" Depends | grep -q '^adduser, libc6' || fail "$deb: Depends lacks adduser or libc6"
done

dpkg_retry -i "${debs[@]}"

version=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
for p in "${packages[@]}"; do
  conf=/etc/edgeward/${p#edgeward-}.toml
  expect "$p status" "$(dpkg-query -W -f '${db:Status-Abbrev}' "$p")" "ii "
  expect "$p conffiles" "$(dpkg-query -W -f '${Conffiles}' "$p" | awk 'NF { print $1 }')" "$conf"
  [ -z "$(dpkg -V "$p")" ] || fail "dpkg -V $p: $(dpkg -V "$p")"
  IFS=: read -r _ _ uid _ _ home shell <<<"$(getent passwd "$p")"
  [ "$uid" -lt 1000 ] || fail "$p has uid $uid: not a system user"
  expect "$p home" "$home" "/var/lib/$p"
  expect "$p shell" "$shell" "/usr/sbin/nologin"
  expect "$p group" "$(id -gn "$p")" "$p"
  expect "/var/lib/$p" "$(stat -c '%U:%G %a' "/var/lib/$p")" "$p:$p 700"
  expect "$conf" "$(stat -c '%U:%G %a' "$conf")" "root:$p 640"
  expect "/usr/bin/$p" "$(stat -c '%U:%G %a' "/usr/bin/$p")" "root:root 755"
  expect "$p unit" "$(stat -c '%U:%G %a' "/usr/lib/systemd/system/$p.service")" "root:root 644"
  expect "$p --version" "$("/usr/bin/$p" --version)" "$p $version"
  # Enabled as dh_installsystemd does, also without systemd running (this machine, CI).
  # (deb-systemd-helper may name it through /lib, an alias of /usr/lib on merged-/usr systems.)
  expect "$p enabled" "$(readlink -f "/etc/systemd/system/multi-user.target.wants/$p.service")" \
    "$(readlink -f "/usr/lib/systemd/system/$p.service")"
done

# The agent's package also holds the inference worker it starts.
expect /usr/bin/edgeward-inference-worker \
  "$(stat -c '%U:%G %a' /usr/bin/edgeward-inference-worker)" "root:root 755"
expect "dpkg -S /usr/bin/edgeward-inference-worker" \
  "$(dpkg -S /usr/bin/edgeward-inference-worker)" "edgeward-agent: /usr/bin/edgeward-inference-worker"

# The units as systemd reads them (syntax, directives, the installed binaries), even where
# systemd is not running.
verify=$(systemd-analyze verify /usr/lib/systemd/system/edgeward-agent.service \
  /usr/lib/systemd/system/edgeward-server.service 2>&1) || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
echo "ok: systemd-analyze verify of both units"

# The installed server as its user with the installed configuration, on free loopback
# ports (flags override the file's addresses), as the unit would start it.
log="$work/server.log"
setpriv --reuid=edgeward-server --regid=edgeward-server --init-groups /usr/bin/edgeward-server --config /etc/edgeward/server.toml \
  --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --enroll-listen 127.0.0.1:0 2>"$log" &
server_pid=$!
for _ in $(seq 1 600); do
  grep -q 'enrollment listening' "$log" && break
  kill -0 "$server_pid" 2>/dev/null || fail "edgeward-server exited: $(tail -n 20 "$log")"
  sleep 0.1
done
grep -q 'enrollment listening' "$log" || fail "edgeward-server did not start in 60 s: $(tail -n 20 "$log")"
port() { sed -n "s|.*$1 listening on https://127.0.0.1:\([0-9]*\).*|\1|p" "$log" | tail -n 1; }
device_port=$(port 'device API (mTLS)') admin_port=$(port 'admin API') enroll_port=$(port enrollment)
data=/var/lib/edgeward-server
health=$(curl -sS --cacert "$data/server-ca.pem" "https://127.0.0.1:$admin_port/healthz")
echo "server: health $health on admin port $admin_port"
curl -sSf --cacert "$data/server-ca.pem" "https://127.0.0.1:$enroll_port/healthz" >/dev/null ||
  fail "the enrollment listener's /healthz"
expect "files in $data not the server's" "$(find "$data" ! -user edgeward-server)" ""
expect "files in $data readable by others" "$(find "$data" -perm /077)" ""

# The installed agent as its user, enrolling against that server from its state directory.
# /run/edgeward-agent is what the unit's RuntimeDirectory= makes.
install -d -o edgeward-agent -g edgeward-agent -m 0750 /run/edgeward-agent
install -o root -g edgeward-agent -m 0640 "$data/server-ca.pem" /run/edgeward-agent/server-ca.pem
sed -e "s|^server = .*|server = \"https://127.0.0.1:$device_port\"|" \
  -e "s|^enroll_server = .*|enroll_server = \"https://127.0.0.1:$enroll_port\"|" \
  -e "s|^server_ca = .*|server_ca = \"/run/edgeward-agent/server-ca.pem\"|" \
  -e "s|^telemetry_interval_ms = .*|telemetry_interval_ms = 200|" \
  -e "s|^command_interval_ms = .*|command_interval_ms = 200|" \
  /etc/edgeward/agent.toml >"$work/agent.toml"
install -o root -g edgeward-agent -m 0640 "$work/agent.toml" /run/edgeward-agent/agent.toml
token=$(curl -sSf --cacert "$data/server-ca.pem" -H "Authorization: Bearer $(cat "$data/admin-token")" \
  -d '{"id":"deb-test-1","hardware_class":"deb-test"}' "https://127.0.0.1:$admin_port/v1/admin/devices" |
  sed -n 's/.*"enrollment_token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || fail "no enrollment token from the admin API"
token_file=$(sed -n 's/^enrollment_token_file = "\(.*\)"/\1/p' /etc/edgeward/agent.toml)
expect "agent's token file" "$token_file" /var/lib/edgeward-agent/enrollment-token
printf '%s\n' "$token" >"$work/token"
install -o edgeward-agent -g edgeward-agent -m 0600 "$work/token" "$token_file"
setpriv --reuid=edgeward-agent --regid=edgeward-agent --init-groups /usr/bin/edgeward-agent run --config /run/edgeward-agent/agent.toml \
  2>"$work/agent.log" &
agent_pid=$!
status=""
for _ in $(seq 1 600); do
  status=$(/usr/bin/edgeward-agent status --json --config /run/edgeward-agent/agent.toml 2>/dev/null || true)
  grep -q '"telemetry_sent": *[1-9]' <<<"$status" && break
  kill -0 "$agent_pid" 2>/dev/null || fail "edgeward-agent exited: $(tail -n 20 "$work/agent.log")"
  sleep 0.1
done
grep -q '"telemetry_sent": *[1-9]' <<<"$status" ||
  fail "the agent delivered no telemetry in 60 s: $status $(tail -n 20 "$work/agent.log")"
echo "agent: $status"
grep -q '"state": *"running"' <<<"$status" || fail "agent state: $status"
grep -q '"device_id": *"deb-test-1"' <<<"$status" || fail "agent device: $status"
[ ! -e "$token_file" ] || fail "the agent left its enrollment token file"
expect "files in /var/lib/edgeward-agent not the agent's" "$(find /var/lib/edgeward-agent ! -user edgeward-agent)" ""
kill -TERM "$agent_pid"
agent_status=0
wait "$agent_pid" || agent_status=$?
agent_pid=""
expect "agent exit status on SIGTERM" "$agent_status" 0
kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=""
expect "server exit status on SIGTERM" "$server_status" 0

dpkg_retry --purge "${packages[@]}"
for p in "${packages[@]}"; do
  if dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null | grep -qv '^un'; then
    fail "$p is still known to dpkg after the purge: $(dpkg-query -W -f '${db:Status-Abbrev}' "$p")"
  fi
  getent passwd "$p" >/dev/null && fail "user $p is left after the purge"
  getent group "$p" >/dev/null && fail "group $p is left after the purge"
  [ ! -e "/var/lib/$p" ] || fail "/var/lib/$p is left after the purge"
  [ ! -e "/run/$p" ] || fail "/run/$p is left after the purge"
done
after=$(snapshot)
[ "$before" = "$after" ] || fail "the machine differs after the purge: $(diff <(echo "$before") <(echo "$after"))"
echo "summary: both packages installed, enabled, served (health $health, agent enrolled and delivered telemetry) and purged without a trace"

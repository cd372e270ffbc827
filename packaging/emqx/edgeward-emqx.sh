#!/usr/bin/env bash
# NOT RUN IN THIS PROJECT'S SUITE: EMQX cannot be installed from Debian, PyPI or crates.io
# on the development machines, so this script is documented (docs/broker.md), not tested.
#
# Configures an EMQX 5 cluster to carry Edgeward device traffic the way the generated
# Mosquitto configuration does: mutual TLS against the device CA with CRL checking, the
# certificate's CN as user name, the same authorization rules, and the revocation kick.
#
#   EMQX_API=https://emqx-1:18083 EMQX_KEY=… EMQX_SECRET=… \
#   packaging/emqx/edgeward-emqx.sh setup  CERT_DIR CRL_URL
#   packaging/emqx/edgeward-emqx.sh join   NODE               # run on each further node
#   packaging/emqx/edgeward-emqx.sh kick   DEVICE_ID          # what the server does on revocation
#
# CERT_DIR holds what `edgeward-server broker-config --out CERT_DIR` wrote (broker.pem,
# broker.key, device-ca.pem); CRL_URL serves the server's device-crl.pem (EMQX fetches and
# refreshes it).
set -euo pipefail
api="${EMQX_API:?EMQX_API}"
auth=(-u "${EMQX_KEY:?EMQX_KEY}:${EMQX_SECRET:?EMQX_SECRET}")

setup() {
    local certs="$1" crl_url="$2"
    # TLS listener: client certificate required, CRL checked, CN as user name.
    cat > /etc/emqx/edgeward-listener.hocon <<HOCON
listeners.ssl.default {
  bind = "0.0.0.0:8883"
  ssl_options {
    certfile = "${certs}/broker.pem"
    keyfile = "${certs}/broker.key"
    cacertfile = "${certs}/device-ca.pem"
    verify = verify_peer
    fail_if_no_peer_cert = true
    enable_crl_check = true
    versions = ["tlsv1.3", "tlsv1.2"]
  }
}
crl_cache { refresh_interval = 15s }
mqtt { peer_cert_as_username = cn, max_packet_size = 1052672 }
authorization { no_match = deny, deny_action = disconnect }
HOCON
    echo "include /etc/emqx/edgeward-listener.hocon" >> /etc/emqx/emqx.conf
    # Authorization: the same rules as packaging's Mosquitto ACL.
    cat > /etc/emqx/edgeward-acl.conf <<'ACL'
{allow, {username, "edgeward:server"}, subscribe, ["$share/edgeward/devices/+/telemetry", "$share/edgeward/devices/+/poll", "$share/edgeward/devices/+/result/+"]}.
{allow, {username, "edgeward:server"}, publish, ["devices/+/acks", "devices/+/commands"]}.
{allow, all, publish, ["devices/${username}/telemetry", "devices/${username}/poll", "devices/${username}/result/+"]}.
{allow, all, subscribe, ["devices/${username}/acks", "devices/${username}/commands"]}.
{deny, all}.
ACL
    curl -fsS "${auth[@]}" -X PUT "$api/api/v5/authorization/sources/file" \
        -H 'content-type: application/json' \
        -d "{\"type\":\"file\",\"enable\":true,\"rules\":$(python3 -c 'import json,sys;print(json.dumps(open("/etc/emqx/edgeward-acl.conf").read()))')}"
    echo "CRL distribution point for the device CA: $crl_url (set it in the device CA's certificates or serve it at the URL EMQX is configured with)"
    emqx ctl conf reload
}

join() {
    emqx ctl cluster join "emqx@$1"
}

kick() {
    local device="$1"
    # Close the live session on whichever node holds it, then refuse the user name until the
    # CRL refresh takes the certificate out.
    curl -fsS "${auth[@]}" -X DELETE "$api/api/v5/clients/$device" || true
    curl -fsS "${auth[@]}" -X POST "$api/api/v5/banned" -H 'content-type: application/json' \
        -d "{\"as\":\"username\",\"who\":\"$device\",\"reason\":\"edgeward revocation\"}"
}

case "${1:-}" in
    setup) setup "$2" "$3" ;;
    join) join "$2" ;;
    kick) kick "$2" ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
esac

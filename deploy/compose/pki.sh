#!/bin/sh
# The compose stack's one-shot `pki` service: creates the deployment's CA, a certificate for every
# identity, and nats-server's configuration rendered from the policy. Idempotent: the CA and existing
# certificates are kept; the configuration is rendered again every time (the policy may have changed).
#
# The CA lives in a host folder (NATSFS_DATA/pki, bound at $CA_DIR), not in a named volume, so
# `docker compose down -v` cannot destroy it; `make ca-backup` archives it. Every identity named in
# the policy gets NAME.pem/NAME.key there, ready to copy to a client on another host. Each service's
# volume receives ca.pem and that service's own certificate and key, nothing else, owned by the user
# the service runs as (nats.conf names its files by absolute path).
set -eu

CA_DIR=/var/lib/natsfs/ca
PKI_ROOT=/etc/natsfs/pki
POLICY=/etc/natsfs/compose/policy.yaml
# Users the services run as (docker-compose.yml's `user:`); the client runs as root (FUSE).
NATS_UID=10002
SERVER_UID=10001
# Names a client may reach nats-server by: the compose services, the published port on this host,
# and whatever NATSFS_BUS_HOSTS adds (comma-separated) for clients on other hosts.
NATS_HOSTS="nats nats-2 nats-3 localhost 127.0.0.1 $(echo "${NATSFS_BUS_HOSTS:-}" | tr ',' ' ')"

# issue NAME [HOST...]: NAME's certificate, issued once.
issue() {
  name=$1
  shift
  [ -f "$CA_DIR/$name.pem" ] && return 0
  hosts=""
  for host in "$@"; do hosts="$hosts --host $host"; done
  # shellcheck disable=SC2086 # one word per --host flag
  natsfs pki issue --dir "$CA_DIR" --name "$name" $hosts
}

# install_into SERVICE NAME UID: ca.pem and NAME's certificate and key into SERVICE's volume.
install_into() {
  service=$1 name=$2 uid=$3
  mkdir -p "$PKI_ROOT/$service"
  cp "$CA_DIR/ca.pem" "$CA_DIR/$name.pem" "$CA_DIR/$name.key" "$PKI_ROOT/$service/"
  chmod 600 "$PKI_ROOT/$service/$name.key"
  chown -R "$uid:$uid" "$PKI_ROOT/$service"
}

umask 077
[ -f "$CA_DIR/ca.pem" ] || natsfs pki init --dir "$CA_DIR"

# shellcheck disable=SC2086 # one word per host
issue nats $NATS_HOSTS
# Every identity and server the policy names (the yaml package ships in the image's node_modules).
identities=$(cd /app && node --input-type=module -e '
  import { readFileSync } from "node:fs";
  import { parse } from "yaml";
  const policy = parse(readFileSync(process.argv[1], "utf8"));
  console.log([...Object.keys(policy.identities ?? {}), ...(policy.servers ?? [])].join(" "));
' "$POLICY")
for identity in $identities; do issue "$identity"; done

install_into nats nats "$NATS_UID"
install_into server fileserver "$SERVER_UID"
install_into client client 0

natsfs nats-config --policy "$POLICY" --pki "$PKI_ROOT/nats" >"$PKI_ROOT/nats/nats.conf.new"
mv "$PKI_ROOT/nats/nats.conf.new" "$PKI_ROOT/nats/nats.conf"
# The cluster profile's nodes: the same configuration plus TLS routes to the three nodes (a node
# ignores the route to itself). Clients keep the queue group working across the loss of any one.
cat >"$PKI_ROOT/nats/cluster.conf" <<EOF
include ./nats.conf
server_name: \$NATSFS_NODE
cluster {
  name: natsfs
  listen: 0.0.0.0:6222
  routes: [nats-route://nats:6222, nats-route://nats-2:6222, nats-route://nats-3:6222]
  tls {
    cert_file: "$PKI_ROOT/nats/nats.pem"
    key_file: "$PKI_ROOT/nats/nats.key"
    ca_file: "$PKI_ROOT/nats/ca.pem"
    verify: true
    timeout: 2
  }
}
EOF
chmod 644 "$PKI_ROOT/nats/nats.conf" "$PKI_ROOT/nats/cluster.conf"
chown "$NATS_UID:$NATS_UID" "$PKI_ROOT/nats/nats.conf" "$PKI_ROOT/nats/cluster.conf"
echo "pki: CA and certificates in place, nats.conf and cluster.conf rendered from $POLICY"

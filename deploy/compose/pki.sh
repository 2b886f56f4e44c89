#!/bin/sh
# The compose stack's one-shot `pki` service: creates the deployment's CA, a certificate for each
# service, and nats-server's configuration rendered from the policy. Idempotent: the CA and existing
# certificates are kept; the configuration is rendered again every time (the policy may have changed).
#
# The CA key stays in its own volume, mounted only here. Each service's volume receives ca.pem and that
# service's own certificate and key, nothing else, at the path the service mounts it on (nats.conf
# names its files by absolute path).
set -eu

CA_DIR=/var/lib/natsfs/ca
PKI_ROOT=/etc/natsfs/pki
POLICY=/etc/natsfs/compose/policy.yaml

# issue_into SERVICE NAME [HOST...]: NAME's certificate (issued once) copied into SERVICE's volume.
issue_into() {
  service=$1 name=$2
  shift 2
  if [ ! -f "$CA_DIR/$name.pem" ]; then
    hosts=""
    for host in "$@"; do hosts="$hosts --host $host"; done
    # shellcheck disable=SC2086 # one word per --host flag
    natsfs pki issue --dir "$CA_DIR" --name "$name" $hosts
  fi
  mkdir -p "$PKI_ROOT/$service"
  cp "$CA_DIR/ca.pem" "$CA_DIR/$name.pem" "$CA_DIR/$name.key" "$PKI_ROOT/$service/"
  chmod 600 "$PKI_ROOT/$service/$name.key"
}

[ -f "$CA_DIR/ca.pem" ] || natsfs pki init --dir "$CA_DIR"

# nats-server is reached as `nats` on the compose network, and as localhost through the published port.
issue_into nats nats nats localhost 127.0.0.1
issue_into server fileserver
issue_into client client

natsfs nats-config --policy "$POLICY" --pki "$PKI_ROOT/nats" >"$PKI_ROOT/nats/nats.conf.new"
mv "$PKI_ROOT/nats/nats.conf.new" "$PKI_ROOT/nats/nats.conf"
echo "pki: certificates in place, $PKI_ROOT/nats/nats.conf rendered from $POLICY"

#!/usr/bin/env bash
# Builds local stand-ins for the base images docker-compose.yml and the Dockerfiles name, for a machine
# that has podman but no registry: debian:bookworm-slim (debootstrap), node:20-bookworm-slim (that plus
# this machine's node and npm), nats:2.10-alpine (Debian's nats-server) and prom/prometheus (Debian's
# prometheus); the last two get wget, which their real (busybox) images have and the healthchecks use.
# Podman uses a local image of the right name instead of pulling, so the project's files stay unchanged.
# Grafana has no Debian package: it gets no stand-in.
#
# Usage: compose-standins.sh CACHE_DIR
#   Runs `podman` against whatever store the caller's environment selects (CONTAINERS_CONF,
#   CONTAINERS_STORAGE_CONF). The debootstrap root file system, the slow part, is kept in CACHE_DIR
#   and reused; delete CACHE_DIR/bookworm-rootfs.tar to build it again. When every stand-in is in the
#   store already nothing is rebuilt (a new import would invalidate every build cached on top of it);
#   NATSFS_STANDINS_REBUILD=1 rebuilds them.
set -euo pipefail

cache_dir=${1:?usage: compose-standins.sh CACHE_DIR}
mkdir -p "$cache_dir"

# Image names: keep in step with docker-compose.yml and the Dockerfiles' FROM lines.
DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
NODE_IMAGE=docker.io/library/node:20-bookworm-slim
NATS_IMAGE=docker.io/library/nats:2.10-alpine
PROMETHEUS_IMAGE=docker.io/prom/prometheus:v2.53.4
# Not a real image: the layer with wget that the two above share.
TOOLS_IMAGE=localhost/natsfs-standin-tools:latest

all_present() {
  local image
  for image in "$DEBIAN_IMAGE" "$NODE_IMAGE" "$TOOLS_IMAGE" "$NATS_IMAGE" "$PROMETHEUS_IMAGE"; do
    podman image exists "$image" || return 1
  done
}
if [ "${NATSFS_STANDINS_REBUILD:-0}" != 1 ] && all_present; then
  echo "standins: already in the store"
  exit 0
fi

# The mirror apt already uses here: the only Debian mirror this machine can reach.
debian_mirror() {
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '/^deb / { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

build_rootfs_tar() {
  local tar=$1 rootfs
  rootfs=$(mktemp -d "$cache_dir/rootfs.XXXXXX")
  echo "standins: debootstrap bookworm (minbase) from $(debian_mirror)"
  debootstrap --variant=minbase bookworm "$rootfs" "$(debian_mirror)" >"$cache_dir/debootstrap.log" 2>&1 ||
    { tail -20 "$cache_dir/debootstrap.log" >&2; rm -rf --one-file-system "$rootfs"; return 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -cf "$tar.partial" .
  mv "$tar.partial" "$tar"
  rm -rf --one-file-system "$rootfs"
}

# Builds IMAGE from a Containerfile given on stdin, with CONTEXT as the build context.
build_image() {
  local image=$1 context=$2
  podman build --quiet --tag "$image" --file - "$context" >/dev/null
}

rootfs_tar="$cache_dir/bookworm-rootfs.tar"
[ -s "$rootfs_tar" ] || build_rootfs_tar "$rootfs_tar"
podman import --quiet "$rootfs_tar" "$DEBIAN_IMAGE" >/dev/null

context=$(mktemp -d "$cache_dir/context.XXXXXX")
trap 'rm -rf --one-file-system "$context"' EXIT

# node: this machine's node 20 and npm where the official image keeps them. Two things only this
# machine needs, so they live here and never in the project's Dockerfiles: the registry is reached
# through a TLS-inspecting proxy (its CA must be trusted), and nodejs.org is unreachable, so node-gyp
# takes the headers from the image instead of downloading them.
node_bin=$(readlink -f "$(command -v node)")
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
node_headers=$(node -p 'process.config.variables.node_prefix')/include/node
[ -d "$node_headers" ] || node_headers=/usr/include/node
mkdir -p "$context/node/bin" "$context/node/include"
cp "$node_bin" "$context/node/bin/node"
cp -a "$npm_dir" "$context/node/npm"
cp -a "$node_headers" "$context/node/include/node"
cp /etc/ssl/certs/ca-certificates.crt "$context/node/host-ca.crt"
build_image "$NODE_IMAGE" "$context/node" <<EOF
FROM $DEBIAN_IMAGE
COPY bin/node /usr/local/bin/node
COPY npm /usr/local/lib/node_modules/npm
COPY include/node /usr/local/include/node
COPY host-ca.crt /usr/local/share/standin-ca.crt
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/standin-ca.crt npm_config_nodedir=/usr/local
CMD ["node"]
EOF
# The real nats and prometheus images are busybox-based: wget is there for healthchecks.
mkdir -p "$context/tools"
build_image "$TOOLS_IMAGE" "$context/tools" <<EOF
FROM $DEBIAN_IMAGE
RUN apt-get update && apt-get install -y --no-install-recommends wget && rm -rf /var/lib/apt/lists/*
EOF

# nats:2.10-alpine: nats-server in /usr/local/bin (the compose file names it as the entry point).
mkdir -p "$context/nats"
cp "$(command -v nats-server)" "$context/nats/nats-server"
build_image "$NATS_IMAGE" "$context/nats" <<EOF
FROM $TOOLS_IMAGE
COPY nats-server /usr/local/bin/nats-server
EXPOSE 4222 8222 6222
ENTRYPOINT ["/usr/local/bin/nats-server"]
CMD ["--config", "/etc/nats/nats-server.conf"]
EOF

# prom/prometheus: /bin/prometheus as the entry point, data in /prometheus, run as nobody.
mkdir -p "$context/prometheus"
cp "$(command -v prometheus)" "$context/prometheus/prometheus"
build_image "$PROMETHEUS_IMAGE" "$context/prometheus" <<EOF
FROM $TOOLS_IMAGE
COPY prometheus /bin/prometheus
RUN mkdir -p /prometheus /etc/prometheus && chown nobody:nogroup /prometheus
USER nobody
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
EOF

echo "standins: built $DEBIAN_IMAGE $NODE_IMAGE $TOOLS_IMAGE $NATS_IMAGE $PROMETHEUS_IMAGE"

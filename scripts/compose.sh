#!/usr/bin/env bash
# The compose appliance's one entry point (`make up`, `make down`, `make logs`, `make ps`,
# `make ca-backup`): the same commands on a Docker host and on a root Debian machine without Docker.
#
#   scripts/compose.sh up          build, prepare NATSFS_DATA, start, wait for every healthcheck, print
#                                  the mount path and URLs
#   scripts/compose.sh down [-v]   stop and remove the stack (-v: its volumes too; the CA is not in one)
#   scripts/compose.sh logs [ARGS] `compose logs -f --tail=100` (ARGS replace the defaults)
#   scripts/compose.sh ps          the services and their health
#   scripts/compose.sh ca-backup [FILE]   archive NATSFS_DATA/pki (the CA key included), mode 600
#   scripts/compose.sh compose ARGS...    any compose command with the stack's settings
#
# Engine: Docker when its engine answers (`docker compose`, else `docker-compose`); otherwise, as root,
# rootful podman (scripts/compose-podman.sh): its Docker-compatible socket, docker-compose 1.29 and
# locally built stand-ins for the base images, everything kept under NATSFS_PODMAN_DIR.
# NATSFS_ENGINE=docker|podman forces one.
#
# Settings (environment or make variables), remembered in NATSFS_DATA/compose.env by `up` so the other
# commands see the same stack:
#   NATSFS_DATA  host folder for export/, mnt/, pki/ (default ./data)
#   SERVERS      server instances (default 1, 2 with CLUSTER=1)
#   CLUSTER=1    three clustered NATS nodes (the `cluster` profile)
#   GRAFANA=1    Grafana on 127.0.0.1:3000 (the `grafana` profile; needs its registry image)
#   NATSFS_BUS_PORT, NATSFS_BUS_ADDRESS, NATSFS_BUS_HOSTS, NATSFS_PROMETHEUS_PORT, NATSFS_GRAFANA_PORT
#                (see docker-compose.yml and the README)
#   NATSFS_BUILD_CONTEXT  what the images are built from (default: this folder)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'natsfs-compose: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

export NATSFS_DATA=$(realpath -m "${NATSFS_DATA:-./data}")
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-natsfs}
settings_file="$NATSFS_DATA/compose.env"

# The settings `up` saved, under whatever the caller sets now.
load_settings() {
  local saved_servers="" saved_cluster="" saved_grafana=""
  if [ -f "$settings_file" ]; then
    saved_servers=$(sed -n 's/^SERVERS=//p' "$settings_file")
    saved_cluster=$(sed -n 's/^CLUSTER=//p' "$settings_file")
    saved_grafana=$(sed -n 's/^GRAFANA=//p' "$settings_file")
  fi
  CLUSTER=${CLUSTER:-${saved_cluster:-0}}
  GRAFANA=${GRAFANA:-${saved_grafana:-0}}
  local default_servers=1
  [ "$CLUSTER" = 1 ] && default_servers=2
  SERVERS=${SERVERS:-${saved_servers:-$default_servers}}
  [[ "$SERVERS" =~ ^[1-9][0-9]?$ ]] || die "SERVERS must be a number from 1 to 99, not '$SERVERS'"

  local profiles=()
  [ "$CLUSTER" = 1 ] && profiles+=(cluster)
  [ "$GRAFANA" = 1 ] && profiles+=(grafana)
  COMPOSE_PROFILES=$(IFS=,; echo "${profiles[*]:-}")
  export COMPOSE_PROFILES
  if [ "$CLUSTER" = 1 ]; then
    export NATSFS_NATS_CONFIG=cluster.conf
    export NATSFS_NATS_URLS=tls://nats:4222,tls://nats-2:4222,tls://nats-3:4222
  else
    export NATSFS_NATS_CONFIG=nats.conf NATSFS_NATS_URLS=tls://nats:4222
  fi
}

save_settings() {
  printf 'SERVERS=%s\nCLUSTER=%s\nGRAFANA=%s\n' "$SERVERS" "$CLUSTER" "$GRAFANA" >"$settings_file"
}

# Picks the engine and sets COMPOSE (the compose command) and ENGINE_CLI (for inspect).
choose_engine() {
  local engine=${NATSFS_ENGINE:-}
  if [ -z "$engine" ]; then
    if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then engine=docker; else engine=podman; fi
  fi
  case "$engine" in
    docker)
      ENGINE_CLI=(docker)
      if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
      elif command -v docker-compose >/dev/null 2>&1; then
        COMPOSE=(docker-compose)
      else
        die "Docker answers but has no compose: install the docker-compose-plugin package"
      fi
      ;;
    podman)
      [ "$(id -u)" -eq 0 ] || die "no Docker engine here, and the podman route needs root (rootful podman, FUSE, mounts)"
      # shellcheck source=scripts/compose-podman.sh
      source scripts/compose-podman.sh
      ENGINE_CLI=(podman)
      COMPOSE=(docker-compose --ansi never)
      ;;
    *) die "NATSFS_ENGINE must be docker or podman, not '$engine'" ;;
  esac
  ENGINE=$engine
}

# Starts what the engine needs (podman: its service, health checks, stand-in images).
engine_start() { [ "$ENGINE" = podman ] && podman_route_start "$@"; return 0; }

compose() { "${COMPOSE[@]}" "$@"; }

# One line per container of the project: "NAME STATUS HEALTH" (HEALTH "none" without a healthcheck).
container_health() {
  local ids
  ids=$(compose ps -q 2>/dev/null) || return 1
  [ -n "$ids" ] || return 0
  # shellcheck disable=SC2086 # one word per id
  "${ENGINE_CLI[@]}" inspect --format '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' $ids
}

# Waits until every running container with a healthcheck is healthy and none has exited with an
# error; prints the laggards while waiting and fails after SECONDS.
wait_healthy() {
  local seconds=$1 deadline=$(($(date +%s) + $1)) report pending
  while :; do
    report=$(container_health) || report="(compose ps failed)"
    pending=$(awk '$2 != "exited" && $3 != "healthy" && $3 != "none" { print $1 "=" $3 } $2 == "exited" && $1 !~ /pki/ { print $1 "=exited" }' <<<"$report")
    [ -z "$pending" ] && return 0
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "not healthy after ${seconds} s: $(tr '\n' ' ' <<<"$pending")"
      return 1
    fi
    sleep 2
  done
}

cmd_up() {
  load_settings
  engine_start build
  NATSFS_DATA=$NATSFS_DATA bash scripts/compose-prepare.sh
  save_settings
  log "building and starting ($ENGINE, servers: $SERVERS, profiles: ${COMPOSE_PROFILES:-none})"
  compose build pki server client >"$NATSFS_DATA/build.log" 2>&1 ||
    { tail -30 "$NATSFS_DATA/build.log" >&2; die "build failed (whole log: $NATSFS_DATA/build.log)"; }
  compose up -d --remove-orphans --scale server="$SERVERS"
  wait_healthy "${NATSFS_UP_TIMEOUT:-180}" || { compose ps >&2; die "the stack did not become healthy (make logs)"; }
  cat <<EOF
natsfs appliance is up ($ENGINE, $SERVERS server instance(s)$([ "$CLUSTER" = 1 ] && echo ", 3 NATS nodes")):
  mount (export data)   $NATSFS_DATA/mnt/data
  exported folder       $NATSFS_DATA/export
  CA and certificates   $NATSFS_DATA/pki   (make ca-backup)
  Prometheus            http://127.0.0.1:${NATSFS_PROMETHEUS_PORT:-9090}
  Grafana               $([ "$GRAFANA" = 1 ] && echo "http://127.0.0.1:${NATSFS_GRAFANA_PORT:-3000} (admin/admin)" || echo "off (make up GRAFANA=1)")
  NATS for other hosts  tls://$(hostname -f 2>/dev/null || hostname):${NATSFS_BUS_PORT:-4222} (mutual TLS, README: other hosts)
  make ps | make logs | make down
EOF
}

cmd_down() {
  local remove_volumes=()
  [ "${1:-}" = -v ] && remove_volumes=(-v)
  load_settings
  # Every profile, so containers of an earlier `make up CLUSTER=1` go too.
  export COMPOSE_PROFILES=cluster,grafana
  engine_start
  [ "${#remove_volumes[@]}" -gt 0 ] &&
    log "removing the volumes too (Prometheus history, Grafana state); the CA stays in $NATSFS_DATA/pki"
  # On failure (e.g. a volume already gone) the rest still runs: nothing of the engine stays behind.
  local status=0
  compose down --remove-orphans --timeout 10 "${remove_volumes[@]}" || status=$?
  # The shared bind compose-prepare.sh made; the next `up` makes it again.
  if findmnt -n --mountpoint "$NATSFS_DATA/mnt" >/dev/null 2>&1; then
    awk -v under="$NATSFS_DATA/mnt/" '$3 ~ /^fuse/ && index($2, under) == 1 { print $2 }' /proc/mounts |
      while read -r stale; do umount -l "$stale"; done
    umount "$NATSFS_DATA/mnt" || umount -l "$NATSFS_DATA/mnt"
  fi
  [ "$ENGINE" = podman ] && podman_route_stop
  [ "$status" -eq 0 ] || die "compose down failed (exit $status)"
  log "down: no containers left; $NATSFS_DATA (export, pki) kept"
}

cmd_ca_backup() {
  local pki="$NATSFS_DATA/pki" file=${1:-natsfs-ca-$(date -u +%Y%m%dT%H%M%SZ).tar.gz}
  [ -f "$pki/ca.key" ] || die "no CA in $pki yet (make up creates it)"
  (umask 077 && tar -C "$NATSFS_DATA" -czf "$file" pki)
  log "CA and certificates archived in $file (it holds the CA key: keep it safe; restore with tar -C $NATSFS_DATA -xzf $file)"
}

[ "$#" -ge 1 ] || die "usage: scripts/compose.sh up|down [-v]|logs [ARGS]|ps|ca-backup [FILE]|compose ARGS..."
command=$1
shift
case "$command" in
  ca-backup) cmd_ca_backup "$@"; exit ;;
esac
choose_engine
case "$command" in
  up) cmd_up ;;
  down) cmd_down "$@" ;;
  logs) load_settings; engine_start; if [ "$#" -gt 0 ]; then compose logs "$@"; else compose logs -f --tail=100; fi ;;
  ps) load_settings; engine_start; compose ps ;;
  compose) load_settings; engine_start; compose "$@" ;;
  *) die "unknown command '$command'" ;;
esac

# shellcheck shell=bash
# The podman route of scripts/compose.sh (sourced, not run): rootful podman serving the Docker API on a
# socket, for a root machine with no Docker engine and no registry (../shared/container-testing.md has
# the measurements behind each setting). docker-compose 1.29 drives the real docker-compose.yml
# through it; stand-ins (scripts/compose-standins.sh) take the place of the registry's base images.
#
# Everything podman keeps is under NATSFS_PODMAN_DIR (default /var/lib/natsfs-compose): its
# configuration, image store (kept between `up`s, so a second `up` builds from cache) and the
# debootstrap cache. Run state (socket, pid files) is under /run/natsfs-compose/<hash of that dir>.
# podman_route_stop leaves nothing running and removes what podman put on the host outside its store
# (netavark's iptables chains, /run/containers, conmon cgroups) unless it was there before the first
# start, i.e. belongs to another podman user.

PODMAN_PACKAGES=(podman runc netavark aardvark-dns iptables catatonit debootstrap docker-compose curl)
PODMAN_DIR=$(realpath -m "${NATSFS_PODMAN_DIR:-/var/lib/natsfs-compose}")
PODMAN_RUN_DIR=/run/natsfs-compose/$(printf '%s' "$PODMAN_DIR" | md5sum | cut -c1-12)

export CONTAINERS_CONF="$PODMAN_DIR/containers.conf" CONTAINERS_STORAGE_CONF="$PODMAN_DIR/storage.conf"
export DOCKER_HOST="unix://$PODMAN_RUN_DIR/podman.sock"
# docker-compose 1.29 builds through the API (no BuildKit), which podman serves.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

podman_install_packages() {
  local missing=() pkg
  for pkg in "${PODMAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
}

# Three settings this kind of VM needs: ulimits it may set (no CAP_SYS_RESOURCE for the default
# 1048576), runc (crun refuses the hybrid cgroup layout), cgroupfs (no systemd).
podman_write_config() {
  mkdir -p "$PODMAN_DIR" "$PODMAN_RUN_DIR"
  cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$PODMAN_RUN_DIR/libpod-tmp"

[network]
network_config_dir = "$PODMAN_DIR/networks"
EOF
  cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$PODMAN_DIR/storage"
runroot = "$PODMAN_RUN_DIR/storage"
EOF
}

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# Podman runs healthchecks from systemd timers; without systemd (this machine) nothing would ever run
# them and every container would stay "starting". This loop asks the service to run each running
# container's healthcheck every few seconds (libpod API), as the timers would.
podman_health_loop() {
  local socket=$PODMAN_RUN_DIR/podman.sock id
  while :; do
    # Running containers only; one without a healthcheck answers 409, at no cost.
    for id in $(curl -fsS --max-time 5 --unix-socket "$socket" 'http://d/v4.0.0/libpod/containers/json' 2>/dev/null |
      node -e 'for (const c of JSON.parse(require("fs").readFileSync(0, "utf8"))) console.log(c.Id)' 2>/dev/null); do
      curl -fsS --max-time 10 --unix-socket "$socket" "http://d/v4.0.0/libpod/containers/$id/healthcheck" >/dev/null 2>&1 &
    done
    wait
    sleep "${NATSFS_PODMAN_HEALTH_INTERVAL:-3}"
  done
}

# podman_route_start [build]: packages, configuration, the API service and the health loop; with
# `build`, the stand-in base images as well.
podman_route_start() {
  podman_install_packages
  podman_write_config
  # Whether podman's host state predates us (decides what podman_route_stop may remove).
  if [ ! -f "$PODMAN_DIR/host-state-before" ]; then
    if iptables -S NETAVARK_FORWARD >/dev/null 2>&1 || [ -e /run/containers ] || [ -e /sys/fs/cgroup/memory/libpod_parent ]; then
      echo 1 >"$PODMAN_DIR/host-state-before"
    else
      echo 0 >"$PODMAN_DIR/host-state-before"
    fi
  fi
  if ! pid_alive "$PODMAN_RUN_DIR/podman.pid"; then
    rm -f "$PODMAN_RUN_DIR/podman.sock"
    setsid podman system service --time=0 "$DOCKER_HOST" >>"$PODMAN_DIR/podman-service.log" 2>&1 </dev/null &
    echo $! >"$PODMAN_RUN_DIR/podman.pid"
    local i
    for i in $(seq 60); do
      curl -fsS --max-time 2 --unix-socket "$PODMAN_RUN_DIR/podman.sock" http://d/_ping >/dev/null 2>&1 && break
      [ "$i" -lt 60 ] || die "podman's API socket did not answer in 30 s (see $PODMAN_DIR/podman-service.log)"
      sleep 0.5
    done
  fi
  if ! pid_alive "$PODMAN_RUN_DIR/health.pid"; then
    (podman_health_loop) </dev/null >/dev/null 2>&1 &
    echo $! >"$PODMAN_RUN_DIR/health.pid"
  fi
  if [ "${1:-}" = build ]; then
    log "stand-in base images (podman store and cache in $PODMAN_DIR)"
    timeout 900 bash scripts/compose-standins.sh "$PODMAN_DIR/standins" >&2
  fi
}

stop_pid_file() {
  local file=$1 pid
  pid_alive "$file" || { rm -f "$file"; return 0; }
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null
  timeout 20 tail --pid="$pid" -f /dev/null || kill -9 "$pid" 2>/dev/null
  rm -f "$file"
}

podman_remove_host_state() {
  local table chain
  for table in filter nat; do
    iptables -t "$table" -S 2>/dev/null | grep -- '^-A [A-Z]* .*-j NETAVARK' | sed 's/^-A/-D/' |
      while read -r rule; do eval "iptables -t $table $rule"; done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^NETAVARK/ { print $2 }'); do
      iptables -t "$table" -F "$chain"
    done
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^NETAVARK/ { print $2 }'); do
      iptables -t "$table" -X "$chain"
    done
  done
  rm -rf /run/containers
  find /sys/fs/cgroup/*/libpod_parent -depth -type d -exec rmdir {} + 2>/dev/null || true
}

# After `compose down`: stops the health loop and the service, unmounts what the store left mounted.
podman_route_stop() {
  stop_pid_file "$PODMAN_RUN_DIR/health.pid"
  stop_pid_file "$PODMAN_RUN_DIR/podman.pid"
  # conmon processes of finished exec sessions (healthchecks) linger for minutes before their
  # cleanup, which would write the run folder again: they are the service's children, ended here.
  local conmon_pids
  conmon_pids=$(pgrep -f -- "conmon .*--exit-command-arg $PODMAN_DIR/storage " || true)
  # shellcheck disable=SC2086 # one word per PID
  [ -n "$conmon_pids" ] && kill $conmon_pids 2>/dev/null
  local leftover
  leftover=$(podman ps -aq 2>/dev/null || true)
  [ -n "$leftover" ] && log "containers left in the store: $leftover (podman rm -f them with CONTAINERS_CONF=$CONTAINERS_CONF)"
  { grep -o " \\($PODMAN_DIR\\|$PODMAN_RUN_DIR\\)[^ ]*" /proc/mounts || true; } | sort -r |
    while read -r mounted; do umount "$mounted" 2>/dev/null || umount -l "$mounted"; done
  rm -rf "$PODMAN_RUN_DIR"
  rmdir /run/natsfs-compose 2>/dev/null || true
  [ "$(cat "$PODMAN_DIR/host-state-before" 2>/dev/null)" = 1 ] || podman_remove_host_state
}

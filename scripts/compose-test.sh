#!/usr/bin/env bash
# End-to-end test of the compose appliance (`make compose-test`), as root, on a machine with neither a
# Docker engine nor a registry: rootful podman serves its Docker-compatible API from a scratch folder,
# docker-compose drives the project's real docker-compose.yml and Dockerfiles against it, and local
# stand-ins (scripts/compose-standins.sh) take the place of the base images.
#
# Checks: a file written into the mount from a separate consumer container (rslave bind) arrives in the
# export byte for byte and the other way round; the client's /readyz and /metrics answer on 127.0.0.1;
# Prometheus scrapes both natsfs targets; after a restart of the `server` container a file held open
# across it is still written and read correctly, the mount keeps working, and the client's failover
# counter rose; after a restart of the `client` container no dead mount is left behind and a consumer
# that kept running sees the new mount; a second run of the `pki` service re-creates nothing.
# Everything is torn down at the end, on failure too.
#
# Environment: NATSFS_COMPOSE_CACHE (default /var/cache/natsfs-compose) keeps the debootstrap root file
# system between runs; NATSFS_COMPOSE_KEEP=1 leaves the stack running for a look (tear down by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
project_dir=$PWD

started=$(date +%s)
log() { printf 'compose-test [%3ds]: %s\n' "$(($(date +%s) - started))" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "compose-test: run as root (rootful podman, mounts)" >&2; exit 1; }

PACKAGES=(podman runc netavark aardvark-dns iptables catatonit debootstrap docker-compose curl)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

for port in 8222 9090 9100 9101; do
  if ss -Hltn "sport = :$port" | grep -q .; then fail "port $port is taken on this machine; the stack publishes it on 127.0.0.1"; fi
done

# What podman leaves on the host outside its store (netavark's iptables chains and run folder, the
# conmon cgroups) is removed at the end only when it was not there before: another podman user keeps it.
host_had_podman_state=0
if iptables -S NETAVARK_FORWARD >/dev/null 2>&1 || [ -e /run/containers ] || [ -e /sys/fs/cgroup/memory/libpod_parent ]; then
  host_had_podman_state=1
fi

remove_podman_host_state() {
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
  find /sys/fs/cgroup/*/libpod_parent -depth -type d -exec rmdir {} + 2>/dev/null
}

work=$(mktemp -d /tmp/natsfs-compose.XXXXXX)
data="$work/data"
# Where docker-compose.yml's client mounts the export `data`: a submount of the shared DATA/mnt.
mounted="$data/mnt/data"
cache=${NATSFS_COMPOSE_CACHE:-/var/cache/natsfs-compose}

# Podman's whole state lives in $work. Three settings this kind of VM needs: ulimits it may set (no
# CAP_SYS_RESOURCE for the default 1048576), runc (crun refuses the hybrid cgroup layout), cgroupfs.
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "$work/libpod-tmp"

[network]
network_config_dir = "$work/networks"
EOF
cat >"$work/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/storage"
runroot = "$work/run"
EOF
export CONTAINERS_CONF="$work/containers.conf" CONTAINERS_STORAGE_CONF="$work/storage.conf"
export DOCKER_HOST="unix://$work/podman.sock"
export COMPOSE_PROJECT_NAME=natsfscomposetest NATSFS_DATA="$data"
# docker-compose 1.29 builds through the API (no BuildKit), which podman serves.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

compose() { timeout --kill-after=10 "${COMPOSE_TIMEOUT:-120}" docker-compose --ansi never "$@"; }

podman_pid=""
holder_pid=""
teardown() {
  local status=$?
  set +e
  if [ "${NATSFS_COMPOSE_KEEP:-0}" = 1 ]; then
    log "NATSFS_COMPOSE_KEEP=1: leaving the stack up; DOCKER_HOST=$DOCKER_HOST NATSFS_DATA=$data (podman PID $podman_pid)"
    exit "$status"
  fi
  log "tearing down"
  [ -n "$holder_pid" ] && kill "$holder_pid" 2>/dev/null
  if [ "$status" -ne 0 ] && [ -S "$work/podman.sock" ]; then
    COMPOSE_TIMEOUT=30 compose logs --tail=40 2>&1 | sed 's/^/  | /'
  fi
  [ -S "$work/podman.sock" ] && COMPOSE_TIMEOUT=120 compose down -v --remove-orphans --timeout 10 >/dev/null 2>&1
  if [ -n "$podman_pid" ]; then
    kill "$podman_pid" 2>/dev/null
    timeout 20 tail --pid="$podman_pid" -f /dev/null
  fi
  timeout 60 podman system reset -f >/dev/null 2>&1
  # The client's FUSE mount (if a client died without unmounting), then the shared bind under it.
  while findmnt -n --mountpoint "$mounted" >/dev/null 2>&1; do timeout 10 umount -l "$mounted" || break; done
  while findmnt -n --mountpoint "$data/mnt" >/dev/null 2>&1; do timeout 10 umount -l "$data/mnt" || break; done
  grep -o " $work[^ ]*" /proc/mounts | sort -r | while read -r mounted; do timeout 10 umount -l "$mounted"; done
  rm -rf --one-file-system "$work"
  [ "$host_had_podman_state" = 1 ] || remove_podman_host_state
  log "$([ "$status" -eq 0 ] && echo PASSED || echo FAILED) in $(($(date +%s) - started)) s"
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS WHAT COMMAND...: retries COMMAND once a second until it succeeds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${seconds} s waiting for $what"
    sleep 1
  done
}

# metric_sum URL NAME: the sum of every series of NAME (0 when absent).
metric_sum() {
  curl -fsS --max-time 5 "$1" | awk -v name="$2" '$1 == name || index($1, name "{") == 1 { sum += $NF } END { printf "%d\n", sum }'
}

log "podman service in $work"
podman system service --time=0 "$DOCKER_HOST" >"$work/podman-service.log" 2>&1 &
podman_pid=$!
wait_for 30 "podman's socket" curl -fsS --unix-socket "$work/podman.sock" http://d/_ping

log "stand-in base images (debootstrap cache: $cache)"
timeout 600 bash scripts/compose-standins.sh "$cache"

bash scripts/compose-prepare.sh "$data"

log "docker-compose up -d --build"
COMPOSE_TIMEOUT=900 compose up -d --build 2>&1 | grep -v '^\(Step\|---\| --->\|Removing intermediate\)' | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "docker-compose up"

wait_for 120 "the client's /readyz" curl -fsS --max-time 5 http://127.0.0.1:9101/readyz
wait_for 30 "the FUSE mount on the host's $mounted" findmnt -n -t fuse,fuse.natsfs --mountpoint "$mounted"
log "client ready, mount visible on the host"

# 1. A consumer container (rslave bind) writes; the export holds the same bytes.
consumer_sum=$(compose run --rm --no-deps -T consumer sh -c \
  'head -c 3000000 /dev/urandom >/data/data/from-consumer.bin && sync && sha256sum </data/data/from-consumer.bin' | awk '{ print $1 }')
[ -n "$consumer_sum" ] || fail "the consumer container could not write into the mount"
cmp "$data/export/from-consumer.bin" "$mounted/from-consumer.bin" || fail "export and mount differ"
[ "$(sha256sum <"$data/export/from-consumer.bin" | awk '{ print $1 }')" = "$consumer_sum" ] ||
  fail "the export's copy differs from what the consumer wrote"
log "consumer container -> mount -> export: 3000000 bytes identical"

# 2. The other way: a file placed in the export is read through the mount by the consumer.
head -c 1500000 /dev/urandom >"$data/export/from-export.bin"
read_sum=$(compose run --rm --no-deps -T consumer sha256sum /data/data/from-export.bin | awk '{ print $1 }')
[ "$read_sum" = "$(sha256sum <"$data/export/from-export.bin" | awk '{ print $1 }')" ] ||
  fail "the consumer read different bytes than the export holds"
log "export -> mount -> consumer container: identical"

# 3. Endpoints on 127.0.0.1.
[ "$(curl -fsS --max-time 5 -o /dev/null -w '%{http_code}' http://127.0.0.1:9101/readyz)" = 200 ] || fail "client /readyz"
# Whole bodies first: `curl | grep -q` fails under pipefail when grep stops reading early.
client_metrics=$(curl -fsS --max-time 5 http://127.0.0.1:9101/metrics) || fail "client /metrics"
server_metrics=$(curl -fsS --max-time 5 http://127.0.0.1:9100/metrics) || fail "server /metrics"
nats_health=$(curl -fsS --max-time 5 http://127.0.0.1:8222/healthz) || fail "nats-server /healthz"
grep -q '^natsfs_client_' <<<"$client_metrics" || fail "client /metrics has no natsfs_client_ series"
grep -q '^natsfs_server_' <<<"$server_metrics" || fail "server /metrics has no natsfs_server_ series"
grep -q ok <<<"$nats_health" || fail "nats-server /healthz says $nats_health"
log "client /readyz 200, client and server /metrics, nats /healthz answer"

# 4. Prometheus scrapes both natsfs targets (first scrape within one 15 s interval).
targets_up() {
  curl -fsS --max-time 5 http://127.0.0.1:9090/api/v1/targets | node -e '
    const body = JSON.parse(require("fs").readFileSync(0, "utf8"));
    const up = new Set(body.data.activeTargets.filter((t) => t.health === "up").map((t) => t.labels.job));
    process.exit(["natsfs-server", "natsfs-client"].every((job) => up.has(job)) ? 0 : 1);'
}
wait_for 60 "Prometheus to report natsfs-server and natsfs-client up" targets_up
log "Prometheus: natsfs-server and natsfs-client targets up"

# 5. Restart the server container while a file is held open through the mount (from the host).
failovers_before=$(metric_sum http://127.0.0.1:9101/metrics natsfs_client_failovers_total)
held="$mounted/held-across-restart.bin"
head -c 700000 /dev/urandom >"$work/part-a"
head -c 900000 /dev/urandom >"$work/part-b"
cat "$work/part-a" "$work/part-b" >"$work/expected"
node -e '
  const fs = require("fs");
  const [held, partA, partB, ready, go, expected] = process.argv.slice(1);
  const fd = fs.openSync(held, "w+");
  fs.writeSync(fd, fs.readFileSync(partA));
  fs.fsyncSync(fd);
  fs.writeFileSync(ready, "");
  const waitForGo = () => {
    if (!fs.existsSync(go)) return setTimeout(waitForGo, 200);
    fs.writeSync(fd, fs.readFileSync(partB));
    fs.fsyncSync(fd);
    const want = fs.readFileSync(expected);
    const got = Buffer.alloc(want.length + 1);
    const n = fs.readSync(fd, got, 0, got.length, 0);
    fs.closeSync(fd);
    process.exit(n === want.length && got.subarray(0, n).equals(want) ? 0 : 3);
  };
  waitForGo();
' "$held" "$work/part-a" "$work/part-b" "$work/held-ready" "$work/held-go" "$work/expected" &
holder_pid=$!
wait_for 30 "the holder to write its first part" test -e "$work/held-ready"

log "restarting the server container with $held open"
compose restart server >/dev/null
wait_for 90 "the server's /readyz after the restart" curl -fsS --max-time 5 http://127.0.0.1:9100/readyz
touch "$work/held-go"
timeout 120 tail --pid="$holder_pid" -f /dev/null
wait "$holder_pid" || fail "the file held open across the restart was not written and read back correctly (holder exit $?)"
holder_pid=""
cmp "$work/expected" "$data/export/held-across-restart.bin" || fail "the export's copy of the held file is wrong"
log "file held open across the restart: written and read back, export identical"

failovers_after=$(metric_sum http://127.0.0.1:9101/metrics natsfs_client_failovers_total)
[ "$failovers_after" -gt "$failovers_before" ] ||
  fail "natsfs_client_failovers_total did not rise across the restart ($failovers_before -> $failovers_after)"
log "natsfs_client_failovers_total $failovers_before -> $failovers_after"

after_sum=$(compose run --rm --no-deps -T consumer sh -c \
  'head -c 500000 /dev/urandom >/data/data/after-restart.bin && sync && sha256sum </data/data/after-restart.bin' | awk '{ print $1 }')
[ "$after_sum" = "$(sha256sum <"$data/export/after-restart.bin" | awk '{ print $1 }')" ] ||
  fail "a new file written after the restart did not arrive intact"
log "the mount keeps working after the restart"

# 6. Restart the client while a consumer container that started earlier keeps running: the client's
#    stop leaves no dead mount behind, and the new mount reaches the running consumer (rslave).
compose run -d --no-deps --name natsfscomposetest_consumer_held consumer sleep 600 >/dev/null
wait_for 30 "the long-running consumer to see the mount" \
  podman exec natsfscomposetest_consumer_held test -f /data/data/after-restart.bin
compose stop client >/dev/null
! findmnt -n -t fuse,fuse.natsfs --mountpoint "$mounted" >/dev/null || fail "stopping the client left a FUSE mount on $mounted"
compose start client >/dev/null
wait_for 60 "the client's /readyz after its restart" curl -fsS --max-time 5 http://127.0.0.1:9101/readyz
wait_for 30 "the running consumer to see the new mount" \
  podman exec natsfscomposetest_consumer_held cmp /data/data/from-export.bin /data/data/from-export.bin
[ "$(podman exec natsfscomposetest_consumer_held sha256sum /data/data/after-restart.bin | awk '{ print $1 }')" = "$after_sum" ] ||
  fail "the running consumer reads different bytes after the client's restart"
log "client restarted: no dead mount while stopped, the running consumer sees the new mount"

# 7. The pki service again: keeps the CA and every certificate.
pki_output=$(compose run --rm --no-deps -T pki)
if printf '%s\n' "$pki_output" | grep -q '^created '; then fail "a second pki run created certificates again: $pki_output"; fi
log "pki again: nothing re-created"

#!/usr/bin/env bash
# End-to-end test of the compose appliance through the commands a user types (`make compose-test`, and
# the `compose` group of `make test` through test/compose-appliance.test.ts), as root. On a machine
# without Docker it takes scripts/compose.sh's podman route: rootful podman, docker-compose 1.29, the
# project's real docker-compose.yml and Dockerfiles on local stand-in base images.
#
# Steps: `make up`; the example app is healthy and its journal is in the export; a file written in the
# app container arrives in the export byte for byte and the other way round; files belong to the
# servers' user (squash), the services run as the users the compose file names; a natsfs mount on the
# host through the published bus port (a client "on another host"); `make up CLUSTER=1 SERVERS=2`
# (three NATS nodes) and both servers are Prometheus targets; the server holding a file open is killed
# while the app keeps writing: the file, the app's journal and the failover count in Prometheus are
# right and NatsfsServerDown stays quiet; every server paused for a few seconds (the client retries);
# a request the server must refuse (a denial); the NATS node the client uses is killed while the app
# keeps writing; every Grafana panel's query returns series; a second pki
# run re-creates nothing; `make down` leaves no container, mount, network, firewall chain or podman
# process; `down -v` keeps the CA.
#
# Everything is torn down at the end, on failure too. Kept between runs, as caches: the podman store
# and debootstrap root file system in NATSFS_COMPOSE_CACHE (default /var/cache/natsfs-compose; delete
# it to start cold). NATSFS_COMPOSE_KEEP=1 leaves the stack running for a look. The host-side mount
# runs dist/cli/main.js, or NATSFS_COMPOSE_HOST_CLI (with NATSFS_BUILD_CONTEXT: the same sources).
set -euo pipefail
cd "$(dirname "$0")/.."
project_dir=$PWD

started=$(date +%s)
log() { printf 'compose-test [%3ds]: %s\n' "$(($(date +%s) - started))" "$*"; }
fail() { log "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "compose-test: run as root (rootful podman, mounts)" >&2; exit 1; }
command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1 &&
  echo "compose-test: a Docker engine answers here; this test drives the podman route only" >&2
[ -f dist/cli/main.js ] || npx tsc -p .

# A port nothing listens on, for what the stack publishes.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    ss -Hltn "sport = :$port" | grep -q . || { echo "$port"; return; }
  done
}

# Until the full teardown is in place, a signal still removes the (empty) work folder.
trap 'exit 130' INT TERM
work=$(mktemp -d /tmp/natsfs-compose.XXXXXX)
trap 'rmdir "$work"' EXIT
data="$work/data"
mounted="$data/mnt/data"
cache=${NATSFS_COMPOSE_CACHE:-/var/cache/natsfs-compose}
export NATSFS_ENGINE=podman NATSFS_PODMAN_DIR="$cache/podman" NATSFS_DATA="$data"
export COMPOSE_PROJECT_NAME=natsfscomposetest
export NATSFS_BUS_ADDRESS=127.0.0.1 NATSFS_BUS_PORT=$(free_port) NATSFS_PROMETHEUS_PORT=$(free_port)
prometheus="http://127.0.0.1:$NATSFS_PROMETHEUS_PORT"
export NATSFS_PODMAN_HEALTH_INTERVAL=2
# The same podman store and socket as scripts/compose.sh, for podman kill/exec/ps below.
# shellcheck source=scripts/compose-podman.sh
source scripts/compose-podman.sh

stack() { timeout --kill-after=10 "${STACK_TIMEOUT:-120}" bash scripts/compose.sh "$@"; }
# The first running container of SERVICE (podman directly: docker-compose costs seconds per call).
container_of() {
  podman ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter "label=com.docker.compose.service=$1" | head -1
}
in_service() { local service=$1; shift; podman exec -i "$(container_of "$service")" "$@"; }

# Podman state on the host before the run: the final check compares against it.
netavark_chains() { { iptables -S; iptables -t nat -S; } 2>/dev/null | awk '$1 == "-N" && $2 ~ /^NETAVARK/' | sort; }
chains_before=$(netavark_chains)

holder_pid="" remote_pid="" stack_is_down=0
teardown() {
  local status=$?
  set +e
  if [ "${NATSFS_COMPOSE_KEEP:-0}" = 1 ]; then
    log "NATSFS_COMPOSE_KEEP=1: leaving the stack up: NATSFS_DATA=$data COMPOSE_PROJECT_NAME=$COMPOSE_PROJECT_NAME NATSFS_PODMAN_DIR=$NATSFS_PODMAN_DIR scripts/compose.sh down"
    exit "$status"
  fi
  log "tearing down"
  [ -n "$holder_pid" ] && kill "$holder_pid" 2>/dev/null
  [ -n "$remote_pid" ] && kill "$remote_pid" 2>/dev/null && timeout 10 tail --pid="$remote_pid" -f /dev/null
  if [ "$status" -ne 0 ]; then
    STACK_TIMEOUT=30 stack compose ps 2>&1 | sed 's/^/  | /'
    STACK_TIMEOUT=30 stack compose logs --tail=30 2>&1 | sed 's/^/  | /'
    [ -s "$work/remote.log" ] && sed 's/^/  remote mount | /' "$work/remote.log"
  fi
  [ "$stack_is_down" = 1 ] || STACK_TIMEOUT=180 stack down -v >/dev/null 2>&1 || log "down failed"
  grep -o " $work[^ ]*" /proc/mounts | sort -r | while read -r path; do timeout 10 umount -l "$path"; done
  rm -rf --one-file-system "$work"
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

# promql EXPR: the query's result vector as JSON lines {"metric":..., "value": number}.
promql() {
  curl -fsS --max-time 10 "$prometheus/api/v1/query" --data-urlencode "query=$1" | node -e '
    const body = JSON.parse(require("fs").readFileSync(0, "utf8"));
    for (const r of body.data.result) console.log(JSON.stringify({ metric: r.metric, value: Number(r.value[1]) }));'
}
# promql_sum EXPR: the sum of the result's values (0 when empty).
promql_sum() { promql "$1" | node -e 'let s = 0; for (const l of require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean)) s += JSON.parse(l).value; console.log(s)'; }
# targets_up JOB N: at least N targets of JOB are up.
targets_up() { [ "$(promql "up{job=\"$1\"} == 1" | wc -l)" -ge "$2" ]; }

sha() { sha256sum "$@" | awk '{ print $1 }'; }
# journal_rounds: how many records the example app has written to its journal so far.
journal_rounds() { cat "$data"/export/app/*/journal.txt 2>/dev/null | wc -l; }
# journal_has ROUNDS: the journal holds at least ROUNDS records.
journal_has() { [ "$(journal_rounds)" -ge "$1" ]; }
# app_keeps_writing WHAT: the app's journal grows by 3 rounds within 60 s and the app is healthy.
app_keeps_writing() {
  local before
  before=$(journal_rounds)
  wait_for 60 "the app to keep writing $1" journal_has $((before + 3))
  [ "$(podman_health app)" = healthy ] || fail "the app is $(podman_health app) $1"
}
podman_health() { podman inspect --format '{{.State.Health.Status}}' "$(container_of "$1")"; }

# 1. make up.
log "make up (cache: $cache)"
timeout 1500 make --no-print-directory up 2>&1 | sed 's/^/  | /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "make up"
log "make up: every healthcheck passed"
findmnt -n -t fuse,fuse.natsfs --mountpoint "$mounted" >/dev/null || fail "no FUSE mount at $mounted on the host"
wait_for 30 "the app's journal in the export" journal_has 1
log "the export is mounted on the host and the app's journal arrives in the export"

# 2. App container -> mount -> export, and back.
app_sum=$(in_service app sh -c 'head -c 3000000 /dev/urandom >/shared/data/from-app.bin && sha256sum </shared/data/from-app.bin' | awk '{ print $1 }')
[ -n "$app_sum" ] || fail "the app container could not write into the mount"
[ "$(sha "$data/export/from-app.bin")" = "$app_sum" ] || fail "the export's copy differs from what the app wrote"
cmp "$data/export/from-app.bin" "$mounted/from-app.bin" || fail "the host's mount and the export differ"
head -c 1500000 /dev/urandom >"$data/export/from-export.bin"
[ "$(in_service app sha256sum /shared/data/from-export.bin | awk '{ print $1 }')" = "$(sha "$data/export/from-export.bin")" ] ||
  fail "the app read different bytes than the export holds"
log "app -> mount -> export: 3000000 bytes identical; export -> mount -> app: identical"

# 3. Users: the servers' files belong to 10001 (squash), the services run as the compose file says.
[ "$(stat -c %u:%g "$data/export/from-app.bin")" = 10001:10001 ] || fail "from-app.bin belongs to $(stat -c %u:%g "$data/export/from-app.bin")"
for expected in server=10001 nats=10002 app=10001 client=0; do
  service=${expected%=*}
  uid=$(in_service "$service" sh -c 'id -u 2>/dev/null || awk "/^Uid:/ { print \$2 }" /proc/self/status' | tr -d '\r')
  [ "$uid" = "${expected#*=}" ] || fail "$service runs as uid $uid, not ${expected#*=}"
done
in_service app sh -c 'ls /sys/class/net' | grep -qvx lo && fail "the app has a network interface besides lo"
log "files owned by 10001; server, nats, app, client run as 10001, 10002, 10001, root; the app has no network"

# 4. A client on "another host": the host itself, through the published bus port, with the CA.
mkdir -p "$work/remote"
node "${NATSFS_COMPOSE_HOST_CLI:-dist/cli/main.js}" mount --nats "tls://127.0.0.1:$NATSFS_BUS_PORT" --pki "$data/pki" --identity client \
  --export data --foreground "$work/remote" >"$work/remote.log" 2>&1 &
remote_pid=$!
wait_for 90 "the mount through the published port (its log is printed at the end)" findmnt -n -t fuse,fuse.natsfs --mountpoint "$work/remote"
cmp "$work/remote/from-app.bin" "$data/export/from-app.bin" || fail "the remote mount reads different bytes"
kill "$remote_pid"
timeout 20 tail --pid="$remote_pid" -f /dev/null
remote_pid=""
log "a natsfs mount through 127.0.0.1:$NATSFS_BUS_PORT (published bus port) reads the export"

# 5. Three NATS nodes and two servers, both servers Prometheus targets. (Before the faults below: the
#    switch recreates the servers and the client, and with them their counters.)
log "make up CLUSTER=1 SERVERS=2"
timeout 600 make --no-print-directory up CLUSTER=1 SERVERS=2 2>&1 | sed 's/^/  | /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "make up CLUSTER=1 SERVERS=2"
app_keeps_writing "after the switch to the cluster"
wait_for 60 "Prometheus to scrape both server instances" targets_up natsfs-server 2
wait_for 60 "Prometheus to scrape the client" targets_up natsfs-client 1
log "3 NATS nodes; Prometheus: 2 natsfs-server targets up, natsfs-client up"

# 6. Kill the server instance that holds a file open, while the app keeps writing.
held="$mounted/held-across-kill.bin"
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

# The instance that holds the file: its open handles never drop to 0 over a second of samples (the
# app's handles live for milliseconds, so a single sample can catch one on either instance).
victim=""
for id in $(podman ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter label=com.docker.compose.service=server); do
  steady=$(podman exec "$id" node -e '
    const sample = async () => Number(/^natsfs_server_open_handles\{export="data"\} (\d+)/m.exec(await (await fetch("http://127.0.0.1:9100/metrics")).text())?.[1] ?? 0);
    let least = Infinity;
    for (let i = 0; i < 10; i++) { least = Math.min(least, await sample()); await new Promise((r) => setTimeout(r, 100)); }
    console.log(least);')
  if [ "$steady" -ge 1 ]; then victim=$id; most=$steady; fi
done
[ -n "$victim" ] || fail "no server instance holds $held open"
failovers_before=$(promql_sum 'sum(natsfs_client_failovers_total)')
log "killing server container ${victim:0:12} ($most open handles) with $held open"
podman kill "$victim" >/dev/null
app_keeps_writing "after the server kill"
touch "$work/held-go"
timeout 120 tail --pid="$holder_pid" -f /dev/null
wait "$holder_pid" || fail "the file held open across the kill was not written and read back correctly (holder exit $?)"
holder_pid=""
cmp "$work/expected" "$data/export/held-across-kill.bin" || fail "the export's copy of the held file is wrong"
log "file held open across the kill: written and read back, export identical; the app kept writing"
failovers_rose() { [ "$(promql_sum 'sum(natsfs_client_failovers_total)')" -gt "$failovers_before" ]; }
wait_for 60 "Prometheus to count the failover" failovers_rose
log "Prometheus: natsfs_client_failovers_total $failovers_before -> $(promql_sum 'sum(natsfs_client_failovers_total)')"
[ -z "$(promql 'ALERTS{alertname="NatsfsServerDown"}')" ] || fail "NatsfsServerDown is pending or firing while an instance serves the export"
log "NatsfsServerDown quiet: the other instance serves the export"

# 7. Every server paused for a few seconds while the app writes: its requests time out and are
#    re-sent (the retries panel), and the app goes on once the servers are back.
server_ids=$(podman ps -q --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" --filter label=com.docker.compose.service=server)
# shellcheck disable=SC2086 # one word per id
podman pause $server_ids >/dev/null
sleep 6
# shellcheck disable=SC2086 # one word per id
podman unpause $server_ids >/dev/null
app_keeps_writing "after every server was paused for 6 s"
log "every server paused for 6 s: the app went on afterwards"

# 8. A denial: a request the servers must refuse, sent with the client's certificate.
in_service client node --input-type=module <scripts/compose-denial.mjs | sed 's/^/  | /'
log "denial sent"

# 9. Kill the NATS node the client is connected to, while the app keeps writing.
node_url=$(in_service client node -e 'fetch("http://127.0.0.1:9101/status").then((r) => r.json()).then((s) => console.log(JSON.stringify(s)))' |
  grep -o 'nats-[23]\|nats:4222' | head -1)
node_service=${node_url%:4222}
node_service=${node_service:-nats}
log "killing NATS node $node_service (the client's)"
podman kill "$(container_of "$node_service")" >/dev/null
app_keeps_writing "after the NATS node kill"
after_sum=$(in_service app sh -c 'head -c 500000 /dev/urandom >/shared/data/after-node-kill.bin && sha256sum </shared/data/after-node-kill.bin' | awk '{ print $1 }')
[ "$after_sum" = "$(sha "$data/export/after-node-kill.bin")" ] || fail "a file written after the node kill did not arrive intact"
log "NATS node $node_service killed: the app kept writing, a new file arrived intact"

# 10. Every dashboard query returns series, with Grafana's variables filled in as "all".
mapfile -t queries < <(node -e '
  const d = JSON.parse(require("fs").readFileSync("deploy/grafana/dashboards/natsfs.json", "utf8"));
  for (const p of d.panels) for (const t of p.targets ?? []) console.log(JSON.stringify({ title: p.title, expr: t.expr }));')
empty_queries() {
  local query expr missing=0
  for query in "${queries[@]}"; do
    expr=$(node -e 'const q = JSON.parse(process.argv[1]); console.log(q.expr.replaceAll("$__rate_interval", "1m").replaceAll("$export", ".*").replaceAll("$identity", ".*"))' "$query")
    if [ -z "$(promql "$expr")" ]; then missing=$((missing + 1)); echo "$query" >>"$work/empty-queries"; fi
  done
  [ "$missing" -eq 0 ]
}
deadline=$(($(date +%s) + 90))
until rm -f "$work/empty-queries"; empty_queries; do
  [ "$(date +%s)" -lt "$deadline" ] || { cat "$work/empty-queries" >&2; fail "dashboard queries without series"; }
  sleep 5
done
log "all ${#queries[@]} dashboard queries return series"

# 11. pki again: nothing re-created.
pki_output=$(stack compose run --rm --no-deps -T pki)
if printf '%s\n' "$pki_output" | grep -q '^created '; then fail "a second pki run created certificates again: $pki_output"; fi
log "pki again: nothing re-created"

# 12. make down leaves nothing; down -v keeps the CA.
log "make down"
timeout 300 make --no-print-directory down 2>&1 | sed 's/^/  | /'
[ "${PIPESTATUS[0]}" -eq 0 ] || fail "make down"
# The run folder first: the podman commands below make it again (and it is removed after them).
[ ! -e "$PODMAN_RUN_DIR" ] || fail "podman's run state (socket, service) left in $PODMAN_RUN_DIR"
[ -z "$(podman ps -aq)" ] || fail "containers left: $(podman ps -a --format '{{.Names}}')"
[ -z "$(podman network ls -q --filter "name=$COMPOSE_PROJECT_NAME")" ] || fail "networks left: $(podman network ls --format '{{.Name}}')"
rm -rf "$PODMAN_RUN_DIR"
rmdir /run/natsfs-compose 2>/dev/null || true
! grep -q " $data" /proc/mounts || fail "mounts left: $(grep " $data" /proc/mounts)"
[ "$(netavark_chains)" = "$chains_before" ] || fail "firewall chains left: $(netavark_chains)"
log "make down: no container, network, mount, firewall chain or podman service left"
# A second down (networks already gone) may exit non-zero over them; what counts is the volumes.
STACK_TIMEOUT=180 stack down -v >"$work/down-v.log" 2>&1 || log "down -v after down: $(tail -1 "$work/down-v.log")"
[ -z "$(podman volume ls -q --filter "name=$COMPOSE_PROJECT_NAME")" ] || fail "down -v left volumes: $(podman volume ls -q)"
rm -rf "$PODMAN_RUN_DIR"
rmdir /run/natsfs-compose 2>/dev/null || true
[ -s "$data/pki/ca.key" ] || fail "down -v removed the CA"
(cd "$work" && bash "$project_dir/scripts/compose.sh" ca-backup "$work/ca.tar.gz")
tar -tzf "$work/ca.tar.gz" | grep -qx 'pki/ca.key' || fail "ca-backup did not archive the CA key"
log "down -v keeps the CA; make ca-backup archives it"
stack_is_down=1

#!/usr/bin/env bash
# Runs the benchmarks, one after another: every test/bench/*.ts (or the files given) except
# noop-fs.ts, which is a file system the comparison mounts, not a benchmark. Never part of `make test`.
#
# test/bench/compare.ts prints the side-by-side table of natsfs, sshfs, the local disk, the bus ceiling
# and the adapter ceiling (issue 10); its sizes come from BENCH_* variables (test/bench/lib/config.ts),
# BENCH_QUICK=1 for a smoke run of a minute or two. Other benchmarks report a result by printing a line
# `BENCH {"name": ..., "value": ..., "unit": ...}`, tabulated at the end.
#
# Installs what the comparison needs (fio, openssh-server, sshfs's libraries; root). Never the sshfs
# package itself: Debian 12's sshfs needs fuse3, which removes fuse (FUSE 2's fusermount, which natsfs
# and its tests use), and `make test` would then remove sshfs again. Its binary is unpacked from the
# package into the run's folder instead; as root, libfuse3 mounts without fusermount3.
#
# Every benchmark runs in its own session; on exit, however it comes, that session is stopped, every
# process a benchmark recorded in $BENCH_PIDS is killed by PID, and every FUSE mount left under the
# run's folder is unmounted.
set -uo pipefail
cd "$(dirname "$0")/.."

BENCH_PACKAGES=(fio openssh-server openssh-client libfuse3-3 libglib2.0-0)
BENCH_CAP=${NATSFS_BENCH_CAP:-3600}

install_missing_packages() {
  local missing=() pkg
  for pkg in "${BENCH_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: ${missing[*]} missing and not root: rows that need them are left out" >&2
    return 0
  fi
  echo "bench: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Another apt-get may be running (other sessions install too): wait for its lock rather than fail.
  apt-get -o DPkg::Lock::Timeout=600 update -qq &&
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    echo "bench: could not install ${missing[*]}: rows that need them are left out" >&2
}

files=("$@")
if [ "${#files[@]}" -eq 0 ]; then
  mapfile -t files < <(ls test/bench/*.ts 2>/dev/null | grep -v '/noop-fs\.ts$')
fi
if [ "${#files[@]}" -eq 0 ]; then
  echo "bench: no benchmarks in test/bench/"
  exit 0
fi
install_missing_packages

run_tmp=$(mktemp -d /tmp/natsfs-bench.XXXXXX)
chmod 755 "$run_tmp"
results="$run_tmp/results"
tables="$run_tmp/tables"
: >"$results"
: >"$tables"
export BENCH_PIDS="$run_tmp/pids"
: >"$BENCH_PIDS"
bench_pid=""

# sshfs for the comparison (BENCH_SSHFS): an installed one, else the binary of Debian's package unpacked here.
if command -v sshfs >/dev/null 2>&1; then
  export BENCH_SSHFS=$(command -v sshfs)
elif (cd "$run_tmp" && apt-get download sshfs >/dev/null 2>&1) && dpkg-deb -x "$run_tmp"/sshfs_*.deb "$run_tmp/sshfs-package"; then
  export BENCH_SSHFS="$run_tmp/sshfs-package/usr/bin/sshfs"
else
  echo "bench: could not get sshfs (apt-get download sshfs): no sshfs column" >&2
fi

# Kills each recorded process that is still the one recorded (same start time: never a recycled PID).
kill_recorded() {
  local pid started stat fields
  while read -r pid started; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -ra fields <<<"${stat##*) }"
    [ "${fields[19]}" = "$started" ] || continue
    echo "bench: stopping leftover process $pid"
    kill -TERM "$pid" 2>/dev/null
    sleep 1
    kill -KILL "$pid" 2>/dev/null
  done <"$BENCH_PIDS"
}

unmount_strays() {
  local mountpoint
  while read -r mountpoint; do
    echo "bench: unmounting leftover FUSE mount $mountpoint"
    timeout 10 fusermount -uz "$mountpoint" 2>/dev/null || timeout 10 umount -l "$mountpoint" 2>/dev/null || true
  done < <(awk -v root="$run_tmp/" '$3 ~ /^fuse/ { path = $2; gsub(/\\040/, " ", path); if (index(path, root) == 1) print path }' /proc/mounts)
}

# Stops the running benchmark's session: SIGTERM first (it stops what it started itself), SIGKILL after 30 s.
stop_bench() {
  [ -n "$bench_pid" ] || return 0
  if kill -0 -- "-$bench_pid" 2>/dev/null; then
    kill -TERM -- "-$bench_pid" 2>/dev/null
    for _ in $(seq 300); do kill -0 -- "-$bench_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$bench_pid" 2>/dev/null
  fi
  bench_pid=""
}

cleanup() {
  stop_bench
  kill_recorded
  unmount_strays
  if awk -v root="$run_tmp/" '$3 ~ /^fuse/ && index($2, root) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    echo "bench: leaving $run_tmp: a mount below it is still attached" >&2
  else
    rm -rf --one-file-system "$run_tmp"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

failed=0
for file in "${files[@]}"; do
  echo "== $file"
  started=$(date +%s)
  # Its own session, so that stop_bench reaches everything it started and nothing else.
  TMPDIR="$run_tmp" BENCH_TABLE_FILE="$run_tmp/table" setsid timeout --kill-after=15 "$BENCH_CAP" node --import tsx "$file" </dev/null >"$run_tmp/out" 2>&1 &
  bench_pid=$!
  tail -n +1 -f --pid="$bench_pid" "$run_tmp/out" &
  wait "$bench_pid"
  status=$?
  bench_pid=""
  wait
  echo "   ($(( $(date +%s) - started ))s, exit $status)"
  [ "$status" -ne 0 ] && failed=1
  grep '^BENCH ' "$run_tmp/out" | sed 's/^BENCH //' | while read -r json; do
    printf '%s\t%s\n' "$(basename "$file" .ts)" "$json" >>"$results"
  done
  if [ -s "$run_tmp/table" ]; then
    # Shown now (a run stopped later still has it) and again with every table at the end.
    echo; cat "$run_tmp/table"
    { echo "== $file"; cat "$run_tmp/table"; echo; } >>"$tables"
    rm -f "$run_tmp/table"
  fi
  unmount_strays
done

echo
if [ -s "$results" ]; then
  node -e '
    const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
    const rows = lines.map((line) => {
      const [file, json] = line.split("\t");
      try { const r = JSON.parse(json); return [file, String(r.name), String(r.value), String(r.unit ?? "")]; }
      catch { return [file, "(unparsable)", json, ""]; }
    });
    const table = [["benchmark", "measure", "value", "unit"], ...rows];
    const widths = table[0].map((_, i) => Math.max(...table.map((r) => r[i].length)));
    for (const r of table) console.log(r.map((c, i) => (i === 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  "));
  ' "$results"
  echo
fi
cat "$tables"
exit "$failed"

#!/bin/sh
# The example `app` service: how your own containers use the appliance. It binds the host's shared
# folder (NATSFS_DATA/mnt) with rslave, so the export `data` appears at /shared/data while the client
# has it mounted, and comes back after a client restart. It runs as an unprivileged user, with no
# network at all: the files are its only interface.
#
# The loop: every few seconds, write a numbered record to a journal in the export, read it back,
# and refresh a heartbeat that app-health.sh checks. A write or read that fails is logged and
# retried on the next round, never fatal: the healthcheck reports it instead.
set -u

dir=/shared/data/app/$(hostname)
interval=${APP_INTERVAL:-2}
round=0

while :; do
  round=$((round + 1))
  record="round $round at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  if mkdir -p "$dir" 2>/dev/null &&
    printf '%s\n' "$record" >>"$dir/journal.txt" &&
    tail -n 1 "$dir/journal.txt" | grep -qxF "$record" &&
    date +%s >"$dir/heartbeat"; then
    [ $((round % 30)) -eq 1 ] && echo "app: $record written and read back in $dir"
  else
    echo "app: round $round failed: is the export mounted at /shared/data?" >&2
  fi
  sleep "$interval"
done

#!/bin/sh
# The example app's healthcheck: healthy only while /shared/data is a live natsfs (FUSE) mount and
# the app's heartbeat written through it is fresh. A plain folder (client not mounted) or a dead
# mount ("Transport endpoint is not connected") fails.
set -eu

mountpoint=/shared/data
heartbeat=$mountpoint/app/$(hostname)/heartbeat
max_age=${APP_MAX_HEARTBEAT_AGE:-20}

awk -v dir="$mountpoint" '$2 == dir && $3 ~ /^fuse/ { found = 1 } END { exit !found }' /proc/mounts ||
  { echo "$mountpoint is not a FUSE mount"; exit 1; }
written=$(cat "$heartbeat") || { echo "no heartbeat readable at $heartbeat"; exit 1; }
age=$(($(date +%s) - written))
[ "$age" -le "$max_age" ] || { echo "heartbeat is $age s old"; exit 1; }
echo "heartbeat $age s old"

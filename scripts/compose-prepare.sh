#!/usr/bin/env bash
# Prepares the host folders docker-compose.yml binds, as root (`make up` runs it):
#   DATA/export  the directory the servers export, owned by 10001 (the servers' user) when this makes
#                it; an existing one is left as it is (chown -R 10001:10001 it for the servers to write)
#   DATA/mnt     where the client's FUSE mount appears (as DATA/mnt/data, one folder per mounted
#                export); made a shared mount point of its own (`mount --bind D D && mount
#                --make-rshared D`), because a FUSE mount made inside the client container only
#                propagates back to a host folder that is a shared mount
#   DATA/pki     the CA and every certificate (mode 700): a host folder, so no `down -v` removes it
# Also removes dead FUSE mounts a killed client left under DATA/mnt. Safe to run repeatedly.
# A bind mount does not survive a reboot: `make up` after one makes it again.
#
# Usage: scripts/compose-prepare.sh [DATA]   (default: $NATSFS_DATA, else ./data next to the compose file)
set -euo pipefail
cd "$(dirname "$0")/.."

SERVER_UID=10001 # docker-compose.yml's server `user:`
data=$(realpath -m "${1:-${NATSFS_DATA:-./data}}")
mnt="$data/mnt"
mkdir -p "$data" "$mnt"
if [ ! -d "$data/export" ]; then
  mkdir "$data/export"
  chown "$SERVER_UID:$SERVER_UID" "$data/export"
fi
mkdir -p -m 700 "$data/pki"

# A FUSE mount whose process is gone answers "Transport endpoint is not connected".
awk -v under="$mnt/" '$3 ~ /^fuse/ && index($2, under) == 1 { print $2 }' /proc/mounts |
  while read -r fuse_mount; do
    stat "$fuse_mount" >/dev/null 2>&1 || umount -l "$fuse_mount"
  done

if ! findmnt -n --mountpoint "$mnt" >/dev/null 2>&1; then
  mount --bind "$mnt" "$mnt"
fi
if [ "$(findmnt -n -o PROPAGATION --mountpoint "$mnt" | head -1)" != shared ]; then
  mount --make-rshared "$mnt"
fi
echo "compose-prepare: $data/export is the export, $mnt is a shared mount point, $data/pki holds the CA" >&2

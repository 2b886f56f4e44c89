#!/bin/sh
# The compose `client` service's entry point: client-mount.sh MOUNTPOINT [natsfs mount options...]
#
# MOUNTPOINT is a folder inside the bind mount shared with the host's ./data/mnt (propagation rshared),
# so the FUSE mount is a submount there: containers that bind ./data/mnt (rslave) see it come and go
# with the client. (A container binding the FUSE mount itself would keep that one mount instance,
# dead after a client restart; fuse-native also refuses to mount on a bind mount's root.)
set -eu

mountpoint=$1
shift

is_fuse_mount() {
  awk -v dir="$1" '$2 == dir && $3 ~ /^fuse/ { found = 1 } END { exit !found }' /proc/mounts
}

mkdir -p "$mountpoint"
# A client killed without unmounting leaves a dead FUSE mount behind (on the host too, through the
# shared bind); natsfs would refuse to mount over it.
while is_fuse_mount "$mountpoint"; do umount -l "$mountpoint"; done
exec natsfs mount "$@" --foreground "$mountpoint"

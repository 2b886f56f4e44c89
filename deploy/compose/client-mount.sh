#!/bin/sh
# The compose `client` service's entry point: client-mount.sh SHARED_DIR [natsfs mount options...]
#
# SHARED_DIR is the bind mount (propagation rshared) shared with the host's ./data/mnt. fuse-native
# refuses to mount on a directory whose device differs from its parent's ("Mountpoint in use"), and a
# bind mount target is exactly that. So natsfs mounts on a private directory inside the container and
# this script binds that mount onto SHARED_DIR, from where it propagates to the host and to consumer
# containers. On SIGTERM the shared bind goes first, then natsfs unmounts and exits.
set -eu

shared=$1
shift
private=/var/lib/natsfs/mnt

is_fuse_mount() {
  awk -v dir="$1" '$2 == dir && $3 ~ /^fuse/ { found = 1 } END { exit !found }' /proc/mounts
}

mkdir -p "$private"
# A client killed without unmounting leaves a dead FUSE mount on the shared folder (on the host too).
while is_fuse_mount "$shared"; do umount -l "$shared"; done

natsfs mount "$@" --foreground "$private" &
natsfs_pid=$!
trap 'umount -l "$shared" 2>/dev/null || true; kill -TERM "$natsfs_pid" 2>/dev/null || true' TERM INT

until is_fuse_mount "$private"; do
  kill -0 "$natsfs_pid" 2>/dev/null || break
  sleep 0.2
done
if is_fuse_mount "$private"; then
  mount --bind "$private" "$shared"
  echo "client-mount: $private bound onto $shared"
fi

# `wait` also returns when a trapped signal arrives; keep waiting until natsfs has really ended.
status=0
while kill -0 "$natsfs_pid" 2>/dev/null; do
  if wait "$natsfs_pid"; then status=0; else status=$?; fi
done
# natsfs ended on its own (an error, or an unmount from outside): the shared bind would be dead.
while is_fuse_mount "$shared"; do umount -l "$shared"; done
exit "$status"

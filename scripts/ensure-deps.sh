#!/usr/bin/env bash
# Installs whatever the build and the tests need and is not there yet: Debian packages (as root, only
# when one is missing) and node_modules (npm ci when missing or older than package-lock.json).
# Safe to run repeatedly; does nothing when everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runtime tools the tests drive: nats-server, FUSE (fusermount), xattr tools, Prometheus (rules check),
# git and rsync (workloads), ip (network namespaces), setpriv/mount (util-linux), and the toolchain
# node-gyp needs for the native addons (fs-xattr builds from source).
APT_PACKAGES=(nats-server fuse attr prometheus git rsync iproute2 util-linux ca-certificates make g++ python3)

missing_packages() {
  local pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    # A command already on PATH (python3 from pyenv, say) is as good as the Debian package.
    if [ "$pkg" = python3 ] && command -v python3 >/dev/null 2>&1; then continue; fi
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      printf '%s\n' "$pkg"
    fi
  done
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-deps: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "ensure-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# FUSE needs the kernel module and /dev/fuse; a container or VM may have neither loaded yet.
if [ ! -e /dev/fuse ]; then
  modprobe fuse 2>/dev/null || true
fi
if [ ! -e /dev/fuse ]; then
  echo "ensure-deps: WARNING: /dev/fuse is missing; mounting tests will fail" >&2
fi

# npm keeps its own record of the installed tree in node_modules/.package-lock.json; a lock file newer
# than that record means someone changed dependencies since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ensure-deps: npm ci"
  npm ci --no-audit --no-fund
fi

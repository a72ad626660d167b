#!/usr/bin/env bash
# Install the Debian packages that stackyard's tests and `make up` use, without
# starting their system services (the harness starts its own servers on free ports).
set -euo pipefail

PACKAGES=(
  redis-server   # Redis for queues, limits, sessions
  curl           # probes in tests and scripts
  docker.io      # dockerd and the docker CLI for building and testing the images (hack/docker.sh)
  debootstrap    # the local Debian base image (hack/base-image.sh)
  postgresql     # FerretDB's PostgreSQL backend, for `make bench` (bench/README.md)
  clamav-daemon  # clamd for the storage scan tests (the harness gives it a test signature database)
  containernetworking-plugins  # the pod network of `make cluster` (containerd and runc come with docker.io)
  chromium       # the browser Playwright drives in the console's browser tests (tests/console); none is downloaded
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "==> [apt] all Debian packages present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "hack/apt-packages.sh: need root to install ${missing[*]} (run it with sudo)" >&2
  exit 1
fi
echo "==> [apt] installing ${missing[*]}"
# Keep Debian's maintainer scripts from starting services in this container.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "==> [apt] installed ${missing[*]}"

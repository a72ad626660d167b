#!/usr/bin/env bash
# Make the local base image of stackyard's images: a minimal Debian bookworm with
# Debian's python3 (3.11) and python3-venv, built with debootstrap and `docker import`ed,
# because no image can be pulled on the machines we build on.
#
#   hack/base-image.sh [--rebuild]
#
# Nothing is done when the image exists. Otherwise the root file system tarball cached
# under $STACKYARD_CACHE/base/ (default ~/.cache/stackyard) is imported, and only when that
# is missing too (or with --rebuild) is it bootstrapped again. The Debian mirror is the
# one this machine's apt uses (its sources.list or deb822 .sources files), or
# STACKYARD_DEBIAN_MIRROR; the suite's -updates and -security entries, when apt has
# them, are applied on top.
#
# Uses the engine in DOCKER_HOST (see hack/docker.sh). Needs root (debootstrap, chroot).
set -euo pipefail

SUITE=bookworm
IMAGE=${STACKYARD_BASE_IMAGE:-stackyard/python-base:$SUITE}
PACKAGES=python3,python3-venv,ca-certificates
CACHE=${STACKYARD_CACHE:-$HOME/.cache/stackyard}
WORK=$CACHE/base
TARBALL=$WORK/python-base-$SUITE.tar
ROOTFS=$WORK/rootfs-$SUITE
LOG=$CACHE/logs/base-image.log
DOCKER=${DOCKER:-docker}

say() { printf '==> [base-image] %s\n' "$*"; }
die() { printf 'hack/base-image.sh: %s\n' "$*" >&2; exit 1; }

run() {
  local step=$1; shift
  say "$step"
  printf '\n### %s: %s\n$ %s\n' "$(date -Is)" "$step" "$*" >>"$LOG"
  if ! "$@" >>"$LOG" 2>&1; then
    printf '\nhack/base-image.sh: step "%s" failed.\nFull log: %s\n--- last lines ---\n' "$step" "$LOG" >&2
    tail -n 25 "$LOG" >&2
    exit 1
  fi
}

# Print "SUITE URI" for every `deb` entry of the host's apt configuration, in both the
# one-line format (sources.list, *.list) and the deb822 format (*.sources).
apt_entries() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" {
      i = 2
      if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
      print $(i + 1), $i
    }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush(   n, m, i, j, u, s) {
        if (types ~ /(^| )deb( |$)/ && enabled != "no") {
          n = split(uris, u, " "); m = split(suites, s, " ")
          for (i = 1; i <= n; i++) for (j = 1; j <= m; j++) print s[j], u[i]
        }
        types = uris = suites = ""; enabled = "yes"
      }
      BEGIN { enabled = "yes" }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      {
        if ($0 ~ /^[ \t]/) { value = $0 }
        else { key = tolower(substr($0, 1, index($0, ":") - 1)); value = substr($0, index($0, ":") + 1) }
        gsub(/^[ \t]+|[ \t]+$/, "", value)
        if (key == "types") types = types " " value
        else if (key == "uris") uris = uris " " value
        else if (key == "suites") suites = suites " " value
        else if (key == "enabled") enabled = tolower(value)
      }
      END { flush() }' "$f"
  done
}

mirror_for() { apt_entries | awk -v suite="$1" '$1 == suite { print $2; exit }'; }

image_exists() { "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; }

# Unmount whatever a stopped debootstrap left mounted in the root file system, then remove it.
remove_rootfs() {
  [ -d "$ROOTFS" ] || return 0
  awk -v root="$ROOTFS" 'index($2, root "/") == 1 { print $2 }' /proc/mounts | sort -r | while read -r mnt; do
    umount -l "$mnt"
  done
  rm -rf --one-file-system "$ROOTFS"
}

# The image's apt sources: one deb822 stanza per "SUITE URI" argument pair.
write_sources() {
  rm -f "$ROOTFS/etc/apt/sources.list"
  while [ $# -ge 2 ]; do
    [ -z "$2" ] || printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n\n' \
      "$2" "$1" /usr/share/keyrings/debian-archive-keyring.gpg
    shift 2
  done >"$ROOTFS/etc/apt/sources.list.d/debian.sources"
}

in_root() { chroot "$ROOTFS" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

# What the image does not need: package caches and lists, documentation (but the
# copyright files), manual pages, translations, and the build host's name and resolver.
trim() {
  rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/log/* \
    "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* "$ROOTFS"/usr/share/locale/* \
    "$ROOTFS"/etc/hostname "$ROOTFS"/etc/resolv.conf
  find "$ROOTFS/usr/share/doc" -type f ! -name copyright -delete
  find "$ROOTFS/usr/share/doc" -type d -empty -delete
}

bootstrap() {
  command -v debootstrap >/dev/null || die "debootstrap is not installed: run \`sudo hack/apt-packages.sh\`"
  [ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
  local main updates security t0=$SECONDS
  main=${STACKYARD_DEBIAN_MIRROR:-$(mirror_for "$SUITE")}
  [ -n "$main" ] || die "apt has no '$SUITE' entry to take the Debian mirror from; set STACKYARD_DEBIAN_MIRROR"
  updates=$(mirror_for "$SUITE-updates")
  security=$(mirror_for "$SUITE-security")
  mkdir -p "$WORK" "$(dirname "$LOG")"
  remove_rootfs
  run "debootstrap --variant=minbase $SUITE with $PACKAGES (log $LOG)" \
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$main"
  say "debootstrap done in $((SECONDS - t0)) s"
  write_sources "$SUITE" "$main" "$SUITE-updates" "$updates" "$SUITE-security" "$security"
  if [ -n "$updates$security" ]; then
    t0=$SECONDS
    cp /etc/resolv.conf "$ROOTFS/etc/resolv.conf"
    run "apply $SUITE-updates and $SUITE-security" \
      in_root sh -c 'apt-get update -qq && apt-get upgrade -y -qq && apt-get clean'
    say "updates applied in $((SECONDS - t0)) s"
  fi
  trim
  run "pack the root file system into $TARBALL" tar --numeric-owner -C "$ROOTFS" -cf "$TARBALL.tmp" .
  mv "$TARBALL.tmp" "$TARBALL"
  remove_rootfs
  say "$(du -h "$TARBALL" | cut -f1) root file system cached in $TARBALL"
}

import() {
  local t0=$SECONDS version
  run "docker import $TARBALL as $IMAGE" "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "debootstrap --variant=minbase $SUITE with $PACKAGES" \
    "$TARBALL" "$IMAGE"
  version=$("$DOCKER" run --rm --network none "$IMAGE" python3 --version)
  say "$IMAGE imported in $((SECONDS - t0)) s ($version)"
}

case "${1:-}" in
  "") ;;
  --rebuild) rm -f "$TARBALL" ;;
  *) die "usage: hack/base-image.sh [--rebuild]" ;;
esac
if [ "${1:-}" != --rebuild ] && image_exists; then
  say "$IMAGE present"
  exit 0
fi
mkdir -p "$(dirname "$LOG")"
[ -f "$TARBALL" ] || bootstrap
import

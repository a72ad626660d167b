#!/usr/bin/env bash
# The project's own container engine: Debian's dockerd, started by hand (there is no
# systemd here), with its data, sockets and logs under the stackyard cache.
#
#   hack/docker.sh start    start it unless it already answers; wait until `docker info` does
#   hack/docker.sh stop     stop the dockerd this script started (by its pidfile)
#   hack/docker.sh status   say whether it answers (exit 0) or not (exit 1)
#   hack/docker.sh env      print `export DOCKER_HOST=...` for this engine (eval it)
#
# dockerd runs without iptables rules, without the docker0 bridge and without touching
# ip_forward, so it changes nothing of the host's network: containers use
# `--network host` (or none). The storage driver is dockerd's own choice (overlay2
# where the kernel and file system allow it) unless STACKYARD_DOCKER_STORAGE_DRIVER is
# set; if dockerd cannot start with its choice, the script retries once with vfs,
# which works everywhere but copies every layer in full.
#
# To use another engine instead (Docker Desktop, a system dockerd), set DOCKER_HOST:
# `make images` and the image tests then use it and never start this one.
set -euo pipefail

CACHE=${STACKYARD_CACHE:-$HOME/.cache/stackyard}
DIR=$CACHE/docker
SOCKET=$DIR/docker.sock
PIDFILE=$DIR/dockerd.pid
LOG=$CACHE/logs/dockerd.log
HOST=unix://$SOCKET
DOCKER=${DOCKER:-docker}

say() { printf '==> [docker] %s\n' "$*"; }
die() { printf 'hack/docker.sh: %s\n' "$*" >&2; exit 1; }

answers() { "$DOCKER" --host "$HOST" info >/dev/null 2>&1; }

running_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

describe() {
  "$DOCKER" --host "$HOST" info --format \
    'dockerd {{.ServerVersion}}, storage driver {{.Driver}}, cgroup {{.CgroupDriver}} v{{.CgroupVersion}}, data {{.DockerRootDir}}'
}

# launch [DRIVER]: start dockerd in its own session; its output goes to the log.
launch() {
  local args=(
    --data-root "$DIR/data"
    --exec-root "$DIR/run"
    --pidfile "$PIDFILE"
    --host "$HOST"
    --iptables=false
    --ip-forward=false
    --ip-masq=false
    --bridge=none
  )
  if [ -n "${1:-}" ]; then args+=(--storage-driver "$1"); fi
  printf '\n### %s: dockerd %s\n' "$(date -Is)" "${args[*]}" >>"$LOG"
  # A background job of a script is no process group leader, so setsid execs dockerd in place: $! is its pid.
  setsid dockerd "${args[@]}" </dev/null >>"$LOG" 2>&1 &
  LAUNCHED=$!
}

# wait_ready SECONDS: until the engine answers (0), or dockerd exits or time is up (1).
wait_ready() {
  local deadline=$((SECONDS + $1))
  while [ "$SECONDS" -lt "$deadline" ]; do
    answers && return 0
    kill -0 "$LAUNCHED" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}

start() {
  if answers; then
    say "running ($(describe))"
    return 0
  fi
  command -v dockerd >/dev/null || die "dockerd is not installed: run \`sudo hack/apt-packages.sh\` (Debian's docker.io)"
  command -v "$DOCKER" >/dev/null || die "the docker CLI ($DOCKER) is not installed: run \`sudo hack/apt-packages.sh\`"
  [ "$(id -u)" -eq 0 ] || die "dockerd needs root; run as root, or set DOCKER_HOST to an engine you can use"
  local pid
  if pid=$(running_pid); then
    die "dockerd (pid $pid) is running but does not answer on $SOCKET; see $LOG, or stop it: hack/docker.sh stop"
  fi
  mkdir -p "$DIR" "$(dirname "$LOG")"
  rm -f "$PIDFILE" "$SOCKET"
  local t0=$SECONDS driver=${STACKYARD_DOCKER_STORAGE_DRIVER:-}
  say "starting dockerd (${driver:-storage driver of its choice}; log $LOG)"
  launch "$driver"
  if ! wait_ready 60; then
    if [ -z "$driver" ] && ! kill -0 "$LAUNCHED" 2>/dev/null; then
      say "dockerd did not start with its own storage driver; retrying with vfs"
      launch vfs
      wait_ready 60 || fail_start
    else
      fail_start
    fi
  fi
  say "ready in $((SECONDS - t0)) s ($(describe))"
}

fail_start() {
  printf 'hack/docker.sh: dockerd did not answer on %s.\nFull log: %s\n--- last lines ---\n' "$SOCKET" "$LOG" >&2
  tail -n 25 "$LOG" >&2
  kill -TERM "$LAUNCHED" 2>/dev/null || true
  exit 1
}

stop() {
  local pid
  if ! pid=$(running_pid); then
    say "not running"
    return 0
  fi
  say "stopping dockerd (pid $pid)"
  kill -TERM "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || die "dockerd (pid $pid) did not stop within 30 s; see $LOG"
    sleep 0.5
  done
  # dockerd leaves its default network namespace mounted under the exec root.
  awk -v dir="$DIR/" 'index($2, dir) == 1 { print $2 }' /proc/mounts | sort -r | while read -r mnt; do
    umount "$mnt"
  done
  say "stopped"
}

status() {
  if answers; then
    say "running ($(describe)); DOCKER_HOST=$HOST"
  else
    say "not running (start it: hack/docker.sh start)"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) printf 'export DOCKER_HOST=%s\n' "$HOST" ;;
  *) die "usage: hack/docker.sh start|stop|status|env" ;;
esac

#!/usr/bin/env bash
# Build stackyard's container images: the operator, the api and the worker.
#
#   hack/images.sh [operator|api|worker ...]     (default: all three)
#
# Settings (environment; `make images` passes its variables of the same names):
#   REGISTRY    registry and path prefix of the tags (default ghcr.io/stackyard, the
#               Stack's and the chart's default), e.g. REGISTRY=stackyard
#   VERSION     the tag and the version label (default: core's version in its pyproject.toml)
#   BASE_IMAGE  the base of both stages (default stackyard/python-base:bookworm, made
#               locally by hack/base-image.sh); any image with python3 and its venv module
#   SOURCE      the repository URL for the org.opencontainers.image.source label
#   DOCKER_HOST an engine to use; unset, the project's own engine (hack/docker.sh) is started
#   STACKYARD_WHEELHOUSE=0  let pip in the build use its package index (needs network in
#               the build) instead of the wheelhouse .wheelhouse/ made here
#
# The wheelhouse (.wheelhouse/, ignored by git through its own .gitignore) holds each
# image's dependencies resolved with uv for the exact Python of the base image and pinned
# by constraints.txt (requirements-<name>.txt), a wheel of each, and the build backend
# (hatchling). It is made on this machine, with this machine's pip configuration, and
# remade when the pins, the packages' pyproject.toml or the base image's Python change.
# The images are then built with no network at all (`--network none`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
DOCKER=${DOCKER:-docker}
REGISTRY=${REGISTRY:-ghcr.io/stackyard}
VERSION=${VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' core/pyproject.toml)}
LOCAL_BASE=stackyard/python-base:bookworm
BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}
WHEELS=.wheelhouse
LOGS=${STACKYARD_CACHE:-$HOME/.cache/stackyard}/logs
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

say() { printf '==> [images] %s\n' "$*"; }
die() { printf 'hack/images.sh: %s\n' "$*" >&2; exit 1; }

# Each image's package directory, which holds its Dockerfile; every image also installs core/.
declare -A PACKAGE=([operator]=operator [api]=images/api [worker]=images/worker)

engine() {
  if [ -n "${DOCKER_HOST:-}" ]; then
    "$DOCKER" info >/dev/null 2>&1 || die "no engine answers at DOCKER_HOST=$DOCKER_HOST"
    say "using the engine at DOCKER_HOST=$DOCKER_HOST"
  else
    hack/docker.sh start
    eval "$(hack/docker.sh env)"
    export DOCKER_HOST
  fi
}

base_image() {
  if [ "$BASE_IMAGE" = "$LOCAL_BASE" ]; then
    STACKYARD_BASE_IMAGE=$LOCAL_BASE hack/base-image.sh
  elif ! "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    run "pull $BASE_IMAGE" "$DOCKER" pull -q "$BASE_IMAGE"
  fi
}

run() {
  local step=$1; shift
  say "$step"
  "$@" || die "step \"$step\" failed"
}

wheelhouse() {
  local python stamp t0=$SECONDS
  python=$("$DOCKER" run --rm --network none --entrypoint python3 "$BASE_IMAGE" \
    -c 'import platform; print(platform.python_version())')
  stamp="python $python; $(cat constraints.txt core/pyproject.toml operator/pyproject.toml \
    images/api/pyproject.toml images/worker/pyproject.toml | sha256sum | cut -c1-16)"
  if [ "$(cat "$WHEELS/.stamp" 2>/dev/null)" = "$stamp" ]; then
    say "wheelhouse $WHEELS up to date (Python $python)"
    return 0
  fi
  [ -x "$VENV/bin/uv" ] || die "$VENV has no uv: run \`make install\`"
  rm -rf "$WHEELS" && mkdir -p "$WHEELS" && printf '*\n' >"$WHEELS/.gitignore"
  say "resolve each image's dependencies for Python $python (uv, pinned by constraints.txt)"
  for name in "${!PACKAGE[@]}"; do
    printf '%s\n' "$PWD/core" "$PWD/${PACKAGE[$name]}" >"$TMP/$name.in"
    "$VENV/bin/uv" pip compile -q --python-version "$python" --no-header --no-annotate \
      -c constraints.txt -o "$TMP/$name.txt" "$TMP/$name.in" || die "could not resolve the dependencies of $name"
    grep -E '^[A-Za-z0-9._-]+==' "$TMP/$name.txt" >"$WHEELS/requirements-$name.txt"
  done
  sort -u "$WHEELS"/requirements-*.txt >"$TMP/all.txt"
  run "download $(wc -l <"$TMP/all.txt") wheels and the build backend into $WHEELS" \
    "$VENV/bin/python" -m pip wheel -q --no-deps --wheel-dir "$WHEELS" -r "$TMP/all.txt"
  "$VENV/bin/python" -m pip wheel -q --wheel-dir "$WHEELS" -c constraints.txt hatchling \
    || die "could not fetch the build backend hatchling"
  printf '%s\n' "$stamp" >"$WHEELS/.stamp"
  say "wheelhouse ready in $((SECONDS - t0)) s ($(du -sh "$WHEELS" | cut -f1))"
}

build() {
  local name=$1 tag=$REGISTRY/stackyard-$1:$VERSION t0=$SECONDS
  local args=(
    --file "${PACKAGE[$name]}/Dockerfile" --tag "$tag" --force-rm
    --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "VERSION=$VERSION"
    --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || true)"
  )
  if [ -n "${SOURCE:-}" ]; then args+=(--build-arg "SOURCE=$SOURCE"); fi
  if [ "${STACKYARD_WHEELHOUSE:-1}" = 0 ]; then
    args+=(--network host)
  else
    args+=(--network none --build-arg PIP_NO_INDEX=1)
  fi
  local log=$LOGS/image-$name.log
  say "building $tag (log $log)"
  mkdir -p "$LOGS"
  if ! "$DOCKER" build "${args[@]}" . >"$log" 2>&1; then
    printf '\nhack/images.sh: building %s failed.\nFull log: %s\n--- last lines ---\n' "$tag" "$log" >&2
    tail -n 25 "$log" >&2
    exit 1
  fi
  say "$tag built in $((SECONDS - t0)) s ($("$DOCKER" image inspect --format '{{.Size}}' "$tag" | numfmt --to=si)B)"
}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(operator api worker)
for name in "${names[@]}"; do
  [ -n "${PACKAGE[$name]:-}" ] || die "no image named '$name' (operator, api, worker)"
done
t_all=$SECONDS
engine
base_image
[ "${STACKYARD_WHEELHOUSE:-1}" = 0 ] || wheelhouse
for name in "${names[@]}"; do
  build "$name"
  # A rebuild leaves the previous image untagged: drop those of this image (and only
  # those), so that the engine's data does not grow with every change.
  "$DOCKER" image prune --force --filter "label=org.opencontainers.image.title=stackyard-$name" >/dev/null || true
done
say "done in $((SECONDS - t_all)) s: ${names[*]} as $REGISTRY/stackyard-<name>:$VERSION"

#!/usr/bin/env bash
# `make e2e-kind`: a kind cluster with the images of the e2e suite, for a machine with
# Docker and network (kind pulls its node image, kindest/node, from Docker Hub).
#
#   creates the kind cluster $E2E_KIND_CLUSTER (default stackyard-e2e) unless it exists,
#   builds the project's images (hack/images.sh) and the e2e's third-party stand-ins
#   (hack/cluster.sh images) in that Docker, loads them all into the node (kind load) and
#   writes the cluster's kubeconfig to ~/.cache/stackyard/kind-e2e.kubeconfig, which the
#   Makefile then hands to pytest tests/e2e as E2E_KUBECONFIG.
#
# Settings: DOCKER_HOST (default: Docker's own socket, not the project's engine),
# BASE_IMAGE (default python:3.11-slim: no debootstrap needed), KIND (default: the kind
# of `make tools`, else the one on PATH), E2E_KIND_CLUSTER; `kind delete cluster --name
# stackyard-e2e` removes the cluster.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/../.."
eval "$(bash hack/tools.sh env | sed 's/^/export /')"
NAME=${E2E_KIND_CLUSTER:-stackyard-e2e}
OUT=$STACKYARD_CACHE/kind-e2e.kubeconfig
export DOCKER_HOST=${DOCKER_HOST:-unix:///var/run/docker.sock}
export BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}
KIND=${KIND:-$STACKYARD_KIND}
[ -x "$KIND" ] || KIND=$(command -v kind) || { echo "e2e-kind: kind is missing: run \`make tools\`" >&2; exit 1; }

say() { printf '==> [e2e-kind] %s\n' "$*"; }

docker info >/dev/null 2>&1 || { echo "e2e-kind: no Docker engine answers at $DOCKER_HOST" >&2; exit 1; }
say "images on $BASE_IMAGE (engine $DOCKER_HOST)"
REGISTRY=${REGISTRY:?} VERSION=${VERSION:?} bash hack/images.sh
bash hack/cluster.sh images
if "$KIND" get clusters 2>/dev/null | grep -qx "$NAME"; then
  say "kind cluster $NAME exists"
else
  say "creating kind cluster $NAME"
  "$KIND" create cluster --name "$NAME" --wait 180s
fi
mkdir -p "$(dirname "$OUT")"
"$KIND" get kubeconfig --name "$NAME" >"$OUT"
# shellcheck disable=SC2086 # E2E_IMAGES is a list of image names
"$KIND" load docker-image --name "$NAME" ${E2E_IMAGES:?}
say "cluster $NAME ready; KUBECONFIG=$OUT"

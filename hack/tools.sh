#!/usr/bin/env bash
# Build, once, the real servers that stackyard's tests and `make up` run.
#
#   hack/tools.sh [all|kubernetes|etcd|helm|kind|ferretdb|minio|otelcol|oidc|oidc-rp|redis|cluster|env]
#
# Every tool is built from its Go module at the version pinned in hack/versions.env
# and cached under $STACKYARD_CACHE (default ~/.cache/stackyard), in a directory
# named after that version. A directory with a `.complete` stamp is never rebuilt;
# a missing or half-built one is. The Kubernetes binaries are laid out as an
# envtest asset folder (kube-apiserver, etcd, kubectl), so KUBEBUILDER_ASSETS may
# point at a folder made by setup-envtest instead.
#
# `hack/tools.sh env` prints the paths as shell assignments, for the Makefile and
# the harness. `oidc` is not Go: the node package oidc-provider (a real OpenID
# Provider for the social-login tests) installed with npm from hack/harness/oidc's lock file;
# nor is `oidc-rp`: the node package openid-client (a relying party, tests/oidc/node/rp.mjs,
# with which tests/oidc log in to stackyard's own OpenID Provider), from that folder's lock file.
# `cluster` (not part of `all`; `make cluster` builds it) adds what a node needs on top of
# the kubernetes tool: kubelet, kube-scheduler, kube-proxy and the pause program
# (hack/cluster/pause), for the single-node cluster of hack/cluster.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

CACHE=${STACKYARD_CACHE:-$HOME/.cache/stackyard}
LOGS=$CACHE/logs
GOARCH=$(go env GOARCH 2>/dev/null || echo amd64)
K8S_DIR=$CACHE/k8s/$KUBERNETES_VERSION-linux-$GOARCH
ETCD_DIR=$CACHE/etcd/$ETCD_VERSION
# -rN: the revision of our recipe for that tool; bump it when the build itself changes.
HELM_DIR=$CACHE/helm/$HELM_VERSION-r2
KIND_DIR=$CACHE/kind/$KIND_VERSION
FERRETDB_DIR=$CACHE/ferretdb/$FERRETDB_VERSION
MINIO_DIR=$CACHE/minio/$MINIO_VERSION
OTELCOL_MANIFEST=$here/otelcol-builder.yaml
# Keyed by the version and the builder manifest: adding a component builds a fresh collector.
OTELCOL_KEY=$OTELCOL_VERSION-$(sha256sum "$OTELCOL_MANIFEST" | cut -c1-12)
OTELCOL_DIR=$CACHE/otelcol/$OTELCOL_KEY
OIDC_SRC=$here/harness/oidc
# Keyed by the Kubernetes version and the pause program's source.
NODE_DIR=$CACHE/k8s-node/$KUBERNETES_VERSION-linux-$GOARCH-$(cat "$here/cluster/pause/go.mod" "$here/cluster/pause/main.go" | sha256sum | cut -c1-12)
# Keyed by the lock file and the script: a change to either installs a fresh copy.
OIDC_DIR=$CACHE/oidc-provider/$(cat "$OIDC_SRC/package-lock.json" "$OIDC_SRC/provider.mjs" | sha256sum | cut -c1-16)
OIDC_RP_SRC=$(dirname "$here")/tests/oidc/node
OIDC_RP_DIR=$CACHE/oidc-rp/$(cat "$OIDC_RP_SRC/package-lock.json" "$OIDC_RP_SRC/rp.mjs" | sha256sum | cut -c1-16)

export GOFLAGS="-buildvcs=false -trimpath"
export CGO_ENABLED=0

say() { printf '==> [%s] %s\n' "$1" "$2"; }

# run TOOL STEP CMD...: run a build step with its output in the tool's log; on
# failure name the tool, the step and the log, and show the log's tail.
run() {
  local tool=$1 step=$2; shift 2
  local log=$LOGS/$tool.log
  mkdir -p "$LOGS"
  say "$tool" "$step"
  printf '\n### %s: %s\n$ %s\n' "$(date -Is)" "$step" "$*" >>"$log"
  if ! "$@" >>"$log" 2>&1; then
    printf '\nmake tools: %s failed at step "%s".\nFull log: %s\n--- last lines ---\n' "$tool" "$step" "$log" >&2
    tail -n 25 "$log" >&2
    exit 1
  fi
}

complete() { [ -f "$1/.complete" ]; }
mark_complete() { date -Is >"$1/.complete"; }
# timed build_TOOL: run the build and say how long it took (nothing to do: "cached").
timed() {
  local t0=$SECONDS tool=${1#build_} took
  "$@"
  took=$((SECONDS - t0))
  if [ "$took" -eq 0 ]; then say "$tool" "cached"; else say "$tool" "ready in $took s"; fi
}

# A throw-away Go module for building a main package of a module that has
# replace directives (which `go install pkg@version` refuses).
wrapper_module() {
  local dir=$1 name=$2
  rm -rf "$dir" && mkdir -p "$dir"
  printf 'module stackyard.local/tools/%s\n\ngo 1.25\n' "$name" >"$dir/go.mod"
}

build_kubernetes() {
  complete "$K8S_DIR" && return 0
  local src=$CACHE/src/kubernetes-$KUBERNETES_VERSION minor
  minor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION")
  wrapper_module "$src" kubernetes
  # k8s.io/kubernetes replaces its staging modules with local paths; point each
  # at its published v0.<minor>.<patch> release instead.
  run kubernetes "resolve k8s.io/kubernetes v$KUBERNETES_VERSION" \
    go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION"
  local gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  {
    printf 'require k8s.io/kubernetes v%s\n\n' "$KUBERNETES_VERSION"
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#replace \1 => \1 v0.'"${KUBERNETES_VERSION#*.}"'#p' "$gomod"
  } >>"$src/go.mod"
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$K8S_DIR"
  (cd "$src" && run kubernetes "download modules" go mod download k8s.io/kubernetes)
  (cd "$src" && run kubernetes "compile kube-apiserver, kube-controller-manager and kubectl (the long step)" \
    go build -mod=mod -ldflags "$ldflags" -o "$K8S_DIR/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kubectl)
  build_etcd
  cp "$ETCD_DIR/etcd" "$K8S_DIR/etcd"
  mark_complete "$K8S_DIR"
}

# The node's binaries, from their own wrapper module (made like build_kubernetes's, so a
# warm Go build cache of the kubernetes tool makes this a two-minute build).
build_cluster() {
  complete "$NODE_DIR" && return 0
  local src=$CACHE/src/kubernetes-node-$KUBERNETES_VERSION minor gomod pkg ldflags="-s -w"
  minor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION")
  wrapper_module "$src" kubernetes-node
  run cluster "resolve k8s.io/kubernetes v$KUBERNETES_VERSION" \
    go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION"
  gomod=$(go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  {
    printf 'require k8s.io/kubernetes v%s\n\n' "$KUBERNETES_VERSION"
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#replace \1 => \1 v0.'"${KUBERNETES_VERSION#*.}"'#p' "$gomod"
  } >>"$src/go.mod"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$NODE_DIR"
  (cd "$src" && run cluster "download modules" go mod download k8s.io/kubernetes)
  (cd "$src" && run cluster "compile kubelet, kube-scheduler and kube-proxy" \
    go build -mod=mod -ldflags "$ldflags" -o "$NODE_DIR/" \
      k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kube-proxy)
  (cd "$here/cluster/pause" && run cluster "compile pause" go build -ldflags "-s -w" -o "$NODE_DIR/pause" .)
  mark_complete "$NODE_DIR"
}

build_etcd() {
  complete "$ETCD_DIR" && return 0
  local src=$CACHE/src/etcd-$ETCD_VERSION
  wrapper_module "$src" etcd
  printf 'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n' >"$src/main.go"
  mkdir -p "$ETCD_DIR"
  (cd "$src" && run etcd "fetch go.etcd.io/etcd/server/v3 v$ETCD_VERSION" go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION")
  (cd "$src" && run etcd "compile etcd" go build -mod=mod -ldflags "-s -w" -o "$ETCD_DIR/etcd" .)
  mark_complete "$ETCD_DIR"
}

build_helm() {
  complete "$HELM_DIR" && return 0
  mkdir -p "$HELM_DIR"
  # Like helm's own Makefile: the Kubernetes version that `helm template` and `helm lint`
  # assume is the minor of the client-go that helm is built with (else it says 1.20).
  local gomod client_go major minor pkg ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION"
  run helm "resolve helm.sh/helm/v3 v$HELM_VERSION" go mod download -json "helm.sh/helm/v3@v$HELM_VERSION"
  gomod=$(go mod download -json "helm.sh/helm/v3@v$HELM_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
  client_go=$(sed -n 's#^\s*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod" | head -n1)
  major=1 minor=${client_go:?cannot read the client-go version in the go.mod of helm}
  for pkg in pkg/lint/rules pkg/chartutil; do
    ldflags+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=$major -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$minor"
  done
  run helm "compile helm v$HELM_VERSION (for Kubernetes $major.$minor)" env GOBIN="$HELM_DIR" \
    go install -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
  mark_complete "$HELM_DIR"
}

build_kind() {
  complete "$KIND_DIR" && return 0
  mkdir -p "$KIND_DIR"
  run kind "compile kind v$KIND_VERSION" env GOBIN="$KIND_DIR" go install -ldflags "-s -w" "sigs.k8s.io/kind@v$KIND_VERSION"
  mark_complete "$KIND_DIR"
}

build_ferretdb() {
  complete "$FERRETDB_DIR" && return 0
  local src=$CACHE/src/ferretdb-$FERRETDB_VERSION module
  run ferretdb "download github.com/FerretDB/FerretDB v$FERRETDB_VERSION" \
    go mod download -json "github.com/FerretDB/FerretDB@v$FERRETDB_VERSION"
  module=$(go mod download -json "github.com/FerretDB/FerretDB@v$FERRETDB_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  # FerretDB embeds build/version/version.txt, which its release tooling writes and the
  # module zip leaves empty: build from a copy with the version filled in.
  rm -rf "$src" && cp -r "$module" "$src" && chmod -R u+w "$src"
  printf 'v%s\n' "$FERRETDB_VERSION" >"$src/build/version/version.txt"
  mkdir -p "$FERRETDB_DIR"
  (cd "$src" && run ferretdb "compile ferretdb v$FERRETDB_VERSION (SQLite and PostgreSQL backends)" \
    go build -ldflags "-s -w" -o "$FERRETDB_DIR/ferretdb" ./cmd/ferretdb)
  mark_complete "$FERRETDB_DIR"
}

# MinIO, the S3-compatible server of the storage tests. It tags releases RELEASE.<date>,
# not semver, so the pin is the module's pseudo-version of that commit.
build_minio() {
  complete "$MINIO_DIR" && return 0
  mkdir -p "$MINIO_DIR"
  run minio "compile minio $MINIO_VERSION (a few minutes on two cores)" env GOBIN="$MINIO_DIR" \
    go install -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
  mark_complete "$MINIO_DIR"
}

build_otelcol() {
  complete "$OTELCOL_DIR" && return 0
  local src=$CACHE/src/otelcol-$OTELCOL_KEY v=v$OTELCOL_VERSION
  rm -rf "$src" && mkdir -p "$src" "$OTELCOL_DIR"
  run otelcol "compile the collector builder (ocb) $v" env GOBIN="$src" \
    go install "go.opentelemetry.io/collector/cmd/builder@$v"
  sed -e "s#@VERSION@#$v#g" -e "s#@OUTPUT@#$src/dist#" "$OTELCOL_MANIFEST" >"$src/builder.yaml"
  run otelcol "generate and compile otelcol-stackyard $v" "$src/builder" --config "$src/builder.yaml"
  cp "$src/dist/otelcol-stackyard" "$OTELCOL_DIR/"
  mark_complete "$OTELCOL_DIR"
}

build_oidc() {
  complete "$OIDC_DIR" && return 0
  if ! command -v npm >/dev/null; then
    printf 'make tools: npm is missing (Node.js 20 or later is needed for the OpenID test provider)\n' >&2
    exit 1
  fi
  rm -rf "$OIDC_DIR" && mkdir -p "$OIDC_DIR"
  cp "$OIDC_SRC/package.json" "$OIDC_SRC/package-lock.json" "$OIDC_SRC/.npmrc" "$OIDC_SRC/provider.mjs" "$OIDC_DIR/"
  (cd "$OIDC_DIR" && run oidc "npm ci (oidc-provider, from hack/harness/oidc/package-lock.json)" \
    npm ci --no-audit --no-fund --omit=dev)
  mark_complete "$OIDC_DIR"
}

build_oidc_rp() {
  complete "$OIDC_RP_DIR" && return 0
  if ! command -v npm >/dev/null; then
    printf 'make tools: npm is missing (Node.js 20 or later is needed for the openid-client relying party)\n' >&2
    exit 1
  fi
  rm -rf "$OIDC_RP_DIR" && mkdir -p "$OIDC_RP_DIR"
  cp "$OIDC_RP_SRC/package.json" "$OIDC_RP_SRC/package-lock.json" "$OIDC_RP_SRC/.npmrc" "$OIDC_RP_SRC/rp.mjs" "$OIDC_RP_DIR/"
  (cd "$OIDC_RP_DIR" && run oidc-rp "npm ci (openid-client, from tests/oidc/node/package-lock.json)" \
    npm ci --no-audit --no-fund --omit=dev)
  mark_complete "$OIDC_RP_DIR"
}

check_redis() {
  if ! command -v redis-server >/dev/null; then
    printf 'make tools: redis-server is missing. Install Debian'"'"'s package: sudo hack/apt-packages.sh\n' >&2
    exit 1
  fi
  say redis "using $(redis-server --version | cut -d' ' -f1-3)"
}

print_env() {
  cat <<EOF
STACKYARD_CACHE=$CACHE
KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS:-$K8S_DIR}
STACKYARD_HELM=${STACKYARD_HELM:-$HELM_DIR/helm}
STACKYARD_KIND=${STACKYARD_KIND:-$KIND_DIR/kind}
STACKYARD_FERRETDB=${STACKYARD_FERRETDB:-$FERRETDB_DIR/ferretdb}
STACKYARD_OTELCOL=${STACKYARD_OTELCOL:-$OTELCOL_DIR/otelcol-stackyard}
STACKYARD_MINIO=${STACKYARD_MINIO:-$MINIO_DIR/minio}
STACKYARD_OIDC_PROVIDER=${STACKYARD_OIDC_PROVIDER:-$OIDC_DIR/provider.mjs}
STACKYARD_OIDC_RP=${STACKYARD_OIDC_RP:-$OIDC_RP_DIR/rp.mjs}
STACKYARD_NODE_BIN=${STACKYARD_NODE_BIN:-$NODE_DIR}
EOF
}

case ${1:-all} in
  all)
    t0=$SECONDS
    check_redis
    timed build_kubernetes
    timed build_helm
    timed build_kind
    timed build_ferretdb
    timed build_minio
    timed build_otelcol
    timed build_oidc
    timed build_oidc_rp
    say tools "all ready in $((SECONDS - t0)) s under $CACHE"
    ;;
  kubernetes) timed build_kubernetes ;;
  etcd) timed build_etcd ;;
  helm) timed build_helm ;;
  kind) timed build_kind ;;
  ferretdb) timed build_ferretdb ;;
  minio) timed build_minio ;;
  otelcol) timed build_otelcol ;;
  oidc) timed build_oidc ;;
  oidc-rp) timed build_oidc_rp ;;
  redis) check_redis ;;
  cluster) timed build_cluster ;;
  env) print_env ;;
  *) echo "usage: $0 [all|kubernetes|etcd|helm|kind|ferretdb|minio|otelcol|oidc|oidc-rp|redis|cluster|env]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A single-node Kubernetes cluster that runs pods on this machine, built and started by
# the project (no kind, no node image, no registry):
#
#   hack/cluster.sh up              start what is not running; wait until the node is Ready
#   hack/cluster.sh down            stop it all, remove the pods and the cluster's state
#   hack/cluster.sh status          say what runs (exit 0 when the node is Ready)
#   hack/cluster.sh env             print `export KUBECONFIG=...` (eval it)
#   hack/cluster.sh import IMAGE... copy images from the docker engine into the node (ctr import)
#   hack/cluster.sh images          build the e2e suite's third-party images (Redis, the OTel
#                                   collector, FerretDB: hack/cluster/images) in the docker engine
#
# Parts: etcd, kube-apiserver, kube-controller-manager and kubectl from `make tools`
# (hack/tools.sh kubernetes); kubelet, kube-scheduler, kube-proxy and a pause image from
# `hack/tools.sh cluster`; containerd and runc from Debian (docker.io brings them),
# the CNI plugins from Debian's containernetworking-plugins (a bridge network); cluster
# DNS from hack/cluster/dns.py (Services and their Endpoints, read from the API server).
# Everything lives under $STACKYARD_CLUSTER_DIR (default ~/.cache/stackyard/cluster):
# pki/, the kubeconfigs, logs/, the containerd root (imported images survive `down`).
#
# The node runs with cgroupfs (no systemd here) and accepts the cgroup v1 hierarchy
# (failCgroupV1: false). It needs root.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
eval "$("$here/tools.sh" env | sed 's/^/export /')"

DIR=${STACKYARD_CLUSTER_DIR:-$STACKYARD_CACHE/cluster}
PKI=$DIR/pki
LOGS=$DIR/logs
RUN=$DIR/run
KUBECONFIG_ADMIN=$DIR/admin.kubeconfig
NODE=stackyard-node
# The pod network: a Linux bridge whose address is the node's (and the DNS server's).
BRIDGE=stackyard0
POD_CIDR=10.244.0.0/24
NODE_IP=10.244.0.1
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
ETCD_PORT=${STACKYARD_CLUSTER_ETCD_PORT:-12379}
API_PORT=${STACKYARD_CLUSTER_API_PORT:-16443}
CONTAINERD_SOCK=$DIR/containerd/containerd.sock
PAUSE_IMAGE=stackyard.local/pause:1
K8S=$KUBEBUILDER_ASSETS
NODE_BIN=$STACKYARD_NODE_BIN
KUBECTL=$K8S/kubectl

say() { printf '==> [cluster] %s\n' "$*"; }
die() { printf 'hack/cluster.sh: %s\n' "$*" >&2; exit 1; }
kubectl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }
ctr() { command ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

pid_of() {
  local pid
  [ -f "$RUN/$1.pid" ] || return 1
  pid=$(cat "$RUN/$1.pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# write PATH: stdin to PATH unless PATH holds that already (kube-proxy exits when its
# config file is written to, even with the same content).
write() {
  local tmp
  tmp=$(mktemp "$1.XXXX")
  cat >"$tmp"
  if cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

# launch NAME CMD...: start a component in its own session unless it runs; output to its log.
launch() {
  local name=$1; shift
  if pid_of "$name" >/dev/null; then
    say "$name runs (pid $(pid_of "$name"))"
    return 0
  fi
  printf '\n### %s: %s\n' "$(date -Is)" "$*" >>"$LOGS/$name.log"
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  say "$name started (pid $!, log $LOGS/$name.log)"
}

# wait_for NAME SECONDS CMD...: until CMD succeeds; on timeout or exit of NAME, show its log.
wait_for() {
  local name=$1 seconds=$2 deadline; shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ! pid_of "$name" >/dev/null; then
      failed "$name exited"
    fi
    [ "$SECONDS" -lt "$deadline" ] || failed "$name is not ready after $seconds s"
    sleep 0.5
  done
}

failed() {
  printf 'hack/cluster.sh: %s.\nFull log: %s\n--- last lines ---\n' "$1" "$LOGS/${1%% *}.log" >&2
  tail -n 25 "$LOGS/${1%% *}.log" >&2
  exit 1
}

check_prerequisites() {
  [ "$(id -u)" -eq 0 ] || die "the node (containerd, kubelet, kube-proxy) needs root"
  for bin in "$K8S/etcd" "$K8S/kube-apiserver" "$K8S/kube-controller-manager" "$KUBECTL"; do
    [ -x "$bin" ] || die "$bin is missing: run \`make tools\`"
  done
  for bin in kubelet kube-scheduler kube-proxy pause; do
    [ -x "$NODE_BIN/$bin" ] || die "$NODE_BIN/$bin is missing: run \`hack/tools.sh cluster\`"
  done
  for bin in containerd containerd-shim-runc-v2 runc ctr iptables openssl python3; do
    command -v "$bin" >/dev/null || die "$bin is missing: run \`sudo hack/apt-packages.sh\` (and apt-get install containerd runc containernetworking-plugins iptables)"
  done
  [ -x /usr/lib/cni/bridge ] || die "the CNI plugins are missing: apt-get install containernetworking-plugins"
}

# -- pki -------------------------------------------------------------------------------

# cert NAME CN [O] [SERVER_SANS]: a key and a certificate signed by the cluster's CA.
cert() {
  local name=$1 cn=$2 org=${3:-} sans=${4:-} subj ext=$PKI/$1.ext
  [ -f "$PKI/$name.crt" ] && return 0
  subj="/CN=$cn"
  [ -z "$org" ] || subj="/O=$org$subj"
  openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/$name.key" 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$sans"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
  chmod 600 "$PKI/$name.key"
}

kubeconfig() {
  local file=$1 user=$2
  [ -f "$file" ] && return 0
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: stackyard
    cluster:
      server: https://127.0.0.1:$API_PORT
      certificate-authority: $PKI/ca.crt
users:
  - name: $user
    user:
      client-certificate: $PKI/$user.crt
      client-key: $PKI/$user.key
contexts:
  - name: stackyard
    context: {cluster: stackyard, user: $user}
current-context: stackyard
EOF
  chmod 600 "$file"
}

write_pki() {
  mkdir -p "$PKI"
  if [ ! -f "$PKI/ca.crt" ]; then
    say "making the cluster's CA and certificates ($PKI)"
    openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=stackyard-cluster-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$PKI/ca.crt"
    openssl ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key" 2>/dev/null
    openssl ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  fi
  cert apiserver kube-apiserver "" \
    "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$NODE_IP,IP:$API_SERVICE_IP"
  cert admin admin system:masters
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kube-proxy system:kube-proxy system:node-proxier
  cert kubelet "system:node:$NODE" system:nodes "DNS:$NODE,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"
  cert dns stackyard-cluster-dns
  kubeconfig "$KUBECONFIG_ADMIN" admin
  for user in controller-manager scheduler kube-proxy kubelet dns; do
    kubeconfig "$DIR/$user.kubeconfig" "$user"
  done
}

# -- the control plane ---------------------------------------------------------------------

start_etcd() {
  launch etcd "$K8S/etcd" --name stackyard --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "stackyard=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --unsafe-no-fsync --log-level warn
  wait_for etcd 30 curl -fsS "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  launch kube-apiserver "$K8S/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 0.0.0.0 --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
    --cert-dir "$PKI" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --authorization-mode Node,RBAC --anonymous-auth=false \
    --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" --allow-privileged=true \
    --enable-admission-plugins NodeRestriction --profiling=false --v=1
  wait_for kube-apiserver 60 curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz"
}

start_controllers() {
  launch kube-controller-manager "$K8S/kube-controller-manager" \
    --kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=true --leader-elect=false \
    --cluster-cidr 10.244.0.0/16 --service-cluster-ip-range "$SERVICE_CIDR" \
    --allocate-node-cidrs=false --v=1
  launch kube-scheduler "$NODE_BIN/kube-scheduler" \
    --kubeconfig "$DIR/scheduler.kubeconfig" \
    --authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 --leader-elect=false --v=1
  # The DNS server reads Services and EndpointSlices across namespaces.
  kubectl apply -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "stackyard:cluster-dns"}
rules:
  - apiGroups: [""]
    resources: [services]
    verbs: [list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "stackyard:cluster-dns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "stackyard:cluster-dns"}
subjects:
  - {apiGroup: rbac.authorization.k8s.io, kind: User, name: stackyard-cluster-dns}
EOF
}

# -- the node ------------------------------------------------------------------------------

start_network() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    say "bridge $BRIDGE made"
  fi
  ip addr show dev "$BRIDGE" | grep -q "inet $NODE_IP/" || ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Service traffic between pods on the bridge goes through iptables (kube-proxy's rules).
  if [ -w /proc/sys/net/bridge/bridge-nf-call-iptables ]; then
    echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables
  fi
  echo 1 >/proc/sys/net/ipv4/ip_forward
  mkdir -p "$DIR/cni"
  write "$DIR/cni/10-stackyard.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "stackyard",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$DIR/cni/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
}

start_dns() {
  launch cluster-dns python3 "$here/cluster/dns.py" --listen "$NODE_IP:53" \
    --server "https://127.0.0.1:$API_PORT" --ca "$PKI/ca.crt" --cert "$PKI/dns.crt" --key "$PKI/dns.key"
}

start_containerd() {
  mkdir -p "$DIR/containerd"
  # CAP_SYS_RESOURCE is bit 24 of the effective capabilities.
  local RESTRICT_OOM=false
  if (( (0x$(awk '/^CapEff/ {print $2}' /proc/self/status) >> 24 & 1) == 0 )); then
    RESTRICT_OOM=true
    say "no CAP_SYS_RESOURCE here: containers keep oom_score_adj >= 0 (restrict_oom_score_adj)"
  fi
  write "$DIR/containerd/config.toml" <<EOF
version = 2
root = "$DIR/containerd/root"
state = "$DIR/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE in some sandboxes (Firecracker VMs of CI): a negative oom_score_adj
  # (-998 for the pause container) is refused there; cap it at containerd's own instead.
  restrict_oom_score_adj = $RESTRICT_OOM
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$DIR/cni"
EOF
  launch containerd containerd --config "$DIR/containerd/config.toml"
  wait_for containerd 30 ctr version
  if ! ctr images inspect "$PAUSE_IMAGE" >/dev/null 2>&1 && ! ctr images ls -q | grep -qx "$PAUSE_IMAGE"; then
    python3 "$here/cluster/oci-image.py" "$PAUSE_IMAGE" "$DIR/pause.tar" "$NODE_BIN/pause:/pause" -- /pause
    ctr images import "$DIR/pause.tar" >/dev/null
    say "pause image $PAUSE_IMAGE imported"
  fi
}

start_kubelet() {
  mkdir -p "$DIR/kubelet"
  write "$DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
address: $NODE_IP
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: /etc/resolv.conf
podCIDR: $POD_CIDR
maxPods: 60
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, imagefs.available: 1%}
nodeStatusUpdateFrequency: 4s
syncFrequency: 5s
EOF
  launch kubelet "$NODE_BIN/kubelet" --config "$DIR/kubelet.yaml" \
    --kubeconfig "$DIR/kubelet.kubeconfig" --root-dir "$DIR/kubelet" \
    --hostname-override "$NODE" --node-ip "$NODE_IP" --v=1
  wait_for kubelet 90 node_ready
  # Pods of a namespace are refused until its default ServiceAccount exists.
  wait_for kube-controller-manager 60 kubectl get serviceaccount default --namespace default
}

node_ready() {
  [ "$(kubectl get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

start_proxy() {
  write "$DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $DIR/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: 10.244.0.0/16
hostnameOverride: $NODE
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0}
EOF
  launch kube-proxy "$NODE_BIN/kube-proxy" --config "$DIR/kube-proxy.yaml" --v=1
  wait_for kube-proxy 30 curl -fsS http://127.0.0.1:10256/healthz
}

up() {
  local t0=$SECONDS
  check_prerequisites
  mkdir -p "$LOGS" "$RUN"
  write_pki
  start_etcd
  start_apiserver
  start_controllers
  start_network
  start_dns
  start_containerd
  start_kubelet
  start_proxy
  say "ready in $((SECONDS - t0)) s: node $NODE, API https://127.0.0.1:$API_PORT"
  say "export KUBECONFIG=$KUBECONFIG_ADMIN"
}

# -- down ------------------------------------------------------------------------------------

stop() {
  local name=$1 pid deadline
  pid=$(pid_of "$name") || { rm -f "$RUN/$name.pid"; return 0; }
  kill -TERM "$pid"
  deadline=$((SECONDS + 20))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    sleep 0.2
  done
  rm -f "$RUN/$name.pid"
  say "$name stopped"
}

remove_pods() {
  pid_of containerd >/dev/null || return 0
  local ids
  ids=$(ctr tasks ls -q 2>/dev/null || true)
  for id in $ids; do ctr tasks kill --signal SIGKILL "$id" >/dev/null 2>&1 || true; done
  sleep 1
  for id in $ids; do ctr tasks rm -f "$id" >/dev/null 2>&1 || true; done
  ids=$(ctr containers ls -q 2>/dev/null || true)
  for id in $ids; do ctr containers rm "$id" >/dev/null 2>&1 || true; done
  [ -z "$ids" ] || say "pods removed"
}

down() {
  [ "$(id -u)" -eq 0 ] || die "stopping the node needs root"
  stop kube-proxy
  stop kubelet
  remove_pods
  stop containerd
  stop cluster-dns
  stop kube-scheduler
  stop kube-controller-manager
  stop kube-apiserver
  stop etcd
  # Mounts the kubelet and containerd leave (pod volumes, sandboxes' network namespaces).
  # The kubelet bind-mounts its root directory onto itself, hence the prefix without a slash.
  awk -v a="$DIR/kubelet" -v b="$DIR/containerd/state/" -v c="/run/netns/cni-" \
    'index($2, a) == 1 || index($2, b) == 1 || index($2, c) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
  # The pods' network namespaces (CNI's files under /run/netns, now unmounted).
  rm -f /run/netns/cni-*
  # The rules of kube-proxy (KUBE-*), of the kubelet (KUBE-FIREWALL, ...) and of the bridge
  # plugin for each pod (CNI-*): the pods were not torn down through CNI. Other rules stay.
  if iptables-save 2>/dev/null | grep -qE 'KUBE-|CNI-'; then
    iptables-save | grep -vE 'KUBE-|CNI-' | iptables-restore
    say "iptables rules of the cluster removed"
  fi
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -rf "$DIR/etcd" "$DIR/kubelet" "$DIR/cni/ipam" "$DIR/containerd/state" "$RUN"
  say "down (images stay in $DIR/containerd/root; pki and kubeconfigs stay)"
}

status() {
  local name rc=0
  for name in etcd kube-apiserver kube-controller-manager kube-scheduler cluster-dns containerd kubelet kube-proxy; do
    if pid_of "$name" >/dev/null; then say "$name runs (pid $(pid_of "$name"))"; else say "$name is not running"; rc=1; fi
  done
  if node_ready; then say "node $NODE is Ready; export KUBECONFIG=$KUBECONFIG_ADMIN"; else say "node $NODE is not Ready"; rc=1; fi
  return "$rc"
}

# normalized IMAGE: the name containerd gives an image (Docker Hub's implied registry spelled out).
normalized() {
  local first=${1%%/*}
  case $1 in
    */*) if [[ $first == *.* || $first == *:* || $first == localhost ]]; then echo "$1"; else echo "docker.io/$1"; fi ;;
    *) echo "docker.io/library/$1" ;;
  esac
}

import_images() {
  [ $# -gt 0 ] || die "usage: hack/cluster.sh import IMAGE..."
  pid_of containerd >/dev/null || die "containerd is not running: run \`make cluster\`"
  docker_engine
  local image t0 id stamp
  for image in "$@"; do
    t0=$SECONDS
    docker image inspect "$image" >/dev/null 2>&1 || die "no image $image in the engine at $DOCKER_HOST: run \`make images\`"
    # Skip an image whose engine id was imported already (and is still in the node).
    id=$(docker image inspect --format '{{.Id}}' "$image")
    stamp=$DIR/imported/${image//[\/:]/_}
    if [ "$(cat "$stamp" 2>/dev/null)" = "$id" ] && [ -n "$(ctr images ls -q "name==$(normalized "$image")" 2>/dev/null)" ]; then
      say "$image already imported"
      continue
    fi
    docker save "$image" | ctr images import - >/dev/null
    mkdir -p "$DIR/imported"
    printf '%s\n' "$id" >"$stamp"
    say "$image imported in $((SECONDS - t0)) s"
  done
}

# The images the chart names on Docker Hub cannot be pulled here: the e2e suite sets the
# chart's redis.image and otelCollector.image to these, built on the project's base image.
E2E_IMAGES=(redis otelcol ferretdb)

docker_engine() {
  if [ -z "${DOCKER_HOST:-}" ]; then
    "$here/docker.sh" start >&2
    eval "$("$here/docker.sh" env)"
    export DOCKER_HOST
  fi
}

build_e2e_images() {
  docker_engine
  local name tag context log t0
  mkdir -p "$LOGS"
  for name in "${E2E_IMAGES[@]}"; do
    tag=stackyard-e2e/$name:e2e t0=$SECONDS
    if docker image inspect "$tag" >/dev/null 2>&1 && [ "${REBUILD:-0}" != 1 ]; then
      say "$tag present (REBUILD=1 builds it again)"
      continue
    fi
    context=$(mktemp -d)
    cp "$here/cluster/images/$name/Dockerfile" "$context/"
    case $name in
      otelcol) cp "$STACKYARD_OTELCOL" "$context/" ;;
      ferretdb) cp "$STACKYARD_FERRETDB" "$context/" ;;
    esac
    log=$LOGS/image-$name.log
    say "building $tag (log $log)"
    if ! docker build --network host --build-arg "BASE_IMAGE=${BASE_IMAGE:-stackyard/python-base:bookworm}" \
      --tag "$tag" "$context" >"$log" 2>&1; then
      rm -rf "$context"
      printf 'hack/cluster.sh: building %s failed.\nFull log: %s\n--- last lines ---\n' "$tag" "$log" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    rm -rf "$context"
    say "$tag built in $((SECONDS - t0)) s"
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  env) printf 'export KUBECONFIG=%s\n' "$KUBECONFIG_ADMIN" ;;
  import) shift; import_images "$@" ;;
  images) build_e2e_images ;;
  *) die "usage: hack/cluster.sh up|down|status|env|images|import IMAGE..." ;;
esac

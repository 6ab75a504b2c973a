#!/usr/bin/env bash
# Start a real Kubernetes control plane on 127.0.0.1 (no Docker): etcd, kube-apiserver (RBAC),
# kube-controller-manager, kube-scheduler and kwok with fake nodes (one CPU node, one GPU node).
# State lives in .cluster/ at the repo root (certs, kubeconfigs, etcd data, logs/, pids/).
#
# Usage: scripts/cluster/up.sh [--with-keda] [--no-build] [--timeout SECONDS]
#   --with-keda  also start the KEDA operator (scripts/cluster/keda.sh start)
#   --no-build   fail instead of calling build.sh when binaries are missing
# Idempotent: with a live cluster it only prints how to use it. Stop it with scripts/cluster/down.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_host_tools

WITH_KEDA=0 NO_BUILD=0 TIMEOUT=120
while [[ $# -gt 0 ]]; do
  case "$1" in
    --with-keda) WITH_KEDA=1; shift ;;
    --no-build) NO_BUILD=1; shift ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

print_info() {
  # shellcheck source=/dev/null
  source "$STATE_DIR/cluster.env"
  cat <<INFO
Cluster is up (kube ${KUBE_VERSION}, etcd ${ETCD_VERSION}, kwok ${KWOK_VERSION}).
  apiserver : ${CLUSTER_APISERVER_URL}
  kubeconfig: ${CLUSTER_KUBECONFIG}
  binaries  : ${CLUSTER_BIN_DIR}
  logs      : ${STATE_DIR}/logs
Use it:
  export KUBECONFIG=${CLUSTER_KUBECONFIG}
  export PATH=${CLUSTER_BIN_DIR}:\$PATH
  kubectl get nodes
Stop it: scripts/cluster/down.sh
INFO
}

cluster_lock
if cluster_alive; then
  log "cluster already running"
  if [[ $WITH_KEDA == 1 ]]; then "$CLUSTER_SCRIPTS/keda.sh" start; fi
  print_info
  exit 0
fi
if [[ -d "$STATE_DIR/pids" ]] && compgen -G "$STATE_DIR/pids/*.pid" >/dev/null; then
  log "found a partial/stale cluster: stopping it first"
  "$CLUSTER_SCRIPTS/down.sh"
fi

# From here on a failure stops whatever this run started (logs stay in .cluster/logs).
UP_OK=0
trap 'if [[ $UP_OK != 1 ]]; then log "startup failed: stopping what was started (logs: $STATE_DIR/logs)"; "$CLUSTER_SCRIPTS/down.sh" >&2 || true; fi' EXIT

# --- binaries ---------------------------------------------------------------------------------
need=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
missing=()
for b in "${need[@]}" kubectl; do [[ -x "$BIN_DIR/$b" ]] || missing+=("$b"); done
if [[ ${#missing[@]} -gt 0 ]]; then
  [[ $NO_BUILD == 0 ]] || { log "missing binaries in $BIN_DIR: ${missing[*]} (run scripts/cluster/build.sh)"; exit 1; }
  log "missing binaries (${missing[*]}): running build.sh"
  "$CLUSTER_SCRIPTS/build.sh" --only kube,etcd,kwok
fi
KUBECTL="$(kubectl_bin)"

# --- state dir, ports, certificates ------------------------------------------------------------
T0=$SECONDS
rm -rf "$STATE_DIR"
mkdir -p "$STATE_DIR"/{pki,logs,pids,etcd,kwok,users}
# Who started it: "helper" (tests/support/cluster.py, stopped when its last user process is done)
# or "manual" (make cluster-up; stopped only by make cluster-down).
echo "${DETECTFLOW_CLUSTER_OWNER:-manual}" >"$STATE_DIR/owner"
chmod 700 "$STATE_DIR"
PKI="$STATE_DIR/pki"
read -r ETCD_PORT ETCD_PEER_PORT API_PORT KCM_PORT SCHED_PORT KWOK_PORT < <(free_ports 6)

openssl_quiet() { openssl "$@" 2>/dev/null; }
mk_ca() { # name CN
  openssl_quiet req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 -subj "/CN=$2" \
    -keyout "$PKI/$1.key" -out "$PKI/$1.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
}
mk_cert() { # name CA subject extKeyUsage [SAN]
  local ext="$PKI/$1.ext"
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$4"; [[ -z "${5:-}" ]] || echo "subjectAltName=$5"; } >"$ext"
  openssl_quiet req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -subj "$3" -keyout "$PKI/$1.key" -out "$PKI/$1.csr"
  openssl_quiet x509 -req -sha256 -days 3650 -in "$PKI/$1.csr" -CA "$PKI/$2.crt" -CAkey "$PKI/$2.key" \
    -CAcreateserial -extfile "$ext" -out "$PKI/$1.crt"
  rm -f "$PKI/$1.csr" "$ext"
}
log "generating certificates"
mk_ca ca detectflow-dev-ca
mk_ca front-proxy-ca detectflow-dev-front-proxy-ca
SAN="IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
mk_cert apiserver ca "/CN=kube-apiserver" serverAuth "$SAN"
mk_cert admin ca "/O=system:masters/CN=kubernetes-admin" clientAuth
mk_cert controller-manager ca "/CN=system:kube-controller-manager" clientAuth
mk_cert scheduler ca "/CN=system:kube-scheduler" clientAuth
mk_cert kwok ca "/O=system:masters/CN=kwok-controller" "clientAuth,serverAuth" "IP:127.0.0.1,DNS:localhost"
mk_cert apiserver-kubelet-client ca "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
mk_cert front-proxy-client front-proxy-ca "/CN=front-proxy-client" clientAuth
openssl_quiet ecparam -name prime256v1 -genkey -noout -out "$PKI/sa.key"
openssl_quiet ec -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub"
chmod 600 "$PKI"/*.key

API_URL="https://127.0.0.1:$API_PORT"
mk_kubeconfig() { # file cert-name user
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: detectflow-dev
  cluster:
    server: $API_URL
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$2.crt")
    client-key-data: $(base64 -w0 "$PKI/$2.key")
contexts:
- name: detectflow-dev
  context: {cluster: detectflow-dev, user: $3}
current-context: detectflow-dev
KC
  chmod 600 "$1"
}
mk_kubeconfig "$STATE_DIR/kubeconfig" admin kubernetes-admin
mk_kubeconfig "$STATE_DIR/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
mk_kubeconfig "$STATE_DIR/scheduler.kubeconfig" scheduler system:kube-scheduler
mk_kubeconfig "$STATE_DIR/kwok.kubeconfig" kwok kwok-controller

cat >"$STATE_DIR/cluster.env" <<ENV
# Written by scripts/cluster/up.sh; sourced by down.sh, keda.sh and tests/support/cluster.py.
CLUSTER_STATE_DIR=$STATE_DIR
CLUSTER_BIN_DIR=$BIN_DIR
CLUSTER_KUBECONFIG=$STATE_DIR/kubeconfig
CLUSTER_APISERVER_URL=$API_URL
CLUSTER_ETCD_URL=http://127.0.0.1:$ETCD_PORT
CLUSTER_API_PORT=$API_PORT
CLUSTER_ETCD_PORT=$ETCD_PORT
CLUSTER_ETCD_PEER_PORT=$ETCD_PEER_PORT
CLUSTER_KCM_PORT=$KCM_PORT
CLUSTER_SCHEDULER_PORT=$SCHED_PORT
CLUSTER_KWOK_PORT=$KWOK_PORT
CLUSTER_SERVICE_CIDR=10.96.0.0/16
ENV

# --- processes ---------------------------------------------------------------------------------
log "starting etcd on 127.0.0.1:$ETCD_PORT"
start_proc etcd "$BIN_DIR/etcd" --name=detectflow-dev --data-dir="$STATE_DIR/etcd" \
  --listen-client-urls="http://127.0.0.1:$ETCD_PORT" --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster="detectflow-dev=http://127.0.0.1:$ETCD_PEER_PORT" --initial-cluster-state=new \
  --unsafe-no-fsync --quota-backend-bytes=2147483648 --log-level=warn
WAIT_PROC=etcd wait_for "etcd health" 30 curl_ok "http://127.0.0.1:$ETCD_PORT/health"

log "starting kube-apiserver on $API_URL"
start_proc kube-apiserver "$BIN_DIR/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
  --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
  --client-ca-file="$PKI/ca.crt" \
  --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --authorization-mode=Node,RBAC \
  --endpoint-reconciler-type=none \
  --allow-privileged=true \
  --enable-admission-plugins=NodeRestriction \
  --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-uid-headers=X-Remote-Uid \
  --proxy-client-cert-file="$PKI/front-proxy-client.crt" --proxy-client-key-file="$PKI/front-proxy-client.key" \
  --enable-aggregator-routing=false \
  --profiling=false --v=1
WAIT_PROC=kube-apiserver wait_for "kube-apiserver /readyz" 90 "$KUBECTL" --kubeconfig="$STATE_DIR/kubeconfig" get --raw=/readyz

log "starting kube-controller-manager and kube-scheduler"
start_proc kube-controller-manager "$BIN_DIR/kube-controller-manager" \
  --kubeconfig="$STATE_DIR/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$STATE_DIR/controller-manager.kubeconfig" \
  --authorization-kubeconfig="$STATE_DIR/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
  --leader-elect=false --use-service-account-credentials=true \
  --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
  --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
  --service-cluster-ip-range=10.96.0.0/16 \
  --controllers='*' \
  --horizontal-pod-autoscaler-sync-period=15s \
  --profiling=false --v=1
start_proc kube-scheduler "$BIN_DIR/kube-scheduler" \
  --kubeconfig="$STATE_DIR/scheduler.kubeconfig" \
  --authentication-kubeconfig="$STATE_DIR/scheduler.kubeconfig" \
  --authorization-kubeconfig="$STATE_DIR/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" \
  --leader-elect=false --profiling=false --v=1

# kwok: the default stages kwokctl uses (node-initialize, node-heartbeat-with-lease, pod-ready,
# pod-complete, pod-delete), read from the kwok module in the Go module cache.
KWOK_DIR="$(module_dir sigs.k8s.io/kwok "$KWOK_VERSION")"
{
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"; cat "$KWOK_DIR/kustomize/stage/$f"
  done
} >"$STATE_DIR/kwok/kwok.yaml"
log "starting kwok"
start_proc kwok "$BIN_DIR/kwok" \
  --kubeconfig="$STATE_DIR/kwok.kubeconfig" --config="$STATE_DIR/kwok/kwok.yaml" \
  --tls-cert-file="$PKI/kwok.crt" --tls-private-key-file="$PKI/kwok.key" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --node-ip=10.0.0.1 --node-name=localhost --node-port="$KWOK_PORT" \
  --server-address="127.0.0.1:$KWOK_PORT" --cidr=10.0.0.1/16 \
  --node-lease-duration-seconds=40 --v=INFO

# Fake nodes: a CPU node and a tainted GPU node exposing nvidia.com/gpu.
"$KUBECTL" --kubeconfig="$STATE_DIR/kubeconfig" apply -f - >/dev/null <<'NODES'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: kwok-node-0
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
status:
  allocatable: {cpu: "32", memory: 128Gi, pods: "110"}
  capacity: {cpu: "32", memory: 128Gi, pods: "110"}
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-gpu-0
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels:
    type: kwok
    kubernetes.io/arch: amd64
    kubernetes.io/os: linux
    kubernetes.io/hostname: kwok-gpu-0
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    nvidia.com/gpu.present: "true"
    nvidia.com/gpu.product: Fake-GPU
spec:
  taints:
  - {key: nvidia.com/gpu, value: present, effect: NoSchedule}
status:
  allocatable: {cpu: "16", memory: 64Gi, pods: "110", nvidia.com/gpu: "2"}
  capacity: {cpu: "16", memory: 64Gi, pods: "110", nvidia.com/gpu: "2"}
NODES

nodes_ready() {
  local out
  out="$("$KUBECTL" --kubeconfig="$STATE_DIR/kubeconfig" get nodes \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}')" || return 1
  [[ -n "$out" ]] && ! grep -qv '^True$' <<<"$out"
}
default_sa() { "$KUBECTL" --kubeconfig="$STATE_DIR/kubeconfig" -n default get serviceaccount default; }
wait_for "nodes Ready" "$TIMEOUT" nodes_ready
wait_for "default ServiceAccount" "$TIMEOUT" default_sa
log "cluster up in $((SECONDS - T0)) s"

if [[ $WITH_KEDA == 1 ]]; then "$CLUSTER_SCRIPTS/keda.sh" start; fi
UP_OK=1
print_info

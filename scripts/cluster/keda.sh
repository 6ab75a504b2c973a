#!/usr/bin/env bash
# Start/stop KEDA (operator, and the metrics adapter if it was built) as local processes against
# the cluster started by up.sh. KEDA's CRDs are applied from the KEDA module in the Go module
# cache (never copied into the repo).
#
# Usage: scripts/cluster/keda.sh start [--no-adapter] | stop | status | crd-dir
# start writes .cluster/keda.env (ports, namespace) and pids/keda-*.pid; logs in .cluster/logs.
# The adapter is registered as APIService v1beta1.external.metrics.k8s.io through an ExternalName
# Service (keda/keda-metrics-apiserver -> localhost:<port>); stop removes that APIService again
# (an unavailable aggregated API breaks namespace deletion and garbage collection).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
KEDA_NS="${KEDA_NAMESPACE:-keda}"

crd_dir() { echo "$(module_dir github.com/kedacore/keda/v2 "$KEDA_VERSION")/config/crd/bases"; }

kc() { "$(kubectl_bin)" --kubeconfig="$STATE_DIR/kubeconfig" "$@"; }

start() {
  local with_adapter=1
  [[ "${1:-}" == "--no-adapter" ]] && with_adapter=0
  cluster_alive || { log "cluster is not running (scripts/cluster/up.sh first)"; exit 1; }
  if pid_alive "$STATE_DIR/pids/keda-operator.pid"; then log "KEDA operator already running"; status; return; fi
  [[ -x "$BIN_DIR/keda-operator" ]] || "$CLUSTER_SCRIPTS/build.sh" --only keda
  # A failed start stops the KEDA processes it started (logs stay in .cluster/logs).
  KEDA_OK=0
  trap 'if [[ $KEDA_OK != 1 ]]; then log "KEDA start failed: stopping it"; stop >&2 || true; fi' EXIT
  local crds; crds="$(crd_dir)"
  log "applying KEDA CRDs from $crds"
  kc apply --server-side --force-conflicts -f "$crds" >/dev/null
  kc wait --for=condition=Established --timeout=60s -f "$crds" >/dev/null
  kc create namespace "$KEDA_NS" --dry-run=client -o yaml | kc apply -f - >/dev/null

  # Certificates: KEDA wants ca.crt/tls.crt/tls.key in its cert dir even with webhooks off (the
  # operator's gRPC metrics service and the adapter use them for mTLS).
  local certs="$STATE_DIR/keda-certs" PKI="$STATE_DIR/pki"
  mkdir -p "$certs"
  if [[ ! -f "$certs/tls.crt" ]]; then
    cp "$PKI/ca.crt" "$certs/ca.crt"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
      "extendedKeyUsage=serverAuth,clientAuth" \
      "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:keda-operator,DNS:keda-operator.$KEDA_NS.svc,DNS:keda-metrics-apiserver,DNS:keda-metrics-apiserver.$KEDA_NS,DNS:keda-metrics-apiserver.$KEDA_NS.svc,DNS:keda-metrics-apiserver.$KEDA_NS.svc.cluster.local" \
      >"$certs/ext.cnf"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -subj "/CN=keda-operator" -keyout "$certs/tls.key" -out "$certs/tls.csr" 2>/dev/null
    openssl x509 -req -sha256 -days 3650 -in "$certs/tls.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
      -CAcreateserial -extfile "$certs/ext.cnf" -out "$certs/tls.crt" 2>/dev/null
    rm -f "$certs/tls.csr" "$certs/ext.cnf"
    chmod 600 "$certs/tls.key"
  fi

  local METRICS_PORT PROBE_PORT GRPC_PORT ADAPTER_PORT ADAPTER_METRICS_PORT
  read -r METRICS_PORT PROBE_PORT GRPC_PORT ADAPTER_PORT ADAPTER_METRICS_PORT < <(free_ports 5)
  cat >"$STATE_DIR/keda.env" <<ENV
KEDA_NAMESPACE=$KEDA_NS
KEDA_CERT_DIR=$certs
KEDA_CRD_DIR=$crds
KEDA_METRICS_PORT=$METRICS_PORT
KEDA_PROBE_PORT=$PROBE_PORT
KEDA_GRPC_PORT=$GRPC_PORT
KEDA_ADAPTER_PORT=$ADAPTER_PORT
KEDA_ADAPTER_METRICS_PORT=$ADAPTER_METRICS_PORT
ENV
  log "starting keda-operator (health 127.0.0.1:$PROBE_PORT, gRPC 127.0.0.1:$GRPC_PORT)"
  start_proc keda-operator env KUBECONFIG="$STATE_DIR/kubeconfig" WATCH_NAMESPACE= \
    KEDA_CLUSTER_OBJECT_NAMESPACE="$KEDA_NS" POD_NAMESPACE="$KEDA_NS" \
    "$BIN_DIR/keda-operator" --leader-elect=false --cert-dir="$certs" --ca-dir="$certs" \
    --enable-cert-rotation=false --enable-webhook-patching=false --enable-apiservice-patching=false \
    --metrics-bind-address="127.0.0.1:$METRICS_PORT" --health-probe-bind-address="127.0.0.1:$PROBE_PORT" \
    --metrics-service-bind-address="127.0.0.1:$GRPC_PORT" \
    --zap-log-level=info --zap-encoder=console
  WAIT_PROC=keda-operator wait_for "keda-operator /readyz" 90 curl_ok "http://127.0.0.1:$PROBE_PORT/readyz"

  if [[ $with_adapter == 1 && -x "$BIN_DIR/keda-adapter" ]]; then
    log "starting keda-adapter on https://127.0.0.1:$ADAPTER_PORT"
    start_proc keda-adapter env KUBECONFIG="$STATE_DIR/kubeconfig" WATCH_NAMESPACE= \
      KEDA_CLUSTER_OBJECT_NAMESPACE="$KEDA_NS" POD_NAMESPACE="$KEDA_NS" \
      "$BIN_DIR/keda-adapter" --secure-port="$ADAPTER_PORT" --bind-address=127.0.0.1 \
      --tls-cert-file="$certs/tls.crt" --tls-private-key-file="$certs/tls.key" --cert-dir="$certs" \
      --client-ca-file="$certs/ca.crt" \
      --authentication-kubeconfig="$STATE_DIR/kubeconfig" --authorization-kubeconfig="$STATE_DIR/kubeconfig" \
      --lister-kubeconfig="$STATE_DIR/kubeconfig" \
      --metrics-service-address="127.0.0.1:$GRPC_PORT" \
      --port="$ADAPTER_METRICS_PORT" \
      --zap-log-level=info --zap-encoder=console
    WAIT_PROC=keda-adapter wait_for "keda-adapter /readyz" 90 curl_ok -k "https://127.0.0.1:$ADAPTER_PORT/readyz"
    kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: keda-metrics-apiserver, namespace: $KEDA_NS}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https, port: $ADAPTER_PORT, targetPort: $ADAPTER_PORT}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.external.metrics.k8s.io}
spec:
  service: {name: keda-metrics-apiserver, namespace: $KEDA_NS, port: $ADAPTER_PORT}
  group: external.metrics.k8s.io
  version: v1beta1
  caBundle: $(base64 -w0 "$certs/ca.crt")
  groupPriorityMinimum: 100
  versionPriority: 100
YAML
    wait_for "APIService v1beta1.external.metrics.k8s.io Available" 60 \
      kc wait --for=condition=Available --timeout=2s apiservice/v1beta1.external.metrics.k8s.io
  elif [[ $with_adapter == 1 ]]; then
    log "keda-adapter not built: only the operator runs (0 <-> 1 activation works, 1 -> N does not)"
  fi
  KEDA_OK=1
  status
}

stop() {
  if [[ -f "$STATE_DIR/kubeconfig" ]] && cluster_alive; then
    kc delete apiservice v1beta1.external.metrics.k8s.io --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  local n
  for n in keda-adapter keda-operator; do
    [[ -f "$STATE_DIR/pids/$n.pid" ]] && stop_proc "$STATE_DIR/pids/$n.pid"
  done
  rm -f "$STATE_DIR/keda.env"
}

status() {
  local n s
  for n in keda-operator keda-adapter; do
    if pid_alive "$STATE_DIR/pids/$n.pid"; then s="running (pid $(cat "$STATE_DIR/pids/$n.pid"))"; else s="not running"; fi
    echo "$n: $s (log: $STATE_DIR/logs/$n.log)"
  done
}

case "${1:-}" in
  start) shift; cluster_lock; start "$@" ;;
  stop) cluster_lock; stop ;;
  status) status ;;
  crd-dir) crd_dir ;;
  *) sed -n '2,11p' "$0"; exit 2 ;;
esac

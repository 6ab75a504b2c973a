#!/usr/bin/env bash
# Build the loopback Kubernetes toolchain from Go modules into
#   ~/.cache/detectflow/kube/<version-key>/bin
# (version key = hash of scripts/cluster/versions.env + Go version; see lib.sh).
# Idempotent: components whose binaries already exist are skipped.
#
# Usage: scripts/cluster/build.sh [--only kube|etcd|keda|kwok|helm[,..]] [--force] [--print-bin-dir]
#   --only   build only these components (may repeat, or comma-separate)
#   --force  rebuild even if the binaries exist
# Each step prints wall time and the peak RSS of the largest process (GNU time), plus the
# cache's disk use at the end.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_host_tools

ONLY=() FORCE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --only) IFS=, read -ra parts <<<"$2"; ONLY+=("${parts[@]}"); shift 2 ;;
    --only=*) IFS=, read -ra parts <<<"${1#--only=}"; ONLY+=("${parts[@]}"); shift ;;
    --force) FORCE=1; shift ;;
    --print-bin-dir) echo "$BIN_DIR"; exit 0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ ${#ONLY[@]} -gt 0 ]] || ONLY=(kube etcd kwok helm keda)

[[ -x "$GO" ]] || { log "Go toolchain not found at $GO (set GO=...)"; exit 1; }
gov="$("$GO" env GOVERSION)"; gov="${gov#go}"
if [[ "$(printf '%s\n' "$GO_MIN_VERSION" "$gov" | sort -V | head -1)" != "$GO_MIN_VERSION" ]]; then
  log "Go $gov is older than $GO_MIN_VERSION"; exit 1
fi
go_env
mkdir -p "$BIN_DIR" "$KUBE_CACHE/logs"
TIME=()
if [[ -x /usr/bin/time ]]; then TIME=(/usr/bin/time -f "%e s wall, %M KB peak RSS"); fi

have() { local b; for b in "$@"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done; }

# Regenerate a wrapper module if it does not pin the expected release.
ensure_wrapper() { # name module version
  local gomod="$REPO_ROOT/tools/$1/go.mod"
  if ! grep -Eq "^[[:space:]]*(require[[:space:]]+)?$2 $3( // indirect)?\$" "$gomod" 2>/dev/null; then
    log "tools/$1/go.mod does not pin $2 $3: regenerating"
    python3 "$CLUSTER_SCRIPTS/gen-wrapper.py" "$1"
  fi
}

run_timed() { # label cmd...
  local label="$1"; shift
  local logf="$KUBE_CACHE/logs/build-$label.log" t0=$SECONDS
  log "building $label ... (log: $logf)"
  if "${TIME[@]}" "$@" >"$logf" 2>&1; then
    log "built $label in $((SECONDS - t0)) s ($(tail -1 "$logf"))"
  else
    log "FAILED $label after $((SECONDS - t0)) s; last lines of $logf:"; tail -25 "$logf" >&2
    return 1
  fi
}

kube_ldflags() {
  local bd major minor p out="-s -w"
  bd="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  major="${KUBE_VERSION#v}"; major="${major%%.*}"
  minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    out+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
    out+=" -X $p.gitTreeState=clean -X $p.buildDate=$bd"
  done
  echo "$out"
}

build_kube() {
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  if [[ $FORCE == 0 ]] && have "${bins[@]}"; then log "kube: already built"; return; fi
  ensure_wrapper kube k8s.io/kubernetes "$KUBE_VERSION"
  local pkgs=() b
  for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  (cd "$REPO_ROOT/tools/kube" && run_timed kube "$GO" build -trimpath -ldflags "$(kube_ldflags)" -o "$BIN_DIR/" "${pkgs[@]}")
}

build_etcd() {
  if [[ $FORCE == 0 ]] && have etcd; then log "etcd: already built"; return; fi
  ensure_wrapper etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  (cd "$REPO_ROOT/tools/etcd" && run_timed etcd "$GO" build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd" go.etcd.io/etcd/server/v3)
}

build_keda() {
  ensure_wrapper keda github.com/kedacore/keda/v2 "$KEDA_VERSION"
  local ld="-s -w -X github.com/kedacore/keda/v2/version.Version=${KEDA_VERSION#v} -X github.com/kedacore/keda/v2/version.GitCommit=$KEDA_VERSION"
  cd "$REPO_ROOT/tools/keda"
  # Download the module so its CRDs (config/crd/bases) are in the module cache for up.sh/tests.
  "$GO" mod download github.com/kedacore/keda/v2
  if [[ $FORCE == 1 ]] || ! have keda-operator; then
    run_timed keda-operator "$GO" build -trimpath -ldflags "$ld" -o "$BIN_DIR/keda-operator" github.com/kedacore/keda/v2/cmd/operator
  else log "keda-operator: already built"; fi
  if [[ $FORCE == 1 ]] || { ! have keda-adapter && [[ ! -e "$BIN_DIR/.keda-adapter-failed" ]]; }; then
    if run_timed keda-adapter "$GO" build -trimpath -ldflags "$ld" -o "$BIN_DIR/keda-adapter" github.com/kedacore/keda/v2/cmd/adapter; then
      rm -f "$BIN_DIR/.keda-adapter-failed"
    else
      log "keda-adapter did not build (optional: 1 -> N scaling needs it); not retrying until --force"
      touch "$BIN_DIR/.keda-adapter-failed"
    fi
  else log "keda-adapter: already built (or known to fail)"; fi
  cd - >/dev/null
}

# kwok and helm have no replace directives: plain `go install pkg@version` into the bin dir.
build_kwok() {
  if [[ $FORCE == 0 ]] && have kwok; then log "kwok: already built"; return; fi
  local kv="${KUBE_VERSION#v}"
  GOFLAGS= GOBIN="$BIN_DIR" run_timed kwok "$GO" install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$kv" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

build_helm() {
  if [[ $FORCE == 0 ]] && have helm; then log "helm: already built"; return; fi
  local major="${KUBE_VERSION#v}" minor
  major="${major%%.*}"; minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  ld+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
  ld+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=$major -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
  GOFLAGS= GOBIN="$BIN_DIR" run_timed helm "$GO" install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
}

T0=$SECONDS
log "version key $(version_key) -> $BIN_DIR"
rc=0
for c in "${ONLY[@]}"; do
  case "$c" in
    kube|etcd|keda|kwok|helm) "build_$c" || rc=1 ;;
    *) log "unknown component $c"; rc=2 ;;
  esac
done
log "done in $((SECONDS - T0)) s; bin dir $(du -sh "$BIN_DIR" | cut -f1), Go module cache $(du -sh "$("$GO" env GOMODCACHE)" 2>/dev/null | cut -f1), Go build cache $(du -sh "$("$GO" env GOCACHE)" 2>/dev/null | cut -f1)"
ls -1 "$BIN_DIR" >&2
exit $rc

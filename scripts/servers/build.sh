#!/usr/bin/env bash
# Build the servers the test suite runs besides the cluster from their Go modules into
#   ~/.cache/detectflow/servers/<version-key>/bin
# (version key = hash of scripts/servers/versions.env + Go version), like scripts/cluster/build.sh.
# Idempotent: components whose binaries already exist are skipped.
#
# Usage: scripts/servers/build.sh [--only versitygw|prometheus|minio[,..]] [--force] [--print-bin-dir]
#   --only   build only these components (default: versitygw,prometheus; minio is the S3 candidate
#            that lost, built only on request to measure it)
#   --force  rebuild even if the binaries exist
# Each step prints wall time and the peak RSS of the largest process (GNU time), plus disk use.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="${GO:-/usr/local/go/bin/go}"
# shellcheck source=versions.env
source "$HERE/versions.env"
log() { echo "[servers/build.sh] $*" >&2; }

version_key() {
  {
    sed -e 's/#.*//' -e 's/[[:space:]]//g' "$HERE/versions.env" | grep = | sort
    echo "go=$("$GO" env GOVERSION)"
  } | sha256sum | cut -c1-12
}
CACHE="${DETECTFLOW_CACHE:-$HOME/.cache/detectflow}/servers/$(version_key)"
BIN_DIR="$CACHE/bin"

ONLY=() FORCE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --only) IFS=, read -ra parts <<<"$2"; ONLY+=("${parts[@]}"); shift 2 ;;
    --only=*) IFS=, read -ra parts <<<"${1#--only=}"; ONLY+=("${parts[@]}"); shift ;;
    --force) FORCE=1; shift ;;
    --print-bin-dir) echo "$BIN_DIR"; exit 0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[[ ${#ONLY[@]} -gt 0 ]] || ONLY=(versitygw prometheus)

[[ -x "$GO" ]] || { log "Go toolchain not found at $GO (set GO=...)"; exit 1; }
gov="$("$GO" env GOVERSION)"; gov="${gov#go}"
if [[ "$(printf '%s\n' "$GO_MIN_VERSION" "$gov" | sort -V | head -1)" != "$GO_MIN_VERSION" ]]; then
  log "Go $gov is older than $GO_MIN_VERSION"; exit 1
fi
# None of these releases has replace directives, so `go install pkg@version` builds them as published.
export GOWORK=off CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS= GOBIN="$BIN_DIR"
mkdir -p "$BIN_DIR" "$CACHE/logs"
TIME=()
if [[ -x /usr/bin/time ]]; then TIME=(/usr/bin/time -f "%e s wall, %M KB peak RSS"); fi

have() { local b; for b in "$@"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done; }

run_timed() { # label cmd...
  local label="$1"; shift
  local logf="$CACHE/logs/build-$label.log" t0=$SECONDS
  log "building $label ... (log: $logf)"
  if (cd / && "${TIME[@]}" "$@") >"$logf" 2>&1; then
    log "built $label in $((SECONDS - t0)) s ($(tail -1 "$logf"))"
  else
    log "FAILED $label after $((SECONDS - t0)) s; last lines of $logf:"; tail -25 "$logf" >&2
    return 1
  fi
}

build_versitygw() {
  if [[ $FORCE == 0 ]] && have versitygw; then log "versitygw: already built"; return; fi
  local ld="-s -w -X main.Version=$VERSITYGW_VERSION -X main.Build=$VERSITYGW_VERSION"
  run_timed versitygw "$GO" install -trimpath -ldflags "$ld" "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
}

build_minio() {
  if [[ $FORCE == 0 ]] && have minio; then log "minio: already built"; return; fi
  local ld="-s -w -X github.com/minio/minio/cmd.Version=$MINIO_VERSION -X github.com/minio/minio/cmd.ReleaseTag=DEVELOPMENT.$MINIO_VERSION"
  run_timed minio "$GO" install -trimpath -tags kqueue -ldflags "$ld" "github.com/minio/minio@$MINIO_VERSION"
}

build_prometheus() {
  if [[ $FORCE == 0 ]] && have prometheus promtool; then log "prometheus: already built"; return; fi
  local p=github.com/prometheus/common/version
  local ld="-s -w -X $p.Version=${PROMETHEUS_VERSION#v} -X $p.Revision=$PROMETHEUS_VERSION -X $p.Branch=release"
  ld+=" -X $p.BuildUser=detectflow -X $p.BuildDate=$(date -u +%Y%m%d-%H:%M:%S)"
  run_timed prometheus "$GO" install -trimpath -tags "$PROMETHEUS_TAGS" -ldflags "$ld" \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
}

T0=$SECONDS
log "version key $(version_key) -> $BIN_DIR"
rc=0
for c in "${ONLY[@]}"; do
  case "$c" in
    versitygw|minio|prometheus) "build_$c" || rc=1 ;;
    *) log "unknown component $c"; rc=2 ;;
  esac
done
log "done in $((SECONDS - T0)) s; bin dir $(du -sh "$BIN_DIR" | cut -f1), Go module cache $(du -sh "$("$GO" env GOMODCACHE)" 2>/dev/null | cut -f1), Go build cache $(du -sh "$("$GO" env GOCACHE)" 2>/dev/null | cut -f1)"
ls -1 "$BIN_DIR" >&2
exit $rc

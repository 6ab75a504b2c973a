# Shared helpers for scripts/cluster/*.sh (sourced, not executed).
# shellcheck shell=bash
CLUSTER_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$CLUSTER_SCRIPTS/../.." && pwd -P)"
GO="${GO:-/usr/local/go/bin/go}"
# shellcheck source=versions.env
source "$CLUSTER_SCRIPTS/versions.env"

# The cache key changes whenever any pinned version (or the Go toolchain) changes.
version_key() {
  {
    sed -e 's/#.*//' -e 's/[[:space:]]//g' "$CLUSTER_SCRIPTS/versions.env" | grep = | sort
    echo "go=$("$GO" env GOVERSION)"
  } | sha256sum | cut -c1-12
}
CACHE_ROOT="${DETECTFLOW_CACHE:-$HOME/.cache/detectflow}"
KUBE_CACHE="$CACHE_ROOT/kube/$(version_key)"
BIN_DIR="$KUBE_CACHE/bin"
STATE_DIR="$(realpath -m "${CLUSTER_STATE_DIR:-$REPO_ROOT/.cluster}")"

# One lock per state dir, shared with tests/support/cluster.py, serialises up/down/keda between
# processes. Children started with DETECTFLOW_CLUSTER_LOCK_HELD=1 do not lock again.
cluster_lock() {
  [[ "${DETECTFLOW_CLUSTER_LOCK_HELD:-}" == 1 ]] && return 0
  mkdir -p "$CACHE_ROOT"
  local key; key="$(printf %s "$STATE_DIR" | sha256sum | cut -c1-12)"
  exec 9>"$CACHE_ROOT/cluster-$key.lock"
  flock 9
  export DETECTFLOW_CLUSTER_LOCK_HELD=1
}

go_env() {
  export GOWORK=off CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
}
log() { echo "[$(basename "$0")] $*" >&2; }

# Commands the scripts need besides Go; installed with apt-get when missing (root, Debian).
ensure_host_tools() {
  local -A pkg=([openssl]=openssl [curl]=curl [flock]=util-linux [setsid]=util-linux
                [python3]=python3 [sha256sum]=coreutils [realpath]=coreutils [pgrep]=procps)
  local c missing=()
  for c in "${!pkg[@]}"; do command -v "$c" >/dev/null || missing+=("${pkg[$c]}"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing missing host tools: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    log "missing host tools (packages: ${missing[*]}); install them first"; return 1
  fi
}

# kubectl: the one we built, else the system one.
kubectl_bin() {
  if [[ -x "$BIN_DIR/kubectl" ]]; then echo "$BIN_DIR/kubectl"
  elif command -v kubectl >/dev/null; then command -v kubectl
  else log "no kubectl found"; return 1; fi
}

# N free TCP ports on 127.0.0.1 (space separated, distinct).
free_ports() {
  # Below the kernel's ephemeral range: the servers start one after another, and a port from that range
  # can be taken meanwhile as the local port of any outgoing connection (a keda-adapter once failed so).
  python3 - "$1" <<'PY'
import random, socket, sys
try:
    low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    low = 32768
socks = []
while len(socks) < int(sys.argv[1]):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", random.randrange(max(1024, low - 12000), low)))
    except OSError:  # in use: another
        s.close()
        continue
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

# Directory of a module version in the Go module cache (downloads it if needed).
module_dir() { # module version
  (cd / && GOWORK=off GOTOOLCHAIN=local GOFLAGS= "$GO" mod download -json "$1@$2") |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

curl_ok() { curl -fsS -o /dev/null --max-time 2 "$@"; }

wait_for() { # description timeout-seconds cmd...   (WAIT_PROC=name: fail fast if it dies)
  local what="$1" timeout="$2" t0=$SECONDS; shift 2
  until "$@" >/dev/null 2>&1; do
    if [[ -n "${WAIT_PROC:-}" ]] && ! pid_alive "$STATE_DIR/pids/$WAIT_PROC.pid"; then
      log "$WAIT_PROC died while waiting for $what; last lines of its log:"
      tail -15 "$STATE_DIR/logs/$WAIT_PROC.log" >&2; return 1
    fi
    if (( SECONDS - t0 >= timeout )); then
      log "timed out after ${timeout}s waiting for $what; see $STATE_DIR/logs"; return 1
    fi
    sleep 0.5
  done
  log "$what ok ($((SECONDS - t0)) s)"
}

# Start a daemon in its own session/process group (pid == pgid), logs to .cluster/logs/NAME.log.
start_proc() { # name cmd...
  local name="$1"; shift
  setsid "$@" >"$STATE_DIR/logs/$name.log" 2>&1 </dev/null 9>&- &
  echo $! >"$STATE_DIR/pids/$name.pid"
  sleep 0.2
  if ! kill -0 "$(cat "$STATE_DIR/pids/$name.pid")" 2>/dev/null; then
    log "$name exited at once; last lines of its log:"; tail -20 "$STATE_DIR/logs/$name.log" >&2; return 1
  fi
}

# A pid file's process is alive and still runs one of our binaries (guards against pid reuse).
pid_alive() { # pidfile
  local pid; pid="$(cat "$1" 2>/dev/null)" || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$(basename "$1" .pid)"
}

# The cluster started from $STATE_DIR is running and the apiserver answers.
cluster_alive() {
  [[ -f "$STATE_DIR/cluster.env" ]] || return 1
  local p
  for p in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
    pid_alive "$STATE_DIR/pids/$p.pid" || return 1
  done
  "$(kubectl_bin)" --kubeconfig="$STATE_DIR/kubeconfig" get --raw=/readyz >/dev/null 2>&1
}

# Stop a process group started by start_proc: TERM, wait, KILL; then verify none is left.
stop_proc() { # pidfile
  local pf="$1" name pid i
  name="$(basename "$pf" .pid)"; pid="$(cat "$pf" 2>/dev/null || true)"
  if [[ -z "$pid" ]]; then rm -f "$pf"; return 0; fi
  if group_alive "$pid"; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do group_alive "$pid" || break; sleep 0.1; done
    if group_alive "$pid"; then
      log "$name (pgid $pid) ignored SIGTERM: SIGKILL"
      kill -KILL -- "-$pid" 2>/dev/null || true
      for ((i = 0; i < 50; i++)); do group_alive "$pid" || break; sleep 0.1; done
    fi
  fi
  if group_alive "$pid"; then log "could not stop $name (pgid $pid)"; return 1; fi
  rm -f "$pf"
  log "stopped $name (pgid $pid)"
}
# Any process left in process group $1?
group_alive() { pgrep -g "$1" >/dev/null 2>&1 || pgrep -s "$1" >/dev/null 2>&1; }

#!/usr/bin/env bash
# Install Debian's chromium and chromium-driver (the headless browser of the browser tier) when missing.
# Needs root and apt-get; otherwise says what to install. Idempotent: a no-op once /usr/bin/chromium exists.
# Prints the wall time of the install and the disk it took.
set -euo pipefail
log() { echo "[install-browser.sh] $*" >&2; }
PACKAGES=(chromium chromium-driver)

missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
if [[ ${#missing[@]} -eq 0 ]]; then
  log "$(/usr/bin/chromium --version 2>/dev/null || echo chromium): already installed"; exit 0
fi
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
  log "missing ${missing[*]}: install the Debian packages '${PACKAGES[*]}' as root (apt-get install -y ${PACKAGES[*]})"
  exit 1
fi
t0=$SECONDS
installed() { dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Installed-Size}\n' | awk '$1 == "ii" {print $2, $3}' | sort; }
before=$(installed)
log "installing ${PACKAGES[*]} ..."
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
added=$(comm -13 <(echo "$before") <(installed))
log "installed $(/usr/bin/chromium --version 2>/dev/null) in $((SECONDS - t0)) s:" \
  "$(wc -l <<<"$added") packages, $(awk '{kb += $2} END {printf "%d", kb / 1024}' <<<"$added") MB installed size"

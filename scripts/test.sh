#!/usr/bin/env bash
# Run the test suite; "no tests collected" (pytest exit 5) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
.venv/bin/python -m pytest -p no:cacheprovider "${@:-tests}"
rc=$?
echo "test suite finished in $(( $(date +%s) - start )) s (exit $rc)"
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"

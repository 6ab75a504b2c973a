#!/usr/bin/env bash
# Run the test suite; "no tests collected" (pytest exit 5) is a failure.
# The fuzz tier (tests/fuzz) runs at a bounded size here; DETECTFLOW_FUZZ_SCHEMA_CASES, DETECTFLOW_FUZZ_MEDIA_CASES
# and DETECTFLOW_OVERLOAD_SECONDS scale it (`make fuzz`, `make overload`).
set -uo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
if [ $# -eq 0 ]; then  # the full run also checks for errors pytest would not see (unused imports, ...)
  .venv/bin/ruff check src tests bench || exit 1
fi
.venv/bin/python -m pytest -p no:cacheprovider "${@:-tests}"
rc=$?
echo "test suite finished in $(( $(date +%s) - start )) s (exit $rc)"
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi
exit "$rc"

#!/usr/bin/env bash
# Run the test suite (and ruff) after installing what it needs. Extra arguments go to pytest.
# pytest's exit code 5 ("no tests collected") is a failure here, never a success.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/tools/bootstrap.sh"
BIN="${MVD_VENV:-$ROOT/.venv}/bin"
cd "$ROOT"
"$BIN/ruff" check .
status=0
"$BIN/python" -m pytest "$@" || status=$?
if [ "$status" = 5 ]; then
    echo "pytest collected no tests: treating as a failure" >&2
    exit 1
fi
exit "$status"

#!/usr/bin/env bash
# Set up microad (see bootstrap.sh) and run the whole test suite. Extra
# arguments go to pytest. pytest exits with 5 when it collects no test, and
# `set -e` turns that into a failure of this script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/python -m pytest "$@"

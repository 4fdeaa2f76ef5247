#!/usr/bin/env bash
# Set up microad (see bootstrap.sh) and run the ReLU-layer walk-through,
# which writes its diagram to out/relu-layer.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/microad demo relu --output out

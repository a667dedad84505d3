#!/usr/bin/env bash
# Install everything and run the test suite (what CI runs through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export DVC_NO_ANALYTICS=1
.venv/bin/python -m pytest -q "$@"

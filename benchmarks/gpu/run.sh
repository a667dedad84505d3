#!/usr/bin/env bash
# The GPU check in one command (benchmarks/gpu/check.py has the list of figures).
#   bash benchmarks/gpu/run.sh             # on the GPU machine: about 4 minutes; writes
#                                          # benchmarks/results/gpu_<device>.json (and $OUT/ when set)
#   bash benchmarks/gpu/run.sh --dry-run   # here, on the CPU, tiny sizes (tests/test_gpu_kit.py)
# Before a device run, `bash benchmarks/gpu/fetch_wheels.sh` fills .whl/ with wheels and the CLIP
# vocabulary (carry it along): the wheels are installed into a throw-away folder on the device, never
# into its Python.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
if [ "${1:-}" != --dry-run ] && compgen -G ".whl/*.whl" >/dev/null; then
    site=$(mktemp -d /tmp/marssep-site.XXXXXX)
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -f .whl/bpe_simple_vocab_16e6.txt.gz ] && [ -z "${MARSSEP_CLIP_VOCAB:-}" ]; then
    export MARSSEP_CLIP_VOCAB="$PWD/.whl/bpe_simple_vocab_16e6.txt.gz"  # stages.py tokenizes class texts
fi
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1
"$python" benchmarks/gpu/check.py "$@"
if [ -n "${OUT:-}" ] && [ "${1:-}" != --dry-run ]; then
    cp benchmarks/results/gpu_*.json "$OUT"/
fi

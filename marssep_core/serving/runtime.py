"""onnxruntime sessions with an explicit execution provider, and a report of the one that ran.

``onnxruntime`` (CPU) and ``onnxruntime-gpu`` are the same Python package built twice; installing
both overwrites one with the other, so marssep depends on neither directly: the ``cpu`` extra
(installed by scripts/install.sh) or the ``gpu`` extra brings one. onnxruntime-gpu silently runs on
the CPU when the CUDA libraries do not load, so the provider a session actually got is read back
from the session and reported, never assumed.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")


class ProviderError(RuntimeError):
    """The requested device cannot be served by the installed onnxruntime."""


@functools.cache  # once per process: the both-builds warning is not repeated per session
def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise ProviderError(
            f"--backend onnx needs onnxruntime ({err}); install it with `pip install 'marssep[cpu]'` "
            "(or 'marssep[gpu]' for onnxruntime-gpu), or use --backend torch"
        ) from None
    builds = [name for name in ("onnxruntime", "onnxruntime-gpu") if _installed(name)]
    if len(builds) > 1:
        log.warning("both onnxruntime and onnxruntime-gpu are installed; they overwrite each other's files: "
                    "`pip uninstall -y onnxruntime onnxruntime-gpu` then install one of them")
    return onnxruntime


def _installed(distribution: str) -> bool:
    try:
        importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def requested_providers(device: str, available: list[str]) -> list[str]:
    """Providers to ask for, in order of preference, for ``device`` in auto|cpu|cuda."""
    if device not in DEVICES:
        raise ProviderError(f"--device must be one of {DEVICES}, got {device!r}")
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise ProviderError(
            f"--device cuda: this onnxruntime has no CUDA provider (available: {available}); "
            "install the gpu extra (onnxruntime-gpu) or use --device cpu"
        )
    return [CPU]


def open_session(path: Path, device: str = "auto", threads: int = 0, spinning: bool = False) -> Any:
    """An ``InferenceSession`` for ``path`` on ``device``; ``threads`` 0 lets onnxruntime choose.

    ``cuda`` that does not load is an error; ``auto`` falls back to the CPU with a warning.
    """
    ort = import_onnxruntime()
    wanted = requested_providers(device, ort.get_available_providers())
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # the arena keeps activation buffers between windows: without it the engine ran the two-U-Net
    # bundle at 149x real time instead of 230x; it costs 0.18 GiB more peak memory (docs/serving.md)
    options.enable_cpu_mem_arena = True
    # no busy-waiting between runs by default: the engine's STFT, iSTFT and overlap-add run on
    # torch's threads between two mask passes, and spinning threads slow them (measured both ways:
    # benchmarks/profile_serving.py, docs/serving.md)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3  # onnxruntime's own warnings (e.g. the CUDA fallback) are reported below
    session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    got = session.get_providers()[0]
    if wanted[0] == CUDA and got != CUDA:
        message = f"{path.name}: the CUDA provider did not load (CUDA/cuDNN libraries missing?); running on {got}"
        if device == "cuda":
            raise ProviderError(message)
        log.warning(message)
    return session


def provider_of(session: Any) -> str:
    """The execution provider that runs ``session`` (the first one it was given that loaded)."""
    return session.get_providers()[0]

"""General torch helpers that import nothing of the project but ``io_utils``, so every subpackage
may use them without pulling in another's code (and another stage's DVC deps).

Devices, the learning-rate schedule every trainer uses, and our self-describing ``torch.save``
files: written atomically, read back with ``weights_only=True``, every failure a ``CheckpointError``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from marssep_core.io_utils import write_bytes_atomic


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message names the file and keys."""


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but torch sees no CUDA GPU")
    return torch.device(device)


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU computes bf16 natively (``avx512_bf16`` or ``amx_bf16`` among the flags of
    ``cpuinfo``; False where the file cannot be read). oneDNN then runs bf16 convolutions at about
    twice the float32 speed; elsewhere they are emulated and slower than float32."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def autocast_dtype(device: torch.device, cuda_bf16: bool, cpu_bf16: bool) -> torch.dtype | None:
    """bf16 where it is asked for and pays (CUDA; a CPU with native bf16), else ``None`` (float32)."""
    if device.type == "cuda" and cuda_bf16:
        return torch.bfloat16
    if device.type == "cpu" and cpu_bf16 and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def warmup_cosine(steps: int, warmup: int) -> Callable[[int], float]:
    """Learning-rate factor for ``LambdaLR``: linear warmup, then cosine decay to 0 at ``steps``."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def save_torch_atomic(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` through memory, then an atomic write. Saving to a file would name the zip's
    root folder after the (random) temporary file and make identical weights hash differently."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def read_payload(path: str | Path, fmt: str, what: str) -> dict[str, Any]:
    """Load one of our ``torch.save`` dicts with ``weights_only=True`` and check its ``format``;
    every failure is a ``CheckpointError`` naming the file and the problem."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: {what} not found") from None
    except Exception as err:
        raise CheckpointError(f"{path}: not a loadable weights-only {what} ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path}: not a marssep {what} (format {fmt} expected)")
    return payload

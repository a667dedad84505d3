"""Our encoder checkpoints: weights plus the architecture, temperature and provenance.

Saved with ``torch.save`` as plain dicts/numbers/strings/tensors so ``torch.load(...,
weights_only=True)`` can read them; written atomically.
"""

from __future__ import annotations

import dataclasses
import io
import platform
from pathlib import Path
from typing import Any

import torch

from marssep_core import __version__
from marssep_core.encoders.checkpoint import CheckpointError
from marssep_core.encoders.imagebind import ImageBindConfig, ImageBindModel, TrunkSpec
from marssep_core.io_utils import write_bytes_atomic

FORMAT = "marssep-encoder-v1"


def save_encoder(path: Path, model: ImageBindModel, temperature: float, meta: dict[str, Any]) -> None:
    payload = {
        "format": FORMAT,
        "config": dataclasses.asdict(model.cfg),
        "temperature": float(temperature),
        "meta": {**meta, "marssep": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    save_torch_atomic(path, payload)


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


def load_encoder(path: Path) -> tuple[ImageBindModel, float, dict[str, Any]]:
    """Rebuild the model from a ``save_encoder`` file; returns ``(model, temperature, meta)``."""
    payload = read_payload(path, FORMAT, "encoder checkpoint")
    raw = dict(payload["config"])
    for modality in ("audio", "text", "vision"):
        raw[modality] = TrunkSpec(**raw[modality])
    model = ImageBindModel(ImageBindConfig(**raw))
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: missing {sorted(missing)[:10]}, unexpected {sorted(unexpected)[:10]}")
    return model, float(payload["temperature"]), dict(payload["meta"])



"""Our encoder checkpoints: weights plus the architecture, temperature and provenance.

Saved with ``torch.save`` as plain dicts/numbers/strings/tensors so ``torch.load(...,
weights_only=True)`` can read them; written atomically.
"""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path
from typing import Any

import torch

from marssep_core import __version__
from marssep_core.encoders.imagebind import ImageBindConfig, ImageBindModel, TrunkSpec
from marssep_core.torch_utils import CheckpointError, read_payload, save_torch_atomic

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



"""Loading encoder weights: the official ``imagebind_huge.pth`` layout or our own checkpoints.

Loading always uses ``torch.load(..., weights_only=True)``. Tensors of modalities the model does
not have (depth, thermal, imu) are skipped and reported; a missing tensor, an unexpected one or a
shape mismatch raises ``CheckpointError`` naming every offending key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from marssep_core.encoders.vocabulary import TOWERS
from marssep_core.torch_utils import CheckpointError

log = logging.getLogger(__name__)

_PREFIXES = ("modality_preprocessors", "modality_trunks", "modality_heads", "modality_postprocessors")


@dataclass
class LoadReport:
    loaded: int = 0
    skipped_modalities: dict[str, int] = field(default_factory=dict)  # modality -> tensors skipped


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely (``weights_only=True``); unwrap ``{"model"|"state_dict": ...}``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # pickle errors, truncated zip archives, non-tensor payloads
        raise CheckpointError(f"{path}: not a loadable weights-only checkpoint ({err})") from None
    for key in ("model", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a mapping of tensor names to tensors")
    return obj


def modality_of(key: str) -> str | None:
    """``modality_trunks.audio.blocks.0...`` -> ``audio``; ``None`` for keys outside the layout."""
    parts = key.split(".")
    return parts[1] if len(parts) > 2 and parts[0] in _PREFIXES else None


def load_imagebind_weights(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> LoadReport:
    """Copy ``state`` into ``model`` strictly for the model's modalities; report the rest."""
    report = LoadReport()
    kept: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        modality = modality_of(key)
        if modality is not None and modality not in TOWERS:
            report.skipped_modalities[modality] = report.skipped_modalities.get(modality, 0) + 1
        else:
            kept[key] = tensor
    expected = model.state_dict()
    missing = sorted(set(expected) - set(kept))
    unexpected = sorted(set(kept) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(kept[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(kept) & set(expected)
        if kept[k].shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        lines = [f"{source}: does not fit the model"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", mismatched)):
            if keys:
                shown = keys[:20] + ([f"... and {len(keys) - 20} more"] if len(keys) > 20 else [])
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(shown))
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(kept, strict=True, assign=any(p.is_meta for p in model.parameters()))
    report.loaded = len(kept)
    if report.skipped_modalities:
        log.info("%s: skipped tensors of modalities %s", source, report.skipped_modalities)
    return report


def load_imagebind_checkpoint(model: nn.Module, path: str | Path) -> LoadReport:
    """Load an ``imagebind_huge.pth``-layout file into ``model`` (see ``load_imagebind_weights``)."""
    return load_imagebind_weights(model, read_state_dict(path), source=str(path))

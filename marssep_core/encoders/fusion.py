"""Reward-anchor fusion of target-side embeddings: MLBP and its ablations.

MLBP (multimodal low-rank bilinear pooling):
``z* = normalize(P^T (tanh(U_a e_a) * tanh(U_t e_t) * tanh(U_v e_v)))``, a Hadamard product of
low-rank projections. A missing modality contributes a learned "absent" factor instead of its
projection, so any non-empty subset of {audio, text, vision} gives an anchor; a residual mean of
the present (normalised) inputs keeps the anchor in the encoder's embedding space from step one.
Alternatives for ablation: ``mean`` (normalised mean of present inputs), ``audio``, ``text``.

Shapes: each input ``(B, D)`` or ``None``; rows that lack a modality are marked in ``present``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from marssep_core.encoders.vocabulary import TOWERS, combine

FUSION_KINDS = ("mlbp", "mean", "audio", "text")


class MLBPFusion(nn.Module):
    """Low-rank bilinear pooling over audio, text and vision embeddings of size ``dim``."""

    def __init__(self, dim: int, rank: int = 256):
        super().__init__()
        self.project = nn.ModuleDict({m: nn.Linear(dim, rank) for m in TOWERS})
        self.absent = nn.ParameterDict({m: nn.Parameter(torch.ones(rank)) for m in TOWERS})
        self.out = nn.Linear(rank, dim, bias=False)
        nn.init.zeros_(self.out.weight)  # start as the plain mean, learn the bilinear part

    def forward(self, inputs: dict[str, torch.Tensor | None], present: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``inputs[m]`` ``(B, D)`` or ``None``; ``present[m]`` ``(B,)`` bool for rows that have it."""
        rows = _batch(inputs)
        product, total, count = None, 0.0, 0.0
        for m in TOWERS:
            value = inputs.get(m)
            if value is None:
                factor = self.absent[m].expand(rows, -1)
            else:
                has = _present(value, present, m)
                value = F.normalize(value, dim=-1)
                factor = torch.where(has[:, None], torch.tanh(self.project[m](value)), self.absent[m])
                total = total + value * has[:, None]
                count = count + has[:, None].float()
            product = factor if product is None else product * factor
        if isinstance(count, float) or (count == 0).any():
            raise ValueError("MLBP fusion needs at least one present modality per row")
        return F.normalize(total / count + self.out(product), dim=-1)


def fuse(kind: str, inputs: dict[str, torch.Tensor | None], mlbp: MLBPFusion | None = None) -> torch.Tensor:
    """The reward anchor for ``kind`` in ``FUSION_KINDS`` (``mlbp`` needs a trained module)."""
    if kind == "mlbp":
        if mlbp is None:
            raise ValueError("fusion 'mlbp' needs a trained MLBPFusion module")
        return mlbp(inputs)
    if kind == "mean":
        present = {m: v for m, v in inputs.items() if v is not None}
        if not present:
            raise ValueError("fusion 'mean' needs at least one modality")
        return combine(present)
    if kind in ("audio", "text"):
        if inputs.get(kind) is None:
            raise ValueError(f"fusion '{kind}' needs the {kind} embedding")
        return F.normalize(inputs[kind], dim=-1)
    raise ValueError(f"unknown fusion {kind!r}; choose one of {FUSION_KINDS}")


def _batch(inputs: dict[str, torch.Tensor | None]) -> int:
    for value in inputs.values():
        if value is not None:
            return value.shape[0]
    raise ValueError("fusion needs at least one modality")


def _present(value: torch.Tensor, present: dict[str, torch.Tensor] | None, m: str) -> torch.Tensor:
    if present is not None and m in present:
        return present[m].to(device=value.device, dtype=torch.bool)
    return torch.ones(value.shape[0], dtype=torch.bool, device=value.device)

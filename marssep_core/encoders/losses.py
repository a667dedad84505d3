"""Contrastive alignment losses as pure functions (inputs need not be normalised).

Shapes: embeddings ``(B, D)``; row ``i`` of ``a`` and row ``i`` of ``b`` are a positive pair.
``labels`` ``(B,)`` (optional) mark rows of the same class: they are not treated as negatives of
each other, which matters when a batch holds several clips of one class.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _positives(labels: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
    if labels is None:
        return torch.eye(batch, dtype=torch.bool, device=device)
    return labels[:, None] == labels[None, :]


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: torch.Tensor | float, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE: mean of the a->b and b->a cross-entropies over cosine logits / T.

    With ``labels``, same-class off-diagonal entries are masked out of the denominators, so only
    true negatives compete with the diagonal positive.
    """
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    same = _positives(labels, a.shape[0], a.device)
    off_diagonal_same = same & ~torch.eye(a.shape[0], dtype=torch.bool, device=a.device)
    logits = logits.masked_fill(off_diagonal_same, float("-inf"))
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def triplet(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Cosine triplet loss ``mean(relu(margin - cos(a, p) + cos(a, n)))``."""
    pos = F.cosine_similarity(anchor, positive, dim=-1)
    neg = F.cosine_similarity(anchor, negative, dim=-1)
    return F.relu(margin - pos + neg).mean()


def hardest_negatives(anchor: torch.Tensor, candidates: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """For each anchor row, the most similar candidate row of a *different* label ``(B, D)``."""
    sims = F.normalize(anchor, dim=-1) @ F.normalize(candidates, dim=-1).T
    sims = sims.masked_fill(labels[:, None] == labels[None, :], float("-inf"))
    return candidates[sims.argmax(dim=1)]


def consistency(current: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``mean(1 - cos(current, reference))``: keeps embeddings close to a frozen earlier stage."""
    return (1.0 - F.cosine_similarity(current, reference.detach(), dim=-1)).mean()

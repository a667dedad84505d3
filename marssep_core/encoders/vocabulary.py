"""The modality names and the one way embeddings of several modalities become a query.

Two name sets, each defined only here: the encoder's towers (ImageBind's names, also the keys of
its checkpoints and of the MLBP fusion) and the query kinds a user sends and every metric file
reports (a picture query is ``image``; ``omni`` is text, audio and image together).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

TOWERS = ("audio", "text", "vision")
QUERY_KINDS = ("text", "audio", "image", "omni")
# how a query of several modalities is weighted, everywhere one is built: `marssep separate`, the
# Python API and the evaluation's omni query (pictures and texts name the class; a reference clip
# also carries its recording's other sounds)
OMNI_WEIGHTS = {"image": 2.0, "text": 2.0, "audio": 1.0}


def combine(embeddings: dict[str, torch.Tensor], weights: dict[str, float] | None = None) -> torch.Tensor:
    """``normalize(sum_m w_m normalize(e_m))`` over the given ``(B, D)`` embeddings (``w_m`` 1 when
    ``weights`` leaves ``m`` out): the one way modality embeddings are combined into a query."""
    weights = weights or {}
    total = sum(weights.get(m, 1.0) * F.normalize(e, dim=-1) for m, e in embeddings.items())
    return F.normalize(total, dim=-1)

"""Query embeddings for separator training and evaluation, computed once per encoder.

The query bank holds unit-norm embeddings from the aligned encoder: every clean clip's audio
(whole clip, as the encoder's clip averaging sees it), every class text and every class picture.
Training then mixes queries without running the encoder in the loop:

- query-mixup (OmniSep): ``q = normalize(sum_m w_m normalize(e_m))`` with random convex weights
  over the modalities the item has (text always; audio: another clip of the class; vision: a
  picture of the class when it has one). With probability ``single_prob`` the weights are one-hot,
  so pure text, audio and image queries (what users and the evaluation send) are trained too;
- negative queries at inference: ``q (1 + a) - a normalize(q_neg)``, ``a = 0.5`` (then
  renormalised).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from marssep_core.torch_utils import read_payload, save_torch_atomic

FORMAT = "marssep-query-bank-v1"


@dataclass
class QueryBank:
    """Embeddings ``(N, D)`` keyed by clip id, class and picture path."""

    clip_ids: list[str]
    audio: torch.Tensor
    classes: list[str]
    texts: list[str]
    text: torch.Tensor
    image_paths: list[str]
    image_classes: list[str]
    image: torch.Tensor
    encoder: dict[str, str]

    def __post_init__(self) -> None:
        self._clip_row = {c: i for i, c in enumerate(self.clip_ids)}
        self._class_row = {c: i for i, c in enumerate(self.classes)}
        self._image_row = {p: i for i, p in enumerate(self.image_paths)}
        self._images_of: dict[str, list[int]] = {}
        for row, label in enumerate(self.image_classes):
            self._images_of.setdefault(label, []).append(row)

    @property
    def dim(self) -> int:
        return int(self.text.shape[1])

    def audio_of(self, clip_ids: list[str]) -> torch.Tensor:
        return self.audio[[self._clip_row[c] for c in clip_ids]]

    def text_of(self, classes: list[str]) -> torch.Tensor:
        return self.text[[self._class_row[c] for c in classes]]

    def image_of(self, paths: list[str]) -> torch.Tensor:
        return self.image[[self._image_row[p] for p in paths]]

    def picture_rows(self, label: str) -> list[int]:
        return self._images_of.get(label, [])

    def save(self, path: Path) -> None:
        payload = {"format": FORMAT, **{k: getattr(self, k) for k in self.__dataclass_fields__}}
        save_torch_atomic(path, payload)

    @classmethod
    def load(cls, path: Path) -> QueryBank:
        payload = read_payload(path, FORMAT, "query bank (made by `dvc repro embed_queries`)")
        payload.pop("format")
        return cls(**payload)


def negative_query(query: torch.Tensor, negative: torch.Tensor, strength: float = 0.5) -> torch.Tensor:
    """Steer away from ``negative``: ``normalize(q (1 + a) - a normalize(q_neg))``."""
    return F.normalize(query * (1.0 + strength) - strength * F.normalize(negative, dim=-1), dim=-1)


def mixup_queries(
    bank: QueryBank,
    target_classes: list[str],
    query_clips: list[str],
    rng: np.random.Generator,
    single_prob: float,
) -> torch.Tensor:
    """Training queries ``(B, D)``: random convex mixes of text, audio (``query_clips``) and a
    random picture of the class, one-hot with probability ``single_prob``."""
    text = bank.text_of(target_classes)
    audio = bank.audio_of(query_clips)
    rows = []
    for i, label in enumerate(target_classes):
        pictures = bank.picture_rows(label)
        parts = [text[i], audio[i]] + ([bank.image[pictures[rng.integers(len(pictures))]]] if pictures else [])
        if rng.random() < single_prob:
            weights = np.eye(len(parts))[rng.integers(len(parts))]
        else:
            weights = rng.dirichlet(np.ones(len(parts)))
        rows.append(sum(float(w) * p for w, p in zip(weights, parts)))
    return F.normalize(torch.stack(rows), dim=-1)


def perturb_queries(queries: torch.Tensor, noise: float, rng: np.random.Generator) -> torch.Tensor:
    """``normalize(q + noise * g)`` with ``g ~ N(0, I / D)`` (so ``|g|`` is about 1) for unit
    queries ``(B, D)``; ``noise == 0`` returns them unchanged (and draws nothing)."""
    if not noise:
        return queries
    gaussian = torch.from_numpy(rng.standard_normal(queries.shape).astype(np.float32)) / queries.shape[1] ** 0.5
    return F.normalize(queries + noise * gaussian, dim=-1)

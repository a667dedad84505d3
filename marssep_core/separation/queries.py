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
import pandas as pd
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
    audio_noise: list[float] | None = None,
) -> torch.Tensor:
    """Training queries ``(B, D)``: random convex mixes of text, audio (``query_clips``) and a
    random picture of the class, one-hot with probability ``single_prob``. ``audio_noise`` (one
    level per row, see ``perturb_queries``) is put on the audio embeddings before mixing."""
    text = bank.text_of(target_classes)
    audio = bank.audio_of(query_clips)
    if audio_noise is not None and any(audio_noise):
        audio = perturb_queries(audio, torch.tensor(audio_noise, dtype=torch.float32)[:, None], rng)
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


def perturb_queries(queries: torch.Tensor, noise: float | torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """``normalize(q + noise * g)`` with ``g ~ N(0, I / D)`` (so ``|g|`` is about 1) for unit
    queries ``(B, D)``; ``noise`` is a number or a per-row ``(B, 1)`` tensor; ``noise == 0``
    returns them unchanged (and draws nothing)."""
    if not torch.is_tensor(noise) and not noise:
        return queries
    gaussian = torch.from_numpy(rng.standard_normal(queries.shape).astype(np.float32)) / queries.shape[1] ** 0.5
    return F.normalize(queries + noise * gaussian, dim=-1)


def unseen_recording_noise(bank: QueryBank, clips: pd.DataFrame) -> dict[str, float]:
    """Per corpus, the query noise (``perturb_queries``) that takes training recordings' audio
    embeddings as far from their class text as unseen ones sit: the encoder aligned on the
    training clips, which end up much nearer their class text than recordings it never saw (the
    separator would otherwise learn audio queries that test recordings do not give). With ``c`` the
    mean cosine between a split's clip embeddings and their class text, ``noise = sqrt((c_train /
    c_val)^2 - 1)`` (0 when validation clips sit as near): for near-orthogonal noise the cosine
    falls by ``1 / sqrt(1 + noise^2)``. ``clips``: audio-bank index rows (``clip_id``, ``class``,
    ``corpus``, ``split``) of the train and val splits."""
    known = clips[clips["clip_id"].isin(bank.clip_ids)]
    cosine = (bank.audio_of(known["clip_id"].tolist()) * bank.text_of(known["class"].tolist())).sum(dim=1).numpy()
    means = pd.Series(cosine, index=known.index).groupby([known["corpus"], known["split"]]).mean()
    noise = {}
    for corpus in sorted(known["corpus"].unique()):
        train, val = means.get((corpus, "train")), means.get((corpus, "val"))
        if train is None or val is None or val <= 0:
            raise ValueError(f"corpus {corpus!r}: the query bank needs train and val clips, with val nearer its "
                             "class text than orthogonal, to calibrate the audio-query noise")
        noise[corpus] = float(np.sqrt(max(0.0, (train / val) ** 2 - 1.0)))
    return noise

"""Encoder training: tri-modal pretraining from scratch and the three-stage progressive alignment.

Pretraining trains everything with symmetric InfoNCE over the configured modality pairs; by
default, as ImageBind, only audio-vision and text-vision (images bind the modalities; audio-text
is emergent). Alignment (the paper's curriculum) freezes the backbones (preprocessors and
trunks) and trains only the projection heads and the temperature; each stage starts from the
previous stage's best checkpoint (selected on its validation metric):
- stage 1, audio-text: InfoNCE;
- stage 2, audio-audio: InfoNCE between two clips of a class + triplet with the hardest in-batch
  negative + consistency with the stage-1 embeddings, replaying the stage-1 loss;
- stage 3, audio-vision: InfoNCE + triplet, replaying stages 1 and 2.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from marssep_core.encoders import losses
from marssep_core.encoders.augment import FbankAugmentConfig
from marssep_core.encoders.data import Batch, EncoderData
from marssep_core.encoders.imagebind import ImageBindModel
from marssep_core.encoders.metrics import retrieval_metrics
from marssep_core.training.loop import LoopConfig, LoopResult, train_loop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderTrainConfig:
    """One training run (pretraining or one alignment stage): the loop's settings plus the losses'."""

    loop: LoopConfig = LoopConfig(steps=500, batch_size=48, lr=1e-3, warmup=50, eval_every=100)
    temperature: float = 0.07
    triplet_margin: float = 0.2
    consistency_weight: float = 1.0
    replay_weight: float = 0.5
    # pretraining pairs; ImageBind binds audio and text to images only, so audio-text
    # correspondence is emergent until alignment stage 1 trains it directly. text_text: InfoNCE
    # between two wordings of each row's class (needs text_wordings), which also trains the text
    # trunk on the classes without a picture, whose text no vision pair reaches
    pairs: tuple[str, ...] = ("audio_vision", "text_vision")
    # the rows the text_text pair uses: "all", or "pictureless" (the classes no vision pair reaches)
    text_text_rows: str = "all"
    # level, equaliser and SpecAugment masks on the training crops (off: encoders/augment.py)
    augment: FbankAugmentConfig = FbankAugmentConfig()
    # each row's text is one wording of its class drawn from encoders/phrasing.py (off: the
    # corpus's one text per class, which leaves typed wordings such as "dog" near the wrong class)
    text_wordings: bool = True


class Temperature(nn.Module):
    """A learnable softmax temperature, stored as its log."""

    def __init__(self, value: float):
        super().__init__()
        self.log_value = nn.Parameter(torch.tensor(math.log(value)))

    def forward(self) -> torch.Tensor:
        return self.log_value.exp().clamp(min=1e-3, max=1.0)


STAGE_METRIC = {"pretrain": "audio_image_r1", "stage1": "audio_text_r1", "stage2": "audio_audio_r1", "stage3": "audio_image_r1"}


def freeze_backbone(model: ImageBindModel) -> list[nn.Parameter]:
    """Freeze preprocessors and trunks; return the head parameters (the ones that train)."""
    for part in (model.modality_preprocessors, model.modality_trunks, model.modality_postprocessors):
        part.requires_grad_(False)
    model.modality_heads.requires_grad_(True)
    return list(model.modality_heads.parameters())


PRETRAIN_PAIRS = ("audio_text", "audio_vision", "text_vision", "text_text")


def pretrain_losses(model: ImageBindModel, batch: Batch, temperature: torch.Tensor, pairs: tuple[str, ...],
                    text_text_rows: str = "all") -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE for each requested pair (vision pairs use pictured rows only; ``text_text``
    pairs ``batch.text`` with ``batch.text_pair``, another wording of the class, on every row or,
    with ``text_text_rows="pictureless"``, on the rows without a picture)."""
    unknown = set(pairs) - set(PRETRAIN_PAIRS)
    if unknown or not pairs:
        raise ValueError(f"pretraining pairs must be a non-empty subset of {PRETRAIN_PAIRS}, got {pairs}")
    if text_text_rows not in ("all", "pictureless"):
        raise ValueError(f"text_text_rows must be 'all' or 'pictureless', got {text_text_rows!r}")
    audio = model.features("audio", batch.audio)
    out = {}
    if {"audio_text", "text_vision", "text_text"} & set(pairs):
        text = model.features("text", batch.text)
    if "audio_text" in pairs:
        out["audio_text"] = losses.info_nce(audio, text, temperature, batch.labels)
    if "text_text" in pairs:
        if batch.text_pair is None:
            raise ValueError("the text_text pair needs batches with a second wording per row (text_wordings: true)")
        rows = ~batch.has_image if text_text_rows == "pictureless" else torch.ones_like(batch.has_image)
        if rows.sum() >= 2:
            pair = model.features("text", batch.text_pair[rows])
            out["text_text"] = losses.info_nce(text[rows], pair, temperature, batch.labels[rows])
    has = batch.has_image
    if has.sum() >= 2 and ("audio_vision" in pairs or "text_vision" in pairs):
        vision = model.features("vision", batch.image[has])
        if "audio_vision" in pairs:
            out["audio_vision"] = losses.info_nce(audio[has], vision, temperature, batch.labels[has])
        if "text_vision" in pairs:
            out["text_vision"] = losses.info_nce(text[has], vision, temperature, batch.labels[has])
    if not out:  # no pictured rows in this batch: keep the graph alive with a zero loss
        out["empty"] = audio.sum() * 0.0
    return out


def draw_stage_batch(stage: str, data: EncoderData, rng: np.random.Generator, batch_size: int,
                     augment: FbankAugmentConfig | None = None, wordings: bool = False, wording_pairs: bool = False
                     ) -> tuple[Batch, torch.Tensor | None]:
    """One step's class-balanced train batch (CPU) and, for stages 2 and 3, a crop of another clip
    of each row's class ``(B, 1, M, T)``; ``augment`` applies to every audio crop, ``wordings``
    draws each row's text among its class's wordings (``wording_pairs``: two of them)."""
    batch = data.sample("train", batch_size, rng, augment=augment, wordings=wordings, wording_pairs=wording_pairs)
    other = data.sample_same_class("train", batch.labels, rng, augment=augment) if stage in ("stage2", "stage3") else None
    return batch, other


def stage_losses(
    stage: str,
    model: ImageBindModel,
    batch: Batch,
    other: torch.Tensor | None,
    before: torch.Tensor | None,
    temperature: torch.Tensor,
    cfg: EncoderTrainConfig,
) -> dict[str, torch.Tensor]:
    """The named loss terms of one step of ``stage``; their sum is minimised. ``before``: the
    stage-2 consistency target, the audio embeddings of the model the stage started from."""
    if stage == "pretrain":
        return pretrain_losses(model, batch, temperature, tuple(cfg.pairs), text_text_rows=cfg.text_text_rows)
    audio = model.features("audio", batch.audio)
    text = model.features("text", batch.text)
    out = {}
    stage1 = losses.info_nce(audio, text, temperature, batch.labels)
    if stage == "stage1":
        return {"audio_text": stage1}
    out["replay_audio_text"] = cfg.replay_weight * stage1
    if stage == "stage2":
        audio2 = model.features("audio", other)
        out["audio_audio"] = losses.info_nce(audio, audio2, temperature, batch.labels)
        negative = losses.hardest_negatives(audio, audio2, batch.labels)
        out["triplet"] = losses.triplet(audio, audio2, negative, cfg.triplet_margin)
        if before is not None:
            out["consistency"] = cfg.consistency_weight * losses.consistency(audio, before)
        return out
    if stage == "stage3":
        has = batch.has_image
        vision = model.features("vision", batch.image[has])
        out["audio_vision"] = losses.info_nce(audio[has], vision, temperature, batch.labels[has])
        negative = losses.hardest_negatives(audio[has], vision, batch.labels[has])
        out["triplet"] = losses.triplet(audio[has], vision, negative, cfg.triplet_margin)
        out["replay_audio_audio"] = cfg.replay_weight * losses.info_nce(
            audio, model.features("audio", other), temperature, batch.labels
        )
        return out
    raise ValueError(f"unknown stage {stage!r}")


class ContrastiveTrainee(nn.Module):
    """The encoder with its learnable temperature, trained (and checkpointed) together; ``forward``
    returns one step's loss terms, so DDP sees the whole step as one forward."""

    def __init__(self, encoder: ImageBindModel, temperature: float, stage: str, cfg: EncoderTrainConfig):
        super().__init__()
        self.encoder, self.temperature = encoder, Temperature(temperature)
        self.stage, self.cfg = stage, cfg

    def forward(self, batch: Batch, other: torch.Tensor | None, before: torch.Tensor | None
                ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The step's loss terms and the temperature they used."""
        temperature = self.temperature()
        terms = stage_losses(stage=self.stage, model=self.encoder, batch=batch, other=other, before=before,
                             temperature=temperature, cfg=self.cfg)
        return terms, temperature


class EncoderTask:
    """``Task`` of one encoder stage: class-balanced contrastive batches, validation retrieval.

    Pretraining trains everything; alignment trains the heads (the backbone is frozen and stays
    in eval mode: no stochastic depth) and the temperature, which is never weight-decayed or
    clipped. Stage 2's consistency target comes from a frozen copy of the starting model."""

    find_unused_parameters = True  # e.g. the vision head on a batch without pictures

    def __init__(self, stage: str, data: EncoderData, reference: ImageBindModel | None, augment: FbankAugmentConfig | None = None,
                 wordings: bool = False, wording_pairs: bool = False):
        self.stage, self.data, self.reference, self.augment, self.wordings = stage, data, reference, augment, wordings
        self.wording_pairs = wording_pairs
        self.metric = STAGE_METRIC[stage]

    def param_groups(self, trainee: ContrastiveTrainee) -> list[dict[str, Any]]:
        trained = [p for p in trainee.encoder.parameters() if p.requires_grad]
        return [{"params": trained}, {"params": list(trainee.temperature.parameters()), "weight_decay": 0.0, "clip": False}]

    def train_mode(self, trainee: ContrastiveTrainee) -> None:
        trainee.train()
        if self.stage != "pretrain":
            trainee.encoder.modality_trunks.eval()

    def draw(self, rng: np.random.Generator, batch_size: int) -> tuple[Batch, torch.Tensor | None]:
        return draw_stage_batch(self.stage, self.data, rng, batch_size, augment=self.augment, wordings=self.wordings,
                                wording_pairs=self.wording_pairs)

    def loss_on(self, trainee: nn.Module, drawn: tuple[Batch, torch.Tensor | None], device: torch.device
                ) -> tuple[torch.Tensor, dict[str, float]]:
        batch, other = drawn
        batch = Batch(**{f.name: None if getattr(batch, f.name) is None else getattr(batch, f.name).to(device)
                         for f in dataclasses.fields(batch)})
        other = other.to(device) if other is not None else None
        before = None
        if self.reference is not None:
            with torch.no_grad():
                before = self.reference.to(device).features("audio", batch.audio)
        terms, temperature = trainee(batch, other, before)
        return sum(terms.values()), {"temperature": temperature.item(), **{f"loss_{k}": v.item() for k, v in terms.items()}}

    def loss(self, trainee: nn.Module, rng: np.random.Generator, batch_size: int, device: torch.device
             ) -> tuple[torch.Tensor, dict[str, float]]:
        return self.loss_on(trainee, self.draw(rng, batch_size), device)

    def evaluate(self, trainee: ContrastiveTrainee) -> dict[str, float]:
        metrics = retrieval_metrics(trainee.encoder, self.data, "val")
        return {**metrics, self.metric: metrics.get(self.metric, 0.0)}


def train_encoder(
    stage: str, model: ImageBindModel, data: EncoderData, cfg: EncoderTrainConfig, run_dir: Path, fingerprint: str,
    temperature: float | None = None,
) -> tuple[ImageBindModel, float, LoopResult]:
    """Run ``stage`` (``pretrain`` or ``stage1..3``) through the training loop (resuming from
    ``run_dir`` after a crash); return the best model (on CPU), its temperature and the loop's
    result (history: losses every step, validation metrics every ``eval_every``)."""
    if stage not in STAGE_METRIC:
        raise ValueError(f"unknown stage {stage!r}")
    if stage == "pretrain":
        model.requires_grad_(True)
    else:
        freeze_backbone(model)
    reference = copy.deepcopy(model).eval().requires_grad_(False) if stage == "stage2" else None
    trainee = ContrastiveTrainee(model, temperature or cfg.temperature, stage, cfg)
    task = EncoderTask(stage, data, reference, augment=cfg.augment, wordings=cfg.text_wordings,
                       wording_pairs=stage == "pretrain" and "text_text" in cfg.pairs)
    result = train_loop(model=trainee, task=task, cfg=cfg.loop, run_dir=run_dir,
                        fingerprint=fingerprint, selection_metric=STAGE_METRIC[stage], desc=f"encoder {stage}")
    trainee.load_state_dict(result.best_state)
    trainee.cpu()
    return model, float(trainee.temperature().item()), result

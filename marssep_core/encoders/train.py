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
import logging
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from marssep_core.encoders import losses
from marssep_core.encoders.data import Batch, EncoderData
from marssep_core.encoders.imagebind import ImageBindModel
from marssep_core.encoders.metrics import retrieval_metrics
from marssep_core.torch_utils import warmup_cosine

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderTrainConfig:
    """One training run (pretraining or one alignment stage)."""

    steps: int = 500
    batch_size: int = 48
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 50
    grad_clip: float = 1.0
    eval_every: int = 100
    temperature: float = 0.07
    triplet_margin: float = 0.2
    consistency_weight: float = 1.0
    replay_weight: float = 0.5
    # pretraining pairs; ImageBind binds audio and text to images only, so audio-text
    # correspondence is emergent until alignment stage 1 trains it directly
    pairs: tuple[str, ...] = ("audio_vision", "text_vision")
    seed: int = 0


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


PRETRAIN_PAIRS = ("audio_text", "audio_vision", "text_vision")


def pretrain_losses(model: ImageBindModel, batch: Batch, temperature: torch.Tensor, pairs: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Symmetric InfoNCE for each requested modality pair (vision pairs use pictured rows only)."""
    unknown = set(pairs) - set(PRETRAIN_PAIRS)
    if unknown or not pairs:
        raise ValueError(f"pretraining pairs must be a non-empty subset of {PRETRAIN_PAIRS}, got {pairs}")
    audio = model.features("audio", batch.audio)
    out = {}
    if "audio_text" in pairs or "text_vision" in pairs:
        text = model.features("text", batch.text)
    if "audio_text" in pairs:
        out["audio_text"] = losses.info_nce(audio, text, temperature, batch.labels)
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


def stage_losses(
    stage: str,
    model: ImageBindModel,
    reference: ImageBindModel | None,
    data: EncoderData,
    rng: np.random.Generator,
    temperature: torch.Tensor,
    cfg: EncoderTrainConfig,
) -> dict[str, torch.Tensor]:
    """The named loss terms of one step of ``stage``; their sum is minimised."""
    batch = data.sample("train", cfg.batch_size, rng)
    if stage == "pretrain":
        return pretrain_losses(model, batch, temperature, tuple(cfg.pairs))
    audio = model.features("audio", batch.audio)
    text = model.features("text", batch.text)
    out = {}
    stage1 = losses.info_nce(audio, text, temperature, batch.labels)
    if stage == "stage1":
        return {"audio_text": stage1}
    out["replay_audio_text"] = cfg.replay_weight * stage1
    if stage == "stage2":
        other = data.sample_same_class("train", batch.labels, rng)
        audio2 = model.features("audio", other)
        out["audio_audio"] = losses.info_nce(audio, audio2, temperature, batch.labels)
        negative = losses.hardest_negatives(audio, audio2, batch.labels)
        out["triplet"] = losses.triplet(audio, audio2, negative, cfg.triplet_margin)
        if reference is not None:
            with torch.no_grad():
                before = reference.features("audio", batch.audio)
            out["consistency"] = cfg.consistency_weight * losses.consistency(audio, before)
        return out
    if stage == "stage3":
        has = batch.has_image
        vision = model.features("vision", batch.image[has])
        out["audio_vision"] = losses.info_nce(audio[has], vision, temperature, batch.labels[has])
        negative = losses.hardest_negatives(audio[has], vision, batch.labels[has])
        out["triplet"] = losses.triplet(audio[has], vision, negative, cfg.triplet_margin)
        other = data.sample_same_class("train", batch.labels, rng)
        out["replay_audio_audio"] = cfg.replay_weight * losses.info_nce(
            audio, model.features("audio", other), temperature, batch.labels
        )
        return out
    raise ValueError(f"unknown stage {stage!r}")


def train_encoder(
    stage: str, model: ImageBindModel, data: EncoderData, cfg: EncoderTrainConfig, temperature: float | None = None
) -> tuple[ImageBindModel, float, list[dict[str, float]]]:
    """Run ``stage`` (``pretrain`` or ``stage1..3``); return the best model, its temperature and
    the per-step history (losses, and validation metrics every ``eval_every`` steps)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    temp = Temperature(temperature or cfg.temperature)
    if stage == "pretrain":
        model.requires_grad_(True)
        params = list(model.parameters())
        reference = None
    else:
        params = freeze_backbone(model)
        reference = copy.deepcopy(model).eval() if stage == "stage2" else None
    optimizer = torch.optim.AdamW(
        [{"params": params, "weight_decay": cfg.weight_decay}, {"params": temp.parameters(), "weight_decay": 0.0}],
        lr=cfg.lr,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.steps, cfg.warmup))
    metric_name = STAGE_METRIC[stage]
    best = (-1.0, copy.deepcopy(model.state_dict()), temp().item())
    history: list[dict[str, float]] = []
    for step in tqdm(range(cfg.steps), desc=f"encoder {stage}", unit="step"):
        model.train()
        if stage != "pretrain":  # frozen backbones stay in eval mode (no stochastic depth)
            model.modality_trunks.eval()
        terms = stage_losses(stage=stage, model=model, reference=reference, data=data, rng=rng, temperature=temp(), cfg=cfg)
        loss = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        row = {"step": step + 1, "loss": loss.item(), "grad_norm": grad_norm.item(), "temperature": temp().item()}
        row.update({f"loss_{k}": v.item() for k, v in terms.items()})
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            metrics = retrieval_metrics(model, data, "val")
            row.update({f"val_{k}": v for k, v in metrics.items()})
            score = metrics.get(metric_name, 0.0)
            if score > best[0]:
                best = (score, copy.deepcopy(model.state_dict()), temp().item())
            log.info("%s step %d: loss %.4f, val %s %.4f", stage, step + 1, loss.item(), metric_name, score)
        history.append(row)
    model.load_state_dict(best[1])
    return model, best[2], history

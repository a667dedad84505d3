"""Encoder DVC stages as functions: pretrain, align (stage 1-3), fusion; plus their evaluation.

Every stage writes its checkpoint (``save_encoder``), a per-step CSV (DVC plots) and a metrics
JSON with validation retrieval R@1/R@5 for audio<->text, audio->audio, audio<->image, zero-shot
text->audio accuracy on the test split and the target-vs-mixture similarity gap on the fixed test
pairs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from marssep_core.encoders import losses
from marssep_core.encoders.checkpoint import load_imagebind_checkpoint
from marssep_core.encoders.data import EncoderData, open_data
from marssep_core.encoders.fusion import FUSION_KINDS, MLBPFusion, fuse
from marssep_core.encoders.imagebind import PRESETS, ImageBindModel
from marssep_core.encoders.metrics import (
    embed_audio,
    embed_images,
    embed_texts,
    retrieval_metrics,
    similarity_gap,
    zero_shot_accuracy,
)
from marssep_core.encoders.store import load_encoder, save_encoder
from marssep_core.encoders.train import EncoderTrainConfig, train_encoder
from marssep_core.io_utils import write_json_atomic, write_table_atomic
from marssep_core.torch_utils import save_torch_atomic


@dataclass(frozen=True)
class FusionTrainConfig:
    rank: int = 128
    steps: int = 400
    batch_size: int = 64
    lr: float = 3e-3
    modality_dropout: float = 0.3
    temperature: float = 0.07
    seed: int = 0


ALIGNMENT = EncoderTrainConfig(steps=200, batch_size=64, warmup=20, eval_every=50)


@dataclass(frozen=True)
class EncoderConfig:
    """``encoder`` params section: backbone, then one training config per stage."""

    backbone: str = "tiny"
    imagebind_checkpoint: str = ""  # a local imagebind_huge.pth (with backbone imagebind_huge)
    pretrain: EncoderTrainConfig = EncoderTrainConfig()
    # the alignment stages are shorter, with larger batches; each has its own seed
    stage1: EncoderTrainConfig = replace(ALIGNMENT, seed=1)
    stage2: EncoderTrainConfig = replace(ALIGNMENT, seed=2)
    stage3: EncoderTrainConfig = replace(ALIGNMENT, seed=3)
    fusion: FusionTrainConfig = FusionTrainConfig()


def evaluate_encoder(model: ImageBindModel, data: EncoderData, pairs: pd.DataFrame) -> dict[str, float]:
    """Validation retrieval, test zero-shot accuracy and the test-pair similarity gap."""
    return {**retrieval_metrics(model, data, "val"), **zero_shot_accuracy(model, data, "test"), **similarity_gap(model, data, pairs)}


def run_encoder_stage(
    stage: str,
    data: EncoderData,
    pairs: pd.DataFrame,
    cfg: EncoderTrainConfig,
    out_model: Path,
    out_history: Path,
    out_metrics: Path,
    start_from: Path | None = None,
    backbone: str = "tiny",
    imagebind_checkpoint: str = "",
) -> dict[str, Any]:
    """Train (or, for ``pretrain`` with an official checkpoint, load) and evaluate one stage."""
    torch.manual_seed(cfg.seed)
    temperature = None
    if start_from is not None:
        model, temperature, _ = load_encoder(start_from)
    else:
        model = ImageBindModel(PRESETS[backbone]())
    before: dict[str, float] | None = None
    if stage == "pretrain" and imagebind_checkpoint:
        load_imagebind_checkpoint(model, imagebind_checkpoint)
        history: list[dict[str, float]] = []
        temperature = cfg.temperature
    else:
        before = evaluate_encoder(model, data, pairs) if stage == "stage1" else None
        model, temperature, history = train_encoder(stage=stage, model=model, data=data, cfg=cfg, temperature=temperature)
    metrics = evaluate_encoder(model, data, pairs)
    report: dict[str, Any] = {"stage": stage, "temperature": round(float(temperature), 5), **metrics}
    if before is not None:
        report["before"] = before
    save_encoder(out_model, model, float(temperature), {"stage": stage, "backbone": backbone})
    write_table_atomic(out_history, pd.DataFrame(history) if history else pd.DataFrame({"step": []}))
    write_json_atomic(out_metrics, report)
    return report


def _fusion_inputs(model: ImageBindModel, data: EncoderData, split: str) -> dict[str, torch.Tensor]:
    clips = data.clips(split)
    audio = embed_audio(model, data, clips["clip_id"].tolist())
    text = embed_texts(model, data)
    images, image_labels = embed_images(model, data) if data.images else (None, torch.zeros(0, dtype=torch.long))
    vision = torch.zeros_like(text)
    has_vision = torch.zeros(len(data.classes), dtype=torch.bool)
    if images is not None:
        for label in image_labels.unique():
            vision[label] = F.normalize(images[image_labels == label].mean(0), dim=-1)
            has_vision[label] = True
    return {"audio": audio, "labels": data.labels_of(clips), "text": text, "vision": vision, "has_vision": has_vision}


def _query_audio(audio: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """For each clip, the embedding of another clip of its class (itself if it is the only one)."""
    picked = []
    for row, label in enumerate(labels.tolist()):
        same = torch.nonzero(labels == label).flatten().tolist()
        others = [i for i in same if i != row] or [row]
        picked.append(others[rng.integers(len(others))])
    return audio[torch.tensor(picked)]


def anchor_accuracy(kind: str, inputs: dict[str, torch.Tensor], fusion: MLBPFusion | None, seed: int = 0) -> float:
    """Class faithfulness of the reward anchor: build one anchor per class from a query clip of the
    class, its text and its picture (when it has one); score the class's *other* clips by nearest
    anchor. ``kind`` in ``FUSION_KINDS``."""
    rng = np.random.default_rng(seed)
    labels, audio = inputs["labels"], inputs["audio"]
    classes = labels.unique().tolist()
    anchors, query_rows = [], set()
    with torch.no_grad():
        for label in classes:
            rows = torch.nonzero(labels == label).flatten().tolist()
            query_row = rows[rng.integers(len(rows))]
            query_rows.add(query_row)
            parts = {
                "audio": audio[query_row][None],
                "text": inputs["text"][label][None],
                "vision": inputs["vision"][label][None] if inputs["has_vision"][label] else None,
            }
            anchors.append(fuse(kind, parts, fusion)[0])
        predicted = torch.tensor(classes)[(audio @ torch.stack(anchors).T).argmax(dim=1)]
    scored = torch.tensor([row not in query_rows for row in range(len(labels))])
    return round(float((predicted == labels)[scored].float().mean()), 4)


def run_fusion_stage(
    encoder_path: Path, data: EncoderData, cfg: FusionTrainConfig, out_model: Path, out_metrics: Path
) -> dict[str, Any]:
    """Train MLBP on frozen aligned embeddings and report anchor accuracy for every fusion kind."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model, _, _ = load_encoder(encoder_path)
    model.eval()
    train, val = _fusion_inputs(model, data, "train"), _fusion_inputs(model, data, "val")
    fusion = MLBPFusion(model.cfg.out_dim, cfg.rank)
    optimizer = torch.optim.AdamW(fusion.parameters(), lr=cfg.lr)
    labels = train["labels"]
    for _ in range(cfg.steps):
        rows = torch.from_numpy(rng.integers(0, len(labels), size=cfg.batch_size))
        query = _query_audio(train["audio"], labels, rng)[rows]
        batch_labels = labels[rows]
        keep = {m: torch.rand(len(rows)) >= cfg.modality_dropout for m in ("audio", "text", "vision")}
        keep["vision"] &= train["has_vision"][batch_labels]
        nothing = ~(keep["audio"] | keep["text"] | keep["vision"])
        keep["text"] |= nothing  # every row keeps at least one modality
        anchors = fusion(
            {"audio": query, "text": train["text"][batch_labels], "vision": train["vision"][batch_labels]},
            present=keep,
        )
        loss = losses.info_nce(anchors, train["audio"][rows], cfg.temperature, batch_labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    fusion.eval()
    report = {f"anchor_acc_{kind}": anchor_accuracy(kind, val, fusion) for kind in FUSION_KINDS}
    save_torch_atomic(
        out_model, {"format": "marssep-mlbp-v1", "dim": model.cfg.out_dim, "rank": cfg.rank, "state_dict": fusion.state_dict()}
    )
    write_json_atomic(out_metrics, report)
    return report


CHAIN = ("pretrain", "stage1", "stage2", "stage3")  # each alignment stage starts from the one before


def run_chain_stage(
    name: str, cfg: EncoderConfig, raw_dir: Path, bank_dir: Path, pairs_path: Path, models_dir: Path, metrics_dir: Path,
    align_metrics: Path,
) -> dict[str, Any]:
    """DVC stage ``name`` (one of ``CHAIN`` or ``fusion``) with the chain's file names: stage ``k``
    trains ``models_dir/<k>.pt`` from the previous stage's checkpoint; ``fusion`` trains MLBP on
    ``stage3.pt`` and gathers every stage's metrics with its own into ``align_metrics``."""
    data = open_data(raw_dir, bank_dir, PRESETS[cfg.backbone]().image_size)
    if name == "fusion":
        report = run_fusion_stage(encoder_path=models_dir / "stage3.pt", data=data, cfg=cfg.fusion,
                                  out_model=models_dir / "mlbp.pt", out_metrics=metrics_dir / "fusion.json")
        stages = {stage: json.loads((metrics_dir / f"{stage}.json").read_text()) for stage in CHAIN}
        write_json_atomic(align_metrics, {**stages, "fusion": report})
        return report
    if name not in CHAIN:
        raise ValueError(f"unknown encoder stage {name!r}; choose one of {[*CHAIN, 'fusion']}")
    position = CHAIN.index(name)
    return run_encoder_stage(
        stage=name,
        data=data,
        pairs=pd.read_csv(pairs_path),
        cfg=getattr(cfg, name),
        out_model=models_dir / f"{name}.pt",
        out_history=metrics_dir / f"{name}_history.csv",
        out_metrics=metrics_dir / f"{name}.json",
        start_from=models_dir / f"{CHAIN[position - 1]}.pt" if position else None,
        backbone=cfg.backbone,
        imagebind_checkpoint=cfg.imagebind_checkpoint,
    )

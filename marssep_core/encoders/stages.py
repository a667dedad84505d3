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

import pandas as pd
import torch

from marssep_core.encoders.checkpoint import load_imagebind_checkpoint
from marssep_core.encoders.data import EncoderData, open_data
from marssep_core.encoders.fusion_train import FusionTrainConfig, run_fusion_stage
from marssep_core.encoders.imagebind import PRESETS, ImageBindModel
from marssep_core.encoders.metrics import (
    retrieval_metrics,
    similarity_gap,
    zero_shot_accuracy,
)
from marssep_core.encoders.store import load_encoder, save_encoder
from marssep_core.encoders.train import EncoderTrainConfig, train_encoder
from marssep_core.io_utils import md5_file, write_json_atomic, write_table_atomic
from marssep_core.training.loop import LoopConfig, clear_run, fingerprint_of

# the alignment stages are shorter, with larger batches; each has its own seed
ALIGNMENT = LoopConfig(steps=200, batch_size=64, lr=1e-3, warmup=20, eval_every=50)


@dataclass(frozen=True)
class EncoderConfig:
    """``encoder`` params section: backbone, then one training config per stage."""

    backbone: str = "tiny"
    imagebind_checkpoint: str = ""  # a local imagebind_huge.pth (with backbone imagebind_huge)
    pretrain: EncoderTrainConfig = EncoderTrainConfig()
    stage1: EncoderTrainConfig = EncoderTrainConfig(loop=replace(ALIGNMENT, seed=1))
    stage2: EncoderTrainConfig = EncoderTrainConfig(loop=replace(ALIGNMENT, seed=2))
    stage3: EncoderTrainConfig = EncoderTrainConfig(loop=replace(ALIGNMENT, seed=3))
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
    run_dir: Path,
    start_from: Path | None = None,
    backbone: str = "tiny",
    imagebind_checkpoint: str = "",
) -> dict[str, Any] | None:
    """Train (or, for ``pretrain`` with an official checkpoint, load) and evaluate one stage;
    a killed run resumes from ``run_dir``. Returns the report on rank 0, ``None`` on other DDP ranks."""
    torch.manual_seed(cfg.loop.seed)
    temperature = None
    if start_from is not None:
        model, temperature, _ = load_encoder(start_from)
    else:
        model = ImageBindModel(PRESETS[backbone]())
    before: dict[str, float] | None = None
    training: dict[str, Any] = {}  # facts of the run: the kept step, DDP processes and their agreement
    if stage == "pretrain" and imagebind_checkpoint:
        load_imagebind_checkpoint(model, imagebind_checkpoint)
        history: list[dict[str, float]] = []
        temperature = cfg.temperature
    else:
        before = evaluate_encoder(model, data, pairs) if stage == "stage1" else None
        fingerprint = fingerprint_of(stage, backbone, cfg, md5_file(start_from) if start_from else "scratch")
        model, temperature, result = train_encoder(stage=stage, model=model, data=data, cfg=cfg, run_dir=run_dir,
                                                   fingerprint=fingerprint, temperature=temperature)
        if not result.dist.is_main:
            return None
        history = result.history
        training = {"best_step": result.best_step, "processes": result.dist.world_size,
                    "replicas_identical": len(set(result.replica_digests)) == 1}
    metrics = evaluate_encoder(model, data, pairs)
    report: dict[str, Any] = {"stage": stage, "temperature": round(float(temperature), 5), **metrics, **training}
    if before is not None:
        report["before"] = before
    save_encoder(out_model, model, float(temperature), {"stage": stage, "backbone": backbone})
    write_table_atomic(out_history, pd.DataFrame(history) if history else pd.DataFrame({"step": []}))
    write_json_atomic(out_metrics, report)
    clear_run(run_dir)
    return report


CHAIN = ("pretrain", "stage1", "stage2", "stage3")  # each alignment stage starts from the one before


def run_chain_stage(
    name: str, cfg: EncoderConfig, raw_dir: Path, bank_dir: Path, pairs_path: Path, models_dir: Path, metrics_dir: Path,
    align_metrics: Path, runs_dir: Path,
) -> dict[str, Any] | None:
    """DVC stage ``name`` (one of ``CHAIN`` or ``fusion``) with the chain's file names: stage ``k``
    trains ``models_dir/<k>.pt`` from the previous stage's checkpoint; ``fusion`` trains MLBP on
    ``stage3.pt`` and gathers every stage's metrics with its own into ``align_metrics``. Resume
    checkpoints live in ``runs_dir/<name>``."""
    data = open_data(raw_dir, bank_dir, PRESETS[cfg.backbone]().image_size)
    if name == "fusion":
        report = run_fusion_stage(encoder_path=models_dir / "stage3.pt", data=data, cfg=cfg.fusion,
                                  out_model=models_dir / "mlbp.pt", out_metrics=metrics_dir / "fusion.json",
                                  run_dir=runs_dir / name)
        if report is None:
            return None
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
        run_dir=runs_dir / name,
        start_from=models_dir / f"{CHAIN[position - 1]}.pt" if position else None,
        backbone=cfg.backbone,
        imagebind_checkpoint=cfg.imagebind_checkpoint,
    )

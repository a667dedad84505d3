"""The GPU check's ``stages_on_device`` section: every torch stage besides the separator's and RL's
training on the device, through the project's own stage code.

- encoder pretraining and alignment stage 2 (the frozen-trunk path with its reference model),
  MLBP fusion and the judge, each through ``train_loop`` with ``loop.device`` set to the device;
- the inference stages on the device against the same weights on the CPU: the query bank
  (``embed_queries``), the judge's embeddings and the separator's estimates (``evaluate``).

Inputs are generated (``fixtures.synthetic_bank`` plus class texts and coloured pictures written to
a temporary raw folder), so only code paths, finiteness, speed and device/CPU agreement mean
anything here. Agreement is within 5e-3: cuDNN runs float32 convolutions in TF32 by default.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import fixtures
import numpy as np
import pandas as pd
import torch
from PIL import Image

from marssep_core.config import AudioConfig
from marssep_core.data.audio_bank import AudioBank
from marssep_core.encoders.data import EncoderData
from marssep_core.encoders.fusion_train import FusionTrainConfig, run_fusion_stage
from marssep_core.encoders.imagebind import ImageBindModel, tiny
from marssep_core.encoders.store import save_encoder
from marssep_core.encoders.tokenizer import ClipTokenizer
from marssep_core.encoders.train import EncoderTrainConfig, train_encoder
from marssep_core.evaluation.judge_train import JudgeConfig, JudgeModelParams, JudgeTrainParams, train_judge
from marssep_core.separation.embed_queries import build_query_bank
from marssep_core.separation.evaluate import separate_batch
from marssep_core.separation.stages import UNetParams, build_separator
from marssep_core.training.loop import LoopConfig

TOLERANCE = 5e-3


def _with_test_split(bank: AudioBank) -> AudioBank:
    """The synthetic bank with each class's last train clip moved to ``test`` (the judge reports
    test accuracy; validation keeps two clips per class, which audio->audio retrieval and the
    anchor accuracy need)."""
    index = bank.index.copy()
    last_train = index[index["split"] == "train"].groupby("class").tail(1).index
    index.loc[last_train, "split"] = "test"
    return dataclasses.replace(bank, index=index)


def synthetic_raw(bank: AudioBank, out: Path) -> Path:
    """``classes.csv``, ``images.csv`` and one flat-coloured picture per class of ``bank``."""
    classes = sorted(bank.index["class"].unique())
    corpus = dict(zip(bank.index["class"], bank.index["corpus"]))
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, label in enumerate(classes):
        Image.new("RGB", (32, 32), (40 * i % 256, 90 * i % 256, 150 * i % 256)).save(out / "images" / f"{label}.png")
        rows.append({"image_id": label, "class": label, "path": f"images/{label}.png"})
    pd.DataFrame({"class": classes, "corpus": [corpus[c] for c in classes], "text": [f"a {c} sound" for c in classes],
                  "n_images": 1}).to_csv(out / "classes.csv", index=False)
    pd.DataFrame(rows).to_csv(out / "images.csv", index=False)
    return out


def _max_abs(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def _loop(device: torch.device, steps: int, batch: int) -> LoopConfig:
    return LoopConfig(steps=steps, batch_size=batch, warmup=1, eval_every=steps, checkpoint_every=steps, device=device.type)


def _trained(result: Any, started: float, steps: int) -> dict[str, Any]:
    losses = [row["loss"] for row in result.history]
    return {"losses_finite": bool(np.all(np.isfinite(losses))), "first_loss": losses[0], "last_loss": losses[-1],
            "seconds_per_step": round((time.perf_counter() - started) / steps, 4), "best_score": result.best_score}


def stages_on_device(device: torch.device, dry_run: bool) -> dict[str, Any]:
    """Train each stage for a few steps on ``device`` and compare the inference stages (an
    untrained default-profile separator, a tiny one in the dry run) with the CPU."""
    steps, batch = (3, 4) if dry_run else (20, 32)
    bank = _with_test_split(fixtures.synthetic_bank(rate=16000, seconds=2.5, clips_per_class=3 if dry_run else 7))
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        raw = synthetic_raw(bank, work / "raw")
        data = EncoderData(bank, raw, ClipTokenizer(), tiny().image_size)
        torch.manual_seed(0)
        model = ImageBindModel(tiny())
        for stage in ("pretrain", "stage2"):
            started = time.perf_counter()
            model, temperature, result = train_encoder(
                stage=stage, model=model, data=data, cfg=EncoderTrainConfig(loop=_loop(device, steps, batch)),
                run_dir=work / "runs" / stage, fingerprint="gpu-check", temperature=None,
            )
            out[f"encoder_{stage}"] = _trained(result, started, steps)
        encoder_path = work / "stage3.pt"
        save_encoder(encoder_path, model, temperature, {"stage": "stage3"})

        started = time.perf_counter()
        fusion = run_fusion_stage(encoder_path=encoder_path, data=data,
                                  cfg=FusionTrainConfig(loop=_loop(device, steps, batch)),
                                  out_model=work / "mlbp.pt", out_metrics=work / "fusion.json", run_dir=work / "runs" / "fusion")
        out["fusion"] = {"anchor_acc_mlbp": fusion["anchor_acc_mlbp"], "seconds": round(time.perf_counter() - started, 2)}

        classes = sorted(bank.index["class"].unique())
        judge_cfg = JudgeConfig(model=JudgeModelParams(channels=(8, 16), embed_dim=16),
                                train=JudgeTrainParams(crop_seconds=1.0, loop=_loop(device, steps, batch)))
        started = time.perf_counter()
        judge, facts = train_judge(cfg=judge_cfg, bank=bank, classes=classes, texts=[f"a {c} sound" for c in classes],
                                   run_dir=work / "runs" / "judge")
        losses = [row["loss"] for row in facts["history"]]
        out["judge"] = {"losses_finite": bool(np.all(np.isfinite(losses))), "val_macro": facts["val"]["macro"],
                        "seconds_per_step": round((time.perf_counter() - started) / steps, 4)}

        # inference stages: the same weights on the device and on the CPU
        waves = np.stack([bank.crop(c, 16000, 0) for c in bank.index["clip_id"][:8]])
        on_cpu = judge.embed_audio(waves, bank.sample_rate)
        judge.net.to(device)
        out["judge"]["embedding_max_abs_diff"] = _max_abs(judge.embed_audio(waves, bank.sample_rate), on_cpu)

        cpu_bank = build_query_bank(model.cpu(), data, raw, encoder_path, batch=batch)
        device_bank = build_query_bank(model.to(device), data, raw, encoder_path, batch=batch)
        out["query_bank_max_abs_diff"] = max(_max_abs(getattr(device_bank, m), getattr(cpu_bank, m)) for m in ("audio", "text", "image"))

        queries = fixtures.synthetic_queries(bank, tiny().out_dim)
        unet = UNetParams(warp_bins=32, downs=3, channels=4, mask_channels=4) if dry_run else UNetParams()
        separator = build_separator(unet, AudioConfig(), queries.dim)
        mixture = np.stack([bank.crop(c, 16000, 0) for c in bank.index["clip_id"][:4]]).astype(np.float32)
        query = queries.text[: len(mixture)]
        cpu_estimate = separate_batch(separator.cpu(), mixture, query, batch=2)
        out["separator_estimate_max_abs_diff"] = _max_abs(separate_batch(separator.to(device), mixture, query, batch=2), cpu_estimate)
    out["tolerance"] = TOLERANCE
    out["all_ok"] = bool(
        all(out[k]["losses_finite"] for k in ("encoder_pretrain", "encoder_stage2", "judge"))
        and out["judge"]["embedding_max_abs_diff"] <= TOLERANCE
        and out["query_bank_max_abs_diff"] <= TOLERANCE
        and out["separator_estimate_max_abs_diff"] <= TOLERANCE
    )
    return out


"""DVC stage ``train_judge``: train the independent semantic judge on the clean+ train split.

Batches are class-balanced random crops; half of them carry a faint residual of another class's
clip (``residual_db`` below the target) so the judge reads separated outputs, which keep some
interference, by their dominant source. The checkpoint with the best validation accuracy
(averaged over corpora, so the small everyday corpus weighs as much as the instruments) is kept;
its accuracy on whole clean test clips is reported per corpus.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from marssep_core.audio.mixing import crop_or_pad
from marssep_core.data.audio_bank import AudioBank, load_audio_bank
from marssep_core.evaluation.judge import JudgeNet, JudgeNetConfig, TrainedJudge, save_judge
from marssep_core.io_utils import write_json_atomic
from marssep_core.training.loop import LoopConfig, clear_run, fingerprint_of, train_loop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JudgeModelParams:
    """The ``model`` block of ``judge`` (``JudgeNetConfig`` minus what the data fixes)."""

    n_mels: int = 64
    channels: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 128
    dropout: float = 0.2


@dataclass(frozen=True)
class JudgeTrainParams:
    """The ``train`` block of ``judge``: the training crops, then the loop's settings."""

    crop_seconds: float = 3.0
    residual_prob: float = 0.5
    residual_db: tuple[float, float] = (10.0, 25.0)
    # seed 7: the encoder stages use seeds 0-3
    loop: LoopConfig = LoopConfig(steps=800, batch_size=48, lr=0.003, weight_decay=0.01, warmup=50, eval_every=100, seed=7)


@dataclass(frozen=True)
class JudgeConfig:
    """``judge`` params section."""

    model: JudgeModelParams = JudgeModelParams()
    train: JudgeTrainParams = JudgeTrainParams()


def _class_vocabulary(raw_dir: Path, bank: AudioBank) -> tuple[list[str], list[str]]:
    classes = pd.read_csv(raw_dir / "classes.csv", keep_default_na=False)
    present = set(bank.index["class"])
    classes = classes[classes["class"].isin(present)].sort_values("class")
    return classes["class"].tolist(), classes["text"].tolist()


class CropSampler:
    """Class-balanced training crops ``(B, samples)`` with labels ``(B,)``."""

    def __init__(self, bank: AudioBank, classes: list[str], cfg: JudgeTrainParams):
        self.bank, self.cfg = bank, cfg
        train = bank.split("train")
        self.by_class = [train.loc[train["class"] == c, "clip_id"].to_numpy() for c in classes]
        if any(len(clips) == 0 for clips in self.by_class):
            empty = [c for c, clips in zip(classes, self.by_class) if len(clips) == 0]
            raise ValueError(f"classes without train clips: {empty}")
        self.length = int(round(cfg.crop_seconds * bank.sample_rate))

    def _crop(self, clip_id: str, rng: np.random.Generator) -> np.ndarray:
        wave = self.bank.clip(clip_id)
        start = int(rng.integers(0, max(1, wave.shape[0] - self.length + 1)))
        return crop_or_pad(wave, self.length, start)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        labels = rng.integers(0, len(self.by_class), batch_size)
        waves = []
        for label in labels:
            wave = self._crop(str(rng.choice(self.by_class[label])), rng)
            if rng.random() < self.cfg.residual_prob:
                other = int(rng.choice([c for c in range(len(self.by_class)) if c != label]))
                residual = self._crop(str(rng.choice(self.by_class[other])), rng)
                gap_db = rng.uniform(*self.cfg.residual_db)
                scale = np.sqrt(np.mean(wave**2) / (np.mean(residual**2) + 1e-12)) * 10 ** (-gap_db / 20)
                wave = wave + scale * residual
            waves.append(wave * 10 ** (rng.uniform(-6, 6) / 20))
        return torch.from_numpy(np.stack(waves).astype(np.float32)), torch.from_numpy(labels)


@torch.no_grad()
def clip_accuracy(judge: TrainedJudge, bank: AudioBank, split: str) -> dict[str, float]:
    """Top-1 accuracy of the judge on whole clips of ``split``: overall, per corpus, and their
    mean (``macro``)."""
    clips = bank.split(split)
    index = {c: i for i, c in enumerate(judge.classes)}
    prototypes = judge.class_embeddings()
    hits = []
    for clip_id in clips["clip_id"]:
        embedding = judge.embed_audio(bank.clip(clip_id)[None], bank.sample_rate)
        hits.append(int((embedding @ prototypes.T).argmax()))
    correct = np.array(hits) == clips["class"].map(index).to_numpy()
    by_corpus = pd.Series(correct, index=clips["corpus"].to_numpy()).groupby(level=0).mean()
    result = {"all": float(correct.mean())} | {str(k): float(v) for k, v in by_corpus.items()}
    result["macro"] = float(by_corpus.mean())
    return {k: round(v, 4) for k, v in result.items()}


class JudgeTask:
    """``Task`` of the judge: cross-entropy on class-balanced crops; validation clip accuracy."""

    def __init__(self, sampler: CropSampler, bank: AudioBank, classes: list[str], texts: list[str]):
        self.sampler, self.bank, self.classes, self.texts = sampler, bank, classes, texts

    def draw(self, rng: np.random.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.sampler.sample(batch_size, rng)

    def loss_on(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device
                ) -> tuple[torch.Tensor, dict[str, float]]:
        waves, labels = batch
        return F.cross_entropy(model(waves.to(device))[1].float(), labels.to(device)), {}

    def loss(self, model: nn.Module, rng: np.random.Generator, batch_size: int, device: torch.device
             ) -> tuple[torch.Tensor, dict[str, float]]:
        return self.loss_on(model, self.draw(rng, batch_size), device)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return clip_accuracy(TrainedJudge(model, self.classes, self.texts), self.bank, "val")


def train_judge(cfg: JudgeConfig, bank: AudioBank, classes: list[str], texts: list[str], run_dir: Path
                ) -> tuple[TrainedJudge, dict[str, Any]] | None:
    """Train on ``train`` (resuming from ``run_dir``), select on ``val`` (macro accuracy); returns
    the best judge (CPU) and the training facts on rank 0, ``None`` on other DDP ranks."""
    torch.manual_seed(cfg.train.loop.seed)
    net = JudgeNet(JudgeNetConfig(sample_rate=bank.sample_rate, n_classes=len(classes), n_mels=cfg.model.n_mels,
                                  channels=tuple(cfg.model.channels), embed_dim=cfg.model.embed_dim, dropout=cfg.model.dropout))
    task = JudgeTask(CropSampler(bank, classes, cfg.train), bank, classes, texts)
    started = time.monotonic()
    result = train_loop(model=net, task=task, cfg=cfg.train.loop, run_dir=run_dir, fingerprint=fingerprint_of(cfg, classes, texts),
                        selection_metric="macro", desc="judge")
    if not result.dist.is_main:
        return None
    net.load_state_dict(result.best_state)
    judge = TrainedJudge(net.cpu().eval(), classes, texts)
    facts = {"best_step": result.best_step, "val": clip_accuracy(judge, bank, "val"), "test": clip_accuracy(judge, bank, "test"),
             "classes": len(classes), "parameters": sum(p.numel() for p in net.parameters()),
             "processes": result.dist.world_size, "replicas_identical": len(set(result.replica_digests)) == 1,
             "train_seconds": round(time.monotonic() - started, 1), "history": result.history}
    return judge, facts


def run_judge_stage(cfg: JudgeConfig, raw_dir: Path, bank_dir: Path, out_model: Path, out_metrics: Path, run_dir: Path
                    ) -> dict[str, Any] | None:
    """Train, score and save the judge; a killed run resumes from ``run_dir``. ``None`` on DDP ranks > 0."""
    bank = load_audio_bank(bank_dir)
    classes, texts = _class_vocabulary(raw_dir, bank)
    trained = train_judge(cfg=cfg, bank=bank, classes=classes, texts=texts, run_dir=run_dir)
    if trained is None:
        return None
    judge, facts = trained
    report = {k: v for k, v in facts.items() if k not in ("history", "train_seconds")}
    report["chance"] = round(1 / len(classes), 4)
    save_judge(out_model, judge, {"stage": "train_judge", "seed": cfg.train.loop.seed, "best_step": facts["best_step"],
                                  "test_accuracy": facts["test"]})
    write_json_atomic(out_metrics, report)
    clear_run(run_dir)
    log.info("judge: %s in %.0f s", report["test"], facts["train_seconds"])
    return report

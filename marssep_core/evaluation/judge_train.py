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
from tqdm import tqdm

from marssep_core.audio.mixing import crop_or_pad
from marssep_core.data.audio_bank import AudioBank, load_audio_bank
from marssep_core.evaluation.judge import JudgeNet, JudgeNetConfig, TrainedJudge, save_judge
from marssep_core.io_utils import write_json_atomic
from marssep_core.torch_utils import warmup_cosine

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
    steps: int = 800
    batch_size: int = 48
    lr: float = 0.003
    weight_decay: float = 0.01
    warmup: int = 50
    crop_seconds: float = 3.0
    residual_prob: float = 0.5
    residual_db: tuple[float, float] = (10.0, 25.0)
    eval_every: int = 100
    seed: int = 7  # the encoder stages use seeds 0-3


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


def train_judge(cfg: JudgeConfig, bank: AudioBank, classes: list[str], texts: list[str]) -> tuple[TrainedJudge, dict[str, Any]]:
    """Train on ``train``, select on ``val``; returns the best judge and the training facts."""
    torch.manual_seed(cfg.train.seed)
    net = JudgeNet(JudgeNetConfig(sample_rate=bank.sample_rate, n_classes=len(classes), n_mels=cfg.model.n_mels,
                                  channels=tuple(cfg.model.channels), embed_dim=cfg.model.embed_dim, dropout=cfg.model.dropout))
    judge = TrainedJudge(net, classes, texts)
    sampler = CropSampler(bank, classes, cfg.train)
    optimizer = torch.optim.AdamW(net.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.train.steps, cfg.train.warmup))
    best: tuple[float, int, dict[str, torch.Tensor]] = (-1.0, 0, {})
    history = []
    started = time.monotonic()
    for step in tqdm(range(1, cfg.train.steps + 1), desc="judge", mininterval=30):
        net.train()
        waves, labels = sampler.sample(cfg.train.batch_size, np.random.default_rng([cfg.train.seed, step]))
        loss = F.cross_entropy(net(waves)[1], labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % cfg.train.eval_every == 0 or step == cfg.train.steps:
            net.eval()
            val = clip_accuracy(judge, bank, "val")
            history.append({"step": step, "loss": round(loss.item(), 4), **{f"val_{k}": v for k, v in val.items()}})
            log.info("judge step %d loss %.3f val %s", step, loss.item(), val)
            if val["macro"] > best[0]:
                best = (val["macro"], step, {k: v.detach().clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[2])
    net.eval()
    facts = {"best_step": best[1], "val": clip_accuracy(judge, bank, "val"), "test": clip_accuracy(judge, bank, "test"),
             "classes": len(classes), "parameters": sum(p.numel() for p in net.parameters()),
             "train_seconds": round(time.monotonic() - started, 1), "history": history}
    return judge, facts


def run_judge_stage(cfg: JudgeConfig, raw_dir: Path, bank_dir: Path, out_model: Path, out_metrics: Path) -> dict[str, Any]:
    bank = load_audio_bank(bank_dir)
    classes, texts = _class_vocabulary(raw_dir, bank)
    judge, facts = train_judge(cfg, bank, classes, texts)
    report = {k: v for k, v in facts.items() if k not in ("history", "train_seconds")}
    report["chance"] = round(1 / len(classes), 4)
    save_judge(out_model, judge, {"stage": "train_judge", "seed": cfg.train.seed, "best_step": facts["best_step"],
                                  "test_accuracy": facts["test"]})
    write_json_atomic(out_metrics, report)
    log.info("judge: %s in %.0f s", report["test"], facts["train_seconds"])
    return report

"""Self-contained inputs for the GPU check: no corpus, no trained model, no file from `dvc repro`.

The device machine receives the working tree only (DVC outputs stay behind), so every object the
training and RL code paths need is generated here: an in-memory audio bank of harmonic and noise
clips in two corpora, query banks of random unit vectors (one for the policy's encoder width, one
for the reward encoder's), a few validation pairs and an untrained judge. Shapes and code paths are
the pipeline's own (``MixtureSampler``, ``SupervisedTask``, ``RLTask``, ``RewardModel``); only the
numbers inside are synthetic, which is all a timing or a finite-loss check needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from marssep_core.data.audio_bank import INDEX_COLUMNS, AudioBank
from marssep_core.data.test_pairs import PAIR_COLUMNS
from marssep_core.encoders.fusion import MLBPFusion
from marssep_core.encoders.imagebind import ImageBindModel
from marssep_core.evaluation.judge import JudgeNet, JudgeNetConfig, TrainedJudge
from marssep_core.rl.reward import RewardConfig, RewardModel
from marssep_core.separation.data import MixBatch, MixtureSampler
from marssep_core.separation.queries import QueryBank

# class -> (corpus, kind, base frequency): two corpora so same-corpus interferers exist
CLASSES = {
    "drone": ("everyday", "noise", 300.0),
    "whistle": ("everyday", "tone", 1800.0),
    "hum": ("everyday", "tone", 120.0),
    "organ": ("instruments", "tone", 220.0),
    "shaker": ("instruments", "noise", 4000.0),
    "bell": ("instruments", "tone", 880.0),
}


def synthetic_clip(kind: str, base_hz: float, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A ``(samples,)`` float32 clip: harmonics of ``base_hz`` or band noise around it, with
    random note onsets (so crops differ)."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    if kind == "tone":
        f0 = base_hz * rng.uniform(0.8, 1.25)
        wave = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) / k for k in range(1, 6))
    else:
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / rate)
        spectrum *= np.exp(-0.5 * ((freqs - base_hz) / (0.3 * base_hz)) ** 2)
        wave = np.fft.irfft(spectrum, n)
    envelope = np.zeros(n)
    for start in np.sort(rng.integers(0, n - n // 8, size=rng.integers(3, 8))):
        envelope[start:] += np.exp(-np.arange(n - start) / (rate * rng.uniform(0.1, 0.6)))
    wave = wave * envelope
    return (0.5 * wave / (np.max(np.abs(wave)) + 1e-9)).astype(np.float32)


def synthetic_bank(rate: int, seconds: float, clips_per_class: int = 4, seed: int = 0) -> AudioBank:
    """Every class with ``clips_per_class`` train clips and 2 val clips of ``seconds`` each."""
    rng = np.random.default_rng(seed)
    waves, rows, offset = [], [], 0
    for label, (corpus, kind, base) in CLASSES.items():
        for index in range(clips_per_class + 2):
            wave = synthetic_clip(kind=kind, base_hz=base, seconds=seconds, rate=rate, rng=rng).astype(np.float16)
            split = "train" if index < clips_per_class else "val"
            rows.append([f"{label}-{index}", label, corpus, split, f"gen:{label}:{index}", offset, wave.shape[0]])
            waves.append(wave)
            offset += wave.shape[0]
    return AudioBank(np.concatenate(waves), pd.DataFrame(rows, columns=INDEX_COLUMNS), rate)


def synthetic_queries(bank: AudioBank, dim: int, seed: int = 0) -> QueryBank:
    """Random unit embeddings ``(N, dim)`` for every clip, class text and one picture per class
    but the last (so the no-picture path runs too)."""
    generator = torch.Generator().manual_seed(seed)
    classes = list(CLASSES)
    pictured = classes[:-1]

    def unit(rows: int) -> torch.Tensor:
        return F.normalize(torch.randn(rows, dim, generator=generator), dim=-1)

    return QueryBank(
        clip_ids=bank.index["clip_id"].tolist(), audio=unit(len(bank.index)), classes=classes,
        texts=[f"a {c} sound" for c in classes], text=unit(len(classes)),
        image_paths=[f"images/{c}.png" for c in pictured], image_classes=pictured, image=unit(len(pictured)),
        encoder={"path": "synthetic", "md5": ""},
    )


def validation_pairs(bank: AudioBank, crop_seconds: float, pairs: int = 2) -> pd.DataFrame:
    """``pairs`` fixed pairs from the val split in the ``test_pairs.csv`` layout."""
    val = bank.split("val")
    first = val.drop_duplicates("class")
    rows = []
    for i in range(pairs):
        target, interferer = first.iloc[i], first.iloc[(i + 1) % len(first)]
        query_clip = val[(val["class"] == target["class"]) & (val["clip_id"] != target["clip_id"])].iloc[0]
        picture = f"images/{target['class']}.png" if target["class"] != list(CLASSES)[-1] else ""
        rows.append([i, target["corpus"], target["clip_id"], target["class"], 0.0, interferer["clip_id"],
                     interferer["class"], 0.0, 0.0, crop_seconds, 0, f"a {target['class']} sound",
                     query_clip["clip_id"], picture])
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def untrained_judge(queries: QueryBank) -> TrainedJudge:
    """A small random judge: RLTask's evaluation needs one; its scores mean nothing here."""
    net = JudgeNet(JudgeNetConfig(n_classes=len(queries.classes), channels=(4, 8), embed_dim=8))
    return TrainedJudge(net, queries.classes, queries.texts)


def reward_model(encoder: ImageBindModel, seed: int = 0) -> RewardModel:
    """The reward with a random MLBP anchor over ``encoder``'s embedding width."""
    torch.manual_seed(seed)
    return RewardModel(encoder, MLBPFusion(encoder.cfg.out_dim, 128), RewardConfig(fusion="mlbp"))


class FixedSampler:
    """A ``MixtureSampler`` stand-in that returns one batch, drawn once, at every call: timings
    then measure the device's work (batch preparation is timed on its own), and a loss on it must
    fall as the model fits it."""

    def __init__(self, sampler: MixtureSampler, batch_size: int, seed: int = 0):
        self.batch: MixBatch = sampler.sample(batch_size, np.random.default_rng(seed))

    def sample(self, batch_size: int, rng: np.random.Generator) -> MixBatch:
        if batch_size != len(self.batch.target_class):
            raise ValueError(f"this fixed sampler holds {len(self.batch.target_class)} items, {batch_size} asked for")
        return self.batch


@dataclass(frozen=True)
class Sizes:
    """What a run of the check uses; ``dry_run`` shrinks everything so a CPU runs it in a minute."""

    profiles: tuple[str, ...]
    timed_steps: tuple[int, int]  # the loop is run for both counts; their difference is timed
    rl_batch: int | None  # None: params rl.loop.batch_size
    reward_encoders: tuple[str, ...]
    encoder_batch: int
    encoder_repeats: int
    serving_seconds: float
    serving_batches: tuple[int, ...]
    onnx_batches: tuple[int, ...]
    correctness_steps: int
    data_workers: tuple[int, ...]  # training_input: batch-mixing processes compared


FULL = Sizes(profiles=("default", "paper"), timed_steps=(4, 24), rl_batch=None, reward_encoders=("tiny", "imagebind_huge"),
             encoder_batch=64, encoder_repeats=5, serving_seconds=600.0, serving_batches=(1, 8, 32),
             onnx_batches=(1, 8), correctness_steps=10, data_workers=(0, 12))
DRY_RUN = Sizes(profiles=("dry",), timed_steps=(2, 3), rl_batch=2, reward_encoders=("tiny",), encoder_batch=2,
                encoder_repeats=1, serving_seconds=12.0, serving_batches=(1, 2), onnx_batches=(1,), correctness_steps=6,
                data_workers=(0, 2))

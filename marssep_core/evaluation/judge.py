"""The independent semantic judge behind CLAP_t, CLAP_a and leakage.

The reward of the RL stage comes from the aligned ImageBind-style encoder (a transformer over
128-band Kaldi fbank patches). Scoring semantic fidelity with that same encoder would reward the
policy for fooling its own critic, so the evaluation uses a model that shares nothing with it:

* ``TrainedJudge`` (default): a small CNN over 64-band log-mel frames (64 ms window, 20 ms hop),
  trained separately (own seed, cross-entropy only, no encoder in its loss) on the clean+ train
  split. Its audio embedding is the L2-normalised pooled CNN feature; its "text" embedding of a
  class is the class prototype of its cosine classifier (the query texts are class texts, so the
  judge's text side is the closed vocabulary ``classes.csv`` defines).
* ``marssep_core.evaluation.clap.LaionClapJudge``: real LAION-CLAP from a local checkpoint.

Both implement ``SemanticJudge``. Shapes: waveforms ``(N, samples)`` float32 numpy at
``sample_rate``; embeddings ``(N, D)`` L2-normalised torch float32.
"""

from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from marssep_core import __version__
from marssep_core.audio.features import mel_filterbank
from marssep_core.audio.resample import resample
from marssep_core.torch_utils import CheckpointError, read_payload, save_torch_atomic

FORMAT = "marssep-judge-v1"


class SemanticJudge(Protocol):
    """What the evaluation needs from a semantic scorer."""

    name: str
    classes: list[str]  # class names, the order of ``class_embeddings`` rows
    texts: list[str]  # one text per class

    def embed_audio(self, waves: np.ndarray, sample_rate: int) -> torch.Tensor: ...

    def embed_text(self, texts: list[str]) -> torch.Tensor: ...

    def class_embeddings(self) -> torch.Tensor: ...


@dataclass(frozen=True)
class JudgeNetConfig:
    """Log-mel front end and CNN sizes of the default judge."""

    sample_rate: int = 16000
    n_fft: int = 1024
    hop_length: int = 320
    n_mels: int = 64
    fmin: float = 50.0
    channels: tuple[int, ...] = (16, 32, 64, 128)
    embed_dim: int = 128
    dropout: float = 0.2
    logit_scale: float = 16.0
    n_classes: int = 0


class LogMel(nn.Module):
    """``(B, samples)`` -> log-mel ``(B, 1, n_mels, frames)``."""

    def __init__(self, cfg: JudgeNetConfig):
        super().__init__()
        self.n_fft, self.hop = cfg.n_fft, cfg.hop_length
        banks = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin)
        self.register_buffer("banks", torch.from_numpy(banks.astype(np.float32)), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.n_fft), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.shape[-1] < self.n_fft:
            wave = F.pad(wave, (0, self.n_fft - wave.shape[-1]))
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        power = spec.real.square() + spec.imag.square()
        return torch.log(self.banks @ power + 1e-6).unsqueeze(1)


class JudgeNet(nn.Module):
    """CNN audio classifier with a cosine head: ``forward(wave (B, S)) -> (embedding (B, D),
    logits (B, C))``."""

    def __init__(self, cfg: JudgeNetConfig):
        super().__init__()
        if cfg.n_classes < 2:
            raise ValueError(f"the judge needs at least two classes, got {cfg.n_classes}")
        self.cfg = cfg
        self.frontend = LogMel(cfg)
        self.band_norm = nn.BatchNorm2d(cfg.n_mels)  # per-band statistics (log-mel levels differ by band)
        blocks, previous = [], 1
        for width in cfg.channels:
            blocks += [nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       nn.AvgPool2d(2, ceil_mode=True)]
            previous = width
        self.cnn = nn.Sequential(*blocks)
        self.project = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(2 * previous, cfg.embed_dim))
        self.prototypes = nn.Parameter(torch.randn(cfg.n_classes, cfg.embed_dim) / cfg.embed_dim**0.5)

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        feats = self.frontend(wave)  # (B, 1, M, T)
        feats = self.band_norm(feats.transpose(1, 2)).transpose(1, 2)
        maps = self.cnn(feats).mean(dim=2)  # (B, C, T'): frequency pooled
        pooled = torch.cat([maps.mean(dim=-1), maps.amax(dim=-1)], dim=1)
        return F.normalize(self.project(pooled), dim=-1)

    def class_embeddings(self) -> torch.Tensor:
        return F.normalize(self.prototypes, dim=-1)

    def forward(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.embed(wave)
        return embedding, self.cfg.logit_scale * embedding @ self.class_embeddings().T


class TrainedJudge:
    """A trained ``JudgeNet`` plus its class vocabulary, as a ``SemanticJudge``."""

    name = "marssep-cnn-judge"

    def __init__(self, net: JudgeNet, classes: list[str], texts: list[str], batch: int = 32):
        self.net, self.classes, self.texts, self.batch = net.eval(), list(classes), list(texts), batch
        self._by_text = {text: row for row, text in enumerate(self.texts)}

    @torch.no_grad()
    def embed_audio(self, waves: np.ndarray, sample_rate: int) -> torch.Tensor:
        waves = np.atleast_2d(np.asarray(waves, dtype=np.float32))
        if sample_rate != self.net.cfg.sample_rate:
            waves = np.stack([resample(w, sample_rate, self.net.cfg.sample_rate) for w in waves]).astype(np.float32)
        device = next(self.net.parameters()).device
        chunks = [self.net.embed(torch.from_numpy(waves[i : i + self.batch]).to(device)).float().cpu()
                  for i in range(0, len(waves), self.batch)]
        return torch.cat(chunks) if chunks else torch.zeros(0, self.net.cfg.embed_dim)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        unknown = [t for t in texts if t not in self._by_text]
        if unknown:
            raise KeyError(f"the trained judge only knows the class texts of classes.csv; unknown: {unknown[:5]}")
        return self.class_embeddings()[[self._by_text[t] for t in texts]]

    @torch.no_grad()
    def class_embeddings(self) -> torch.Tensor:
        return self.net.class_embeddings().float().cpu()


def save_judge(path: Path, judge: TrainedJudge, meta: dict[str, Any]) -> None:
    payload = {
        "format": FORMAT,
        "model": "JudgeNet",
        "config": dataclasses.asdict(judge.net.cfg),
        "classes": judge.classes,
        "texts": judge.texts,
        "meta": {**meta, "marssep": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
        "state_dict": {k: v.detach().cpu() for k, v in judge.net.state_dict().items()},
    }
    save_torch_atomic(path, payload)


def load_judge(path: str | Path) -> tuple[TrainedJudge, dict[str, Any]]:
    """The judge (eval mode, CPU) and its ``meta`` (training seed, accuracies)."""
    payload = read_payload(path, FORMAT, "judge model file")
    config = dict(payload["config"])
    config["channels"] = tuple(config["channels"])
    net = JudgeNet(JudgeNetConfig(**config))
    missing, unexpected = net.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: missing {sorted(missing)[:10]}, unexpected {sorted(unexpected)[:10]}")
    return TrainedJudge(net, list(payload["classes"]), list(payload["texts"])), dict(payload["meta"])

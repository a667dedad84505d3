"""The ``Separator``: STFT, mask network and iSTFT with a sample rate, and its model file.

    separator, info = load_separator("models/separator_sup.pt")
    estimate = separator(mixture, query)     # (B, N) waveforms, (B, D) unit-norm queries

The mask network sees magnitudes only; the estimate reuses the mixture phase. Model files are
plain ``torch.save`` dicts readable with ``weights_only=True``: format, model name, mask-network
config, audio settings (sample rate, STFT), the identity of the query encoder (path, md5), the
training stage and step, library versions, and the weights.
"""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path
from typing import Any

import torch
from torch import nn

from marssep_core import __version__
from marssep_core.audio.stft import STFT
from marssep_core.config import AudioConfig
from marssep_core.separation.model import MaskNet, MaskNetConfig, build_mask_net
from marssep_core.torch_utils import CheckpointError, read_payload, save_torch_atomic

FORMAT = "marssep-separator-v1"


class Separator(nn.Module):
    """``(mixture (B, N), query (B, D)) -> estimate (B, N)`` at ``sample_rate``."""

    def __init__(self, mask_net: MaskNet, audio: AudioConfig):
        super().__init__()
        self.mask_net = mask_net
        self.audio = audio
        self.stft = STFT.from_config(audio)
        if self.stft.n_freq != mask_net.cfg.n_freq:
            raise ValueError(f"STFT gives {self.stft.n_freq} bins, the mask network expects {mask_net.cfg.n_freq}")

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    def spectrogram(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, N)`` -> magnitude and phase, each ``(B, F, T)`` (always float32)."""
        return self.stft.magnitude_phase(wave.float())

    def reconstruct(self, mask: torch.Tensor, magnitude: torch.Tensor, phase: torch.Tensor, length: int) -> torch.Tensor:
        """Masks ``(..., F, T)`` (any leading dims, e.g. ``(G, B)`` samples) -> waveforms ``(..., N)``."""
        return self.stft.from_magnitude_phase(mask.float() * magnitude, phase.expand_as(mask), length)

    def forward(self, mixture: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        magnitude, phase = self.spectrogram(mixture)
        return self.reconstruct(self.mask_net.mask(magnitude, query), magnitude, phase, mixture.shape[-1])


def save_separator(path: Path, separator: Separator, encoder: dict[str, str], meta: dict[str, Any]) -> None:
    """Write the model file atomically (``encoder``: path and md5 of the query encoder)."""
    payload = {
        "format": FORMAT,
        "model": type(separator.mask_net).__name__,
        "config": dataclasses.asdict(separator.mask_net.cfg),
        "audio": dataclasses.asdict(separator.audio),
        "encoder": dict(encoder),
        "meta": {**meta, "marssep": __version__, "torch": str(torch.__version__), "python": platform.python_version()},
        "state_dict": {k: v.detach().cpu() for k, v in separator.mask_net.state_dict().items()},
    }
    save_torch_atomic(path, payload)


def load_separator(path: str | Path) -> tuple[Separator, dict[str, Any]]:
    """Rebuild a ``Separator`` (eval mode, CPU) from a model file; returns it and the file's
    ``encoder`` and ``meta`` entries."""
    payload = read_payload(path, FORMAT, "separator model file")
    mask_net = build_mask_net(MaskNetConfig(**payload["config"]))
    missing, unexpected = mask_net.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{path}: missing {sorted(missing)[:10]}, unexpected {sorted(unexpected)[:10]}")
    separator = Separator(mask_net, AudioConfig(**payload["audio"])).eval()
    return separator, {"encoder": dict(payload["encoder"]), "meta": dict(payload["meta"])}

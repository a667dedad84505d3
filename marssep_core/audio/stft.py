"""STFT / iSTFT with fixed settings (from the ``audio`` params section), on torch.

Shapes: waveforms ``(..., samples)``; spectrograms complex ``(..., freq, frames)`` with
``freq = n_fft // 2 + 1``. The window is a periodic Hann window kept on the input's device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from marssep_core.config import AudioConfig


@dataclass(frozen=True)
class STFT:
    """Forward and inverse STFT sharing one configuration."""

    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024

    @classmethod
    def from_config(cls, cfg: AudioConfig) -> STFT:
        return cls(n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length)

    @property
    def n_freq(self) -> int:
        return self.n_fft // 2 + 1

    def _window(self, like: torch.Tensor) -> torch.Tensor:
        dtype = like.real.dtype if like.is_complex() else like.dtype
        return torch.hann_window(self.win_length, periodic=True, dtype=dtype, device=like.device)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` with centre padding."""
        return num_samples // self.hop_length + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """``(..., samples)`` real -> ``(..., freq, frames)`` complex."""
        lead = wave.shape[:-1]
        flat = wave.reshape(-1, wave.shape[-1])
        spec = torch.stft(
            flat,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self._window(flat),
            center=True,
            return_complex=True,
        )
        return spec.reshape(*lead, *spec.shape[-2:])

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """``(..., freq, frames)`` complex -> ``(..., length)`` real."""
        lead = spec.shape[:-2]
        flat = spec.reshape(-1, *spec.shape[-2:])
        wave = torch.istft(
            flat,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self._window(flat),
            center=True,
            length=length,
        )
        return wave.reshape(*lead, length)

    def magnitude_phase(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Magnitude ``|X|`` and phase ``angle(X)``, both ``(..., freq, frames)``."""
        spec = self.forward(wave)
        return spec.abs(), spec.angle()

    def from_magnitude_phase(self, magnitude: torch.Tensor, phase: torch.Tensor, length: int) -> torch.Tensor:
        """Rebuild a waveform from a (masked) magnitude and the mixture phase."""
        return self.inverse(torch.polar(magnitude, phase), length)

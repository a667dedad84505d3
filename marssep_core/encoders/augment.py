"""Training-time augmentation of the encoder's audio input (normalised log-mel ``(1, M, T)``).

The everyday classes have a few training recordings each, and the audio tower learns those
recordings: their embeddings sit near their class text while unseen recordings of the same class
do not (``benchmarks/query_gap.py``). Another microphone, room or level changes the log-mel
picture by an offset (gain) and a smooth curve over frequency (equaliser); SpecAugment masks
(Park et al. 2019, as AST and AudioMAE train) hide bands and stretches so no single detail
identifies a recording. All of it is off when every field is zero, and then draws nothing from
the generator, so the default training is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

EQ_POINTS = 6  # gains at this many evenly spaced mel bins, interpolated linearly between them


@dataclass(frozen=True)
class FbankAugmentConfig:
    """What is drawn per training crop (each uniform): a level in [-gain_db, gain_db] dB, an
    equaliser of ``EQ_POINTS`` gains in [-eq_db, eq_db] dB over the mel axis, ``freq_masks`` bands
    of up to ``freq_mask_bins`` mel bins and ``time_masks`` stretches of up to ``time_mask_frames``
    frames set to the input's mean (0 after normalisation)."""

    gain_db: float = 0.0
    eq_db: float = 0.0
    freq_masks: int = 0
    freq_mask_bins: int = 0
    time_masks: int = 0
    time_mask_frames: int = 0

    @property
    def active(self) -> bool:
        return bool(self.gain_db or self.eq_db or (self.freq_masks and self.freq_mask_bins)
                    or (self.time_masks and self.time_mask_frames))


def augment_fbank(fbank: torch.Tensor, valid_frames: int, cfg: FbankAugmentConfig, std: float,
                  rng: np.random.Generator) -> torch.Tensor:
    """A new ``(1, M, T)`` input: ``fbank`` (log-mel normalised by ``std``) with a random level and
    equaliser on its first ``valid_frames`` frames (the rest is padding, left as it is), then the
    masks. A gain of ``g`` dB adds ``g ln(10) / 10`` to a log power, ``/ std`` after normalisation."""
    if not cfg.active:
        return fbank
    out = fbank.clone()
    mel_bins, frames = out.shape[-2], out.shape[-1]
    per_db = math.log(10.0) / 10.0 / std
    curve = np.zeros(mel_bins)
    if cfg.gain_db:
        curve += rng.uniform(-cfg.gain_db, cfg.gain_db)
    if cfg.eq_db:
        anchors = np.linspace(0, mel_bins - 1, EQ_POINTS)
        curve += np.interp(np.arange(mel_bins), anchors, rng.uniform(-cfg.eq_db, cfg.eq_db, EQ_POINTS))
    if curve.any():
        valid = min(max(valid_frames, 0), frames)
        out[..., :valid] += torch.from_numpy(curve * per_db).to(out.dtype)[:, None]
    for _ in range(cfg.freq_masks if cfg.freq_mask_bins else 0):
        width = int(rng.integers(0, cfg.freq_mask_bins + 1))
        start = int(rng.integers(0, mel_bins - width + 1))
        out[..., start : start + width, :] = 0.0
    for _ in range(cfg.time_masks if cfg.time_mask_frames else 0):
        width = int(rng.integers(0, cfg.time_mask_frames + 1))
        start = int(rng.integers(0, frames - width + 1))
        out[..., start : start + width] = 0.0
    return out

"""Band-limited resampling with soxr (high quality, deterministic)."""

from __future__ import annotations

import numpy as np
import soxr


def resample(audio: np.ndarray, orig_sr: int, target_sr: int, quality: str = "HQ") -> np.ndarray:
    """Resample ``(samples,)`` or ``(channels, samples)`` from ``orig_sr`` to ``target_sr``."""
    if orig_sr == target_sr:
        return audio.astype(np.float32, copy=False)
    if audio.ndim == 1:
        return soxr.resample(audio, orig_sr, target_sr, quality=quality).astype(np.float32)
    out = soxr.resample(np.ascontiguousarray(audio.T), orig_sr, target_sr, quality=quality)
    return np.ascontiguousarray(out.T).astype(np.float32)

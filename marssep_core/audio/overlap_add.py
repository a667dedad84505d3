"""Chunked processing with overlap-add, for audio longer than a model should see at once.

``overlap_add(process, wave, segment, overlap)`` cuts ``wave`` ``(C, N)`` into ``segment``-sample
windows that overlap by the fraction ``overlap``, runs ``process`` on each ``(C, segment)``
window (the last one zero-padded), and cross-fades the results with triangular weights
normalised by their sum, so the output ``(C, N)`` has no seams. Full-length buffers stay in
numpy on the CPU; only one window at a time goes to ``process``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def segment_starts(length: int, segment: int, hop: int) -> list[int]:
    """Window starts covering ``[0, length)``; the last window ends at or after ``length``."""
    starts = list(range(0, max(1, length - segment + 1), hop))
    if starts[-1] + segment < length:
        starts.append(starts[-1] + hop)
    return starts


def overlap_add(
    process: Callable[[np.ndarray], np.ndarray], wave: np.ndarray, segment: int, overlap: float = 0.25
) -> np.ndarray:
    """Apply ``process`` window by window; ``wave`` and the result are ``(C, N)`` float32."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if segment <= 0:
        raise ValueError(f"segment must be positive, got {segment}")
    channels, length = wave.shape
    if length <= segment:
        return process(wave).astype(np.float32)
    hop = max(1, int(round(segment * (1.0 - overlap))))
    ramp = np.minimum(np.arange(1, segment + 1), np.arange(segment, 0, -1)).astype(np.float64)
    weight = ramp / ramp.max()
    out = np.zeros((channels, length), dtype=np.float64)
    total = np.zeros(length, dtype=np.float64)
    for start in segment_starts(length, segment, hop):
        piece = wave[:, start : start + segment]
        valid = piece.shape[1]
        if valid < segment:
            piece = np.pad(piece, ((0, 0), (0, segment - valid)))
        result = process(np.ascontiguousarray(piece, dtype=np.float32))
        out[:, start : start + valid] += result[:, :valid] * weight[:valid]
        total[start : start + valid] += weight[:valid]
    return (out / total).astype(np.float32)

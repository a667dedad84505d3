"""Two-source mixing with the OmniSep protocol as adapted in DESIGN.md section 4.

Each source is RMS-normalised, the interferer is scaled to the requested target-to-interferer
SNR, and the mixture and both sources are scaled jointly so the mixture peak is at most
``peak``. Sources keep their relation to the mixture exactly: ``mixture == target + interferer``.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-8


def rms_normalize(wave: np.ndarray, target_rms: float = 0.1) -> np.ndarray:
    """Scale ``(samples,)`` to RMS ``target_rms``; silence stays silence."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    if rms < _EPS:
        return wave.astype(np.float32, copy=True)
    return (wave * (target_rms / rms)).astype(np.float32)


def peak_normalize(*waves: np.ndarray, peak: float = 0.9, reference: int = 0) -> list[np.ndarray]:
    """Scale all ``waves`` by one factor so ``waves[reference]`` peaks at most at ``peak``."""
    top = float(np.max(np.abs(waves[reference]))) if waves[reference].size else 0.0
    scale = peak / top if top > peak else 1.0
    return [(w * scale).astype(np.float32) for w in waves]


def snr_db(target: np.ndarray, interferer: np.ndarray) -> float:
    """Energy ratio of ``target`` to ``interferer`` in dB."""
    num = float(np.sum(np.square(target, dtype=np.float64)))
    den = float(np.sum(np.square(interferer, dtype=np.float64)))
    return 10.0 * np.log10((num + _EPS) / (den + _EPS))


def crop_or_pad(wave: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """Take ``length`` samples from ``offset``; zero-pad at the end when the clip is shorter."""
    piece = wave[offset : offset + length]
    if piece.shape[0] < length:
        piece = np.pad(piece, (0, length - piece.shape[0]))
    return piece.astype(np.float32, copy=False)


def mix_pair(
    target: np.ndarray, interferer: np.ndarray, snr: float, peak: float = 0.9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mix two equal-length mono sources at target-to-interferer ``snr`` dB.

    Returns ``(mixture, target, interferer)``, each ``(samples,)`` float32, with
    ``mixture == target + interferer`` and ``max|mixture| <= peak``.
    """
    if target.shape != interferer.shape:
        raise ValueError(f"sources differ in shape: {target.shape} vs {interferer.shape}")
    tgt = rms_normalize(target)
    itf = rms_normalize(interferer) * np.float32(10.0 ** (-snr / 20.0))
    mixture = tgt + itf
    _, tgt, itf = peak_normalize(mixture, tgt, itf, peak=peak)
    # Re-add after scaling so the identity holds bit-exactly, not just up to rounding.
    return tgt + itf, tgt, itf

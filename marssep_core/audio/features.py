"""Light-weight numpy features for auditing clips: framing, power spectra, mel filterbank.

These serve the data stages (catalog facts, label-consistency features, fingerprints); the
models use ``marssep_core.audio.stft`` on torch instead.
"""

from __future__ import annotations

import numpy as np

FINGERPRINT_BITS = 32  # bits per fingerprint frame: one per pair of adjacent bands


def frame_rms_db(wave: np.ndarray, frame: int) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames of ``(samples,)`` -> ``(frames,)``."""
    usable = (wave.shape[0] // frame) * frame
    if usable == 0:
        usable, frame = wave.shape[0], max(1, wave.shape[0])
    frames = wave[:usable].reshape(-1, frame).astype(np.float64)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)


def sounding_frames(wave: np.ndarray, frame: int, rel_db: float) -> np.ndarray:
    """``(samples,)`` -> ``(frames,)`` bool: frames (of ``frame`` samples) whose RMS level is within
    ``rel_db`` (negative) of the loudest frame's; the others are silence or near it."""
    level = frame_rms_db(wave, frame)
    return level >= level.max() + rel_db


def power_spectrogram(wave: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Hann-windowed power spectrogram ``(n_fft // 2 + 1, frames)`` of ``(samples,)``."""
    if wave.shape[0] < n_fft:
        wave = np.pad(wave, (0, n_fft - wave.shape[0]))
    count = 1 + (wave.shape[0] - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    frames = wave[index] * np.hanning(n_fft + 1)[:-1][None, :]
    return (np.abs(np.fft.rfft(frames, axis=1)) ** 2).T


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filters ``(n_mels, n_fft // 2 + 1)``."""
    fmax = fmax or sample_rate / 2

    def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def mel_to_hz(mel: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bins[None, :]) / np.maximum(upper - centre, 1e-9)
    return np.maximum(0.0, np.minimum(rising, falling))


def effective_bandwidth(wave: np.ndarray, sample_rate: int, floor_db: float = -50.0) -> float:
    """Highest frequency (Hz) whose average power is within ``floor_db`` of the strongest bin.

    A file stored at 44.1 kHz but recorded at 11 kHz shows ~5.5 kHz here.
    """
    spec = power_spectrogram(wave, 1024, 512).mean(axis=1)
    level = 10.0 * np.log10(spec + 1e-20)
    above = np.nonzero(level >= level.max() + floor_db)[0]
    return float(above[-1] * sample_rate / 1024) if above.size else 0.0


def log_mel_stats(wave: np.ndarray, sample_rate: int, n_mels: int = 64) -> np.ndarray:
    """Clip-level descriptor ``(4 * n_mels,)``: mean, std, and mean/std of the frame-to-frame
    change of log-mel energies (timbre plus temporal texture)."""
    spec = power_spectrogram(wave, 1024, 320)
    mel = np.log(mel_filterbank(sample_rate, 1024, n_mels, 20.0) @ spec + 1e-8)
    delta = np.diff(mel, axis=1) if mel.shape[1] > 1 else np.zeros_like(mel)
    return np.concatenate([mel.mean(1), mel.std(1), np.abs(delta).mean(1), delta.std(1)]).astype(np.float32)


def spectral_fingerprint(wave: np.ndarray, sample_rate: int, max_frames: int) -> np.ndarray:
    """Binary fingerprint ``(frames, FINGERPRINT_BITS)`` of ``(samples,)`` at ``sample_rate`` (8 kHz).

    Each bit is the sign of the time change of the energy difference between adjacent log bands
    (300-3800 Hz), robust to gain, re-encoding and resampling. Leading silence is skipped so a
    re-padded copy still aligns.
    """
    spec = power_spectrogram(wave, 512, 256)
    level = 10.0 * np.log10(spec.sum(axis=0) + 1e-12)
    active = np.nonzero(level > level.max() - 40.0)[0]
    start = int(active[0]) if active.size else 0
    spec = spec[:, start : start + max_frames + 1]
    edges = np.geomspace(300.0, 3800.0, FINGERPRINT_BITS + 2)
    freqs = np.linspace(0, sample_rate / 2, spec.shape[0])
    energy = np.stack([spec[(freqs >= lo) & (freqs < hi)].sum(axis=0) for lo, hi in zip(edges[:-1], edges[1:])])
    # Levels in dB with a floor 60 dB under the clip's loudest band, rounded to 0.5 dB: bands that
    # hold no signal then compare as exactly equal (bit 0) instead of flipping on numerical noise.
    level = np.round(10.0 * np.log10(energy + energy.max() * 1e-6 + 1e-20) * 2.0) / 2.0
    diff = level[:-1] - level[1:]  # (FINGERPRINT_BITS, frames)
    bits = (diff[:, 1:] - diff[:, :-1]) > 0
    return bits.T.astype(bool)

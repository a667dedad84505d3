"""ImageBind input preprocessing with torch/Pillow only (torchaudio/torchvision do not import here).

Audio: Kaldi-style log-mel filterbank (25 ms Hann frames, 10 ms shift, DC removal, 0.97
pre-emphasis, 512-point FFT power spectrum, 128 mel bins from 20 Hz to Nyquist on the HTK mel
scale, no dither, waveform mean removed first), padded or cut to 204 frames, normalised with
mean -4.268 and std 9.138; three 2 s clips spread evenly over the input.
Vision: bicubic resize of the shorter side to 224, centre crop, CLIP mean/std normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_FLOAT32_EPS = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class AudioPreprocessConfig:
    sample_rate: int = 16000
    mel_bins: int = 128
    target_frames: int = 204
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    low_freq: float = 20.0
    preemphasis: float = 0.97
    mean: float = -4.268
    std: float = 9.138
    clip_seconds: float = 2.0
    clips: int = 3


def htk_mel(hz: torch.Tensor | float) -> torch.Tensor:
    return 1127.0 * torch.log1p(torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def kaldi_mel_banks(mel_bins: int, padded_window: int, sample_rate: int, low_freq: float) -> torch.Tensor:
    """Triangular filters ``(mel_bins, padded_window // 2 + 1)``, equally spaced on the HTK mel
    scale from ``low_freq`` to Nyquist; the Nyquist FFT bin gets weight 0, as in Kaldi."""
    nyquist = sample_rate / 2
    fft_bins = padded_window // 2
    mel_low, mel_high = htk_mel(low_freq), htk_mel(nyquist)
    delta = (mel_high - mel_low) / (mel_bins + 1)
    index = torch.arange(mel_bins, dtype=torch.float64)[:, None]
    left, centre, right = mel_low + index * delta, mel_low + (index + 1) * delta, mel_low + (index + 2) * delta
    mel = htk_mel(torch.arange(fft_bins, dtype=torch.float64) * (sample_rate / padded_window))[None, :]
    banks = torch.clamp(torch.minimum((mel - left) / (centre - left), (right - mel) / (right - centre)), min=0.0)
    return F.pad(banks, (0, 1)).float()


def kaldi_fbank(wave: torch.Tensor, cfg: AudioPreprocessConfig = AudioPreprocessConfig()) -> torch.Tensor:
    """Log-mel filterbank ``(..., frames, mel_bins)`` of ``(..., samples)`` (Kaldi, snip_edges)."""
    window = int(cfg.sample_rate * cfg.frame_length_ms / 1000)
    shift = int(cfg.sample_rate * cfg.frame_shift_ms / 1000)
    padded = 1 << (window - 1).bit_length()
    if wave.shape[-1] < window:
        return wave.new_zeros(*wave.shape[:-1], 0, cfg.mel_bins)
    frames = wave.unfold(-1, window, shift)  # (..., frames, window)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - cfg.preemphasis * previous
    frames = frames * torch.hann_window(window, periodic=False, dtype=frames.dtype, device=frames.device)
    power = torch.fft.rfft(F.pad(frames, (0, padded - window))).abs().pow(2)
    banks = kaldi_mel_banks(cfg.mel_bins, padded, cfg.sample_rate, cfg.low_freq).to(power)
    return torch.clamp(power @ banks.T, min=_FLOAT32_EPS).log()


def clip_starts(duration: float, clip_seconds: float, clips: int) -> list[float]:
    """Evenly spread clip start times (seconds) covering ``duration``; all 0 for short inputs."""
    last = max(duration - clip_seconds, 0.0)
    step = last / max(clips - 1, 1)
    return [step * i for i in range(clips)]


def audio_to_model_input(wave: torch.Tensor, cfg: AudioPreprocessConfig = AudioPreprocessConfig()) -> torch.Tensor:
    """Mono ``(samples,)`` at ``cfg.sample_rate`` -> ``(clips, 1, mel_bins, target_frames)``."""
    if wave.ndim != 1:
        raise ValueError(f"expected mono audio (samples,), got shape {tuple(wave.shape)}")
    clip_len = int(round(cfg.clip_seconds * cfg.sample_rate))
    out = []
    for start in clip_starts(wave.shape[0] / cfg.sample_rate, cfg.clip_seconds, cfg.clips):
        begin = int(round(start * cfg.sample_rate))
        piece = wave[begin : begin + clip_len]
        piece = piece - piece.mean()
        fbank = kaldi_fbank(piece, cfg).T  # (mel_bins, frames)
        missing = cfg.target_frames - fbank.shape[1]
        fbank = F.pad(fbank, (0, missing)) if missing > 0 else fbank[:, : cfg.target_frames]
        out.append((fbank - cfg.mean) / cfg.std)
    return torch.stack(out).unsqueeze(1)


def image_to_model_input(image: Image.Image, size: int = 224) -> torch.Tensor:
    """Any PIL image -> ``(3, size, size)`` float: bicubic shorter-side resize, centre crop, CLIP
    normalisation."""
    image = image.convert("RGB")
    # shorter side to ``size``, longer side truncated, as torchvision's Resize(int) computes it
    if image.width <= image.height:
        width, height = size, int(size * image.height / image.width)
    else:
        width, height = int(size * image.width / image.height), size
    image = image.resize((width, height), Image.BICUBIC)
    left, top = int(round((width - size) / 2.0)), int(round((height - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    mean = torch.tensor(CLIP_MEAN).view(3, 1, 1)
    std = torch.tensor(CLIP_STD).view(3, 1, 1)
    return (pixels - mean) / std

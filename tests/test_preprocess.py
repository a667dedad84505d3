"""Encoder preprocessing against hand computations: Kaldi fbank, clips, images, CLIP BPE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from marssep_core.encoders.preprocess import (
    CLIP_MEAN,
    CLIP_STD,
    AudioPreprocessConfig,
    audio_to_model_input,
    clip_starts,
    image_to_model_input,
    kaldi_fbank,
    kaldi_mel_banks,
)
from marssep_core.encoders.tokenizer import ClipTokenizer

SR = 16000


def _hand_fbank_frame(frame: np.ndarray) -> np.ndarray:
    """One Kaldi frame written out step by step in numpy, with its own mel filters."""
    x = frame.astype(np.float64) - frame.mean()
    x = x - 0.97 * np.concatenate([[x[0]], x[:-1]])
    n = np.arange(400)
    x = x * (0.5 - 0.5 * np.cos(2 * np.pi * n / 399))  # symmetric Hann
    power = np.abs(np.fft.rfft(np.concatenate([x, np.zeros(112)]))) ** 2
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731
    edges = np.linspace(mel(20.0), mel(8000.0), 130)
    bin_mel = mel(np.arange(256) * SR / 512)
    energies = []
    for b in range(128):
        left, centre, right = edges[b], edges[b + 1], edges[b + 2]
        weights = np.clip(np.minimum((bin_mel - left) / (centre - left), (right - bin_mel) / (right - centre)), 0, None)
        energies.append(np.sum(weights * power[:256]))
    return np.log(np.maximum(np.array(energies), np.finfo(np.float32).eps))


def test_fbank_matches_a_hand_computed_frame():
    t = np.arange(SR) / SR
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 3000 * t + 1.0)
    ours = kaldi_fbank(torch.tensor(wave, dtype=torch.float64))
    assert ours.shape == (1 + (SR - 400) // 160, 128)
    for index in (0, 17, 97):
        expected = _hand_fbank_frame(wave[index * 160 : index * 160 + 400])
        np.testing.assert_allclose(ours[index].numpy(), expected, rtol=1e-6, atol=1e-6)


def test_fbank_peak_sits_at_the_tone_and_silence_hits_the_floor():
    t = torch.arange(SR) / SR
    fbank = kaldi_fbank(torch.sin(2 * math.pi * 1000 * t))
    banks = kaldi_mel_banks(128, 512, SR, 20.0)
    tone_bin = round(1000 * 512 / SR)
    assert fbank.mean(0).argmax().item() == banks[:, tone_bin].argmax().item()
    assert torch.allclose(kaldi_fbank(torch.zeros(SR)), torch.tensor(math.log(np.finfo(np.float32).eps)))


def test_clip_layout_and_normalisation():
    cfg = AudioPreprocessConfig()
    assert clip_starts(10.0, 2.0, 3) == [0.0, 4.0, 8.0]
    assert clip_starts(1.0, 2.0, 3) == [0.0, 0.0, 0.0]
    clips = audio_to_model_input(torch.zeros(SR // 2))  # silence, shorter than a clip
    assert clips.shape == (3, 1, 128, 204)
    floor = (math.log(np.finfo(np.float32).eps) - cfg.mean) / cfg.std
    frames = 1 + (SR // 2 - 400) // 160
    assert torch.allclose(clips[0, 0, :, :frames], torch.tensor(floor))
    assert torch.allclose(clips[0, 0, :, frames:], torch.tensor(-cfg.mean / cfg.std))  # zero padding
    with pytest.raises(ValueError, match="mono"):
        audio_to_model_input(torch.zeros(2, SR))


def test_image_resize_crop_and_normalise():
    red = Image.new("RGB", (448, 300), (255, 0, 0))
    pixels = image_to_model_input(red)
    assert pixels.shape == (3, 224, 224)
    expected = [(1 - CLIP_MEAN[0]) / CLIP_STD[0], -CLIP_MEAN[1] / CLIP_STD[1], -CLIP_MEAN[2] / CLIP_STD[2]]
    torch.testing.assert_close(pixels.mean(dim=(1, 2)), torch.tensor(expected))
    halves = Image.new("RGB", (300, 200), (0, 0, 0))
    halves.paste((255, 255, 255), (150, 0, 300, 200))  # right half white
    out = image_to_model_input(halves)
    assert out[0, 100, 10] < 0 < out[0, 100, 213]  # centre crop keeps the split in the middle


def test_clip_tokenizer_known_ids():
    tokenizer = ClipTokenizer()
    assert tokenizer.vocab_size == 49408
    ids = tokenizer(["a diagram", "a dog"])
    assert ids[0, :4].tolist() == [49406, 320, 22697, 49407]  # the example in CLIP's README
    assert ids[1, :4].tolist() == [49406, 320, 1929, 49407]
    assert ids.shape == (2, 77) and ids[0, 4:].eq(0).all()
    long = tokenizer(" ".join(["word"] * 100))
    assert long[0, -1].item() == 49407 and long[0].argmax().item() == 76

"""Audio utilities: I/O, resampling, STFT round trip, mixing protocol."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from marssep_core.audio import (
    AudioDecodeError,
    crop_or_pad,
    load_audio,
    mix_pair,
    resample,
    rms_normalize,
    save_audio,
    snr_db,
    to_mono,
)
from marssep_core.audio.features import effective_bandwidth, frame_rms_db
from marssep_core.audio.stft import STFT


def test_save_load_round_trip_keeps_channels_and_rate(tmp_path):
    stereo = np.stack([np.linspace(-0.5, 0.5, 800), np.linspace(0.5, -0.5, 800)]).astype(np.float32)
    save_audio(tmp_path / "x.flac", stereo, 22050, subtype="PCM_24")
    audio, rate = load_audio(tmp_path / "x.flac")
    assert rate == 22050 and audio.shape == (2, 800) and audio.dtype == np.float32
    np.testing.assert_allclose(audio, stereo, atol=1e-6)
    assert to_mono(audio).shape == (800,)
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"


@pytest.mark.parametrize(
    "content, kind",
    [(b"", "empty_file"), (b"RIFF....WAVEnot really", "decode_error"), (b"hello\n" * 40, "decode_error")],
)
def test_load_errors_name_the_file_and_kind(tmp_path, content, kind):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError) as err:
        load_audio(path)
    assert err.value.kind == kind
    assert str(path) in str(err.value)


def test_truncated_wav_is_detected(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, np.zeros(16000, dtype=np.float32) + 0.1, 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(AudioDecodeError, match="truncated") as err:
        load_audio(path)
    assert err.value.kind == "truncated"


def test_missing_file(tmp_path):
    with pytest.raises(AudioDecodeError) as err:
        load_audio(tmp_path / "nope.wav")
    assert err.value.kind == "missing_file"


def test_resample_length_and_tone_preserved():
    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = resample(tone, 44100, 16000)
    assert out.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins over one second
    stereo = resample(np.stack([tone, tone]), 44100, 16000)
    assert stereo.shape == (2, 16000)


def test_stft_round_trip_and_shapes():
    stft = STFT(n_fft=512, hop_length=128, win_length=512)
    wave = torch.randn(3, 2, 4000)
    spec = stft.forward(wave)
    assert spec.shape == (3, 2, 257, stft.num_frames(4000))
    back = stft.inverse(spec, 4000)
    torch.testing.assert_close(back, wave, atol=1e-5, rtol=1e-5)
    mag, phase = stft.magnitude_phase(wave)
    torch.testing.assert_close(stft.from_magnitude_phase(mag, phase, 4000), wave, atol=1e-5, rtol=1e-5)


def test_mix_pair_hits_the_requested_snr_and_sums_exactly():
    rng = np.random.default_rng(0)
    target, interferer = rng.standard_normal(8000).astype(np.float32), 3 * rng.standard_normal(8000).astype(np.float32)
    for requested in (-5.0, 0.0, 4.5):
        mixture, tgt, itf = mix_pair(target, interferer, requested, peak=0.9)
        assert snr_db(tgt, itf) == pytest.approx(requested, abs=1e-3)
        np.testing.assert_array_equal(mixture, tgt + itf)
        assert np.max(np.abs(mixture)) <= 0.9 + 1e-6


def test_mix_pair_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="shape"):
        mix_pair(np.zeros(10), np.zeros(11), 0.0)


def test_rms_normalize_and_crop():
    wave = np.full(100, 0.5, dtype=np.float32)
    assert np.sqrt(np.mean(rms_normalize(wave, 0.1) ** 2)) == pytest.approx(0.1)
    assert np.all(rms_normalize(np.zeros(10)) == 0)
    assert crop_or_pad(np.arange(5, dtype=np.float32), 8).tolist() == [0, 1, 2, 3, 4, 0, 0, 0]
    assert crop_or_pad(np.arange(10, dtype=np.float32), 3, offset=4).tolist() == [4, 5, 6]


def test_frame_levels_and_bandwidth():
    sr = 16000
    t = np.arange(sr) / sr
    assert frame_rms_db(np.ones(1600, dtype=np.float32), 800).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    low = np.sin(2 * np.pi * 1000 * t)
    assert effective_bandwidth(low, sr) < 2000
    noise = np.random.default_rng(1).standard_normal(sr)
    assert effective_bandwidth(noise, sr) > 7000

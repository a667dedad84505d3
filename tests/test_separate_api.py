"""``marssep_core.separate`` and ``marssep separate`` with a tiny trained separator."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import marssep_core
from marssep_core.audio.io import save_audio
from marssep_core.cli import main
from marssep_core.serving.api import embed_query, full_query
from marssep_core.serving.engine import load_engine
from tests.conftest import synth_clip


def _mixture(seconds: float = 1.0) -> np.ndarray:
    return synth_clip("tone", 7, seconds) + synth_clip("noise", 8, seconds)


def test_separate_an_array_with_each_query_kind(tiny_separator, separator_assets):
    mixture = _mixture()
    picture = next((separator_assets.raw / "images").rglob("*.png"))
    reference = synth_clip("tone", 9)
    for query in ({"query_text": "a tone sound"}, {"query_audio": reference}, {"query_image": picture},
                  {"query_text": "a tone sound", "query_audio": reference, "query_image": picture}):
        estimate, rate = marssep_core.separate(mixture, sample_rate=16000, model=tiny_separator, **query)
        assert rate == 16000 and estimate.shape == mixture.shape and np.isfinite(estimate).all()


def test_stereo_resampled_long_input_goes_through_overlap_add(tiny_separator):
    left = _mixture(3.0)
    stereo = np.stack([left, 0.5 * left])
    short_windows, _ = marssep_core.separate(stereo, sample_rate=16000, query_text="noise", model=tiny_separator, segment=1.0)
    assert short_windows.shape == (2, 48000)
    from marssep_core.audio.resample import resample

    estimate, rate = marssep_core.separate(resample(left, 16000, 8000), sample_rate=8000, query_text="noise", model=tiny_separator)
    assert rate == 8000 and estimate.shape == (24000,)  # back at the input's rate, sample for sample


def test_a_negative_query_steers_the_query_away_and_the_estimate_follows(tiny_separator):
    mixture = _mixture()
    plain, _ = marssep_core.separate(mixture, sample_rate=16000, query_text="a tone sound", model=tiny_separator)
    steered, _ = marssep_core.separate(mixture, sample_rate=16000, query_text="a tone sound", negative_text="a noise sound", model=tiny_separator)
    engine = load_engine(backend="torch", model=tiny_separator, device="cpu")
    positive, negative = (embed_query(engine.encoder, text=t) for t in ("a tone sound", "a noise sound"))
    away = full_query(engine.encoder, text="a tone sound", negative_text="a noise sound")
    assert float(away @ negative.T) < float(positive @ negative.T)  # further from the negative sound
    assert float(away @ positive.T) > float(away @ negative.T)  # still nearer the positive one
    np.testing.assert_allclose(steered, engine.separate_array(mixture[None], away)[0], atol=1e-6)
    np.testing.assert_allclose(plain, engine.separate_array(mixture[None], positive)[0], atol=1e-6)


def test_array_input_needs_a_sample_rate_and_a_query(tiny_separator):
    with pytest.raises(ValueError, match="sample_rate"):
        marssep_core.separate(_mixture(), query_text="x", model=tiny_separator)
    with pytest.raises(ValueError, match="a query needs"):
        marssep_core.separate(_mixture(), sample_rate=16000, model=tiny_separator)


def test_cli_separates_files_and_skips_missing_ones(tiny_separator, tmp_path, capsys):
    save_audio(tmp_path / "mix.wav", _mixture(), 16000)
    code = main(["separate", str(tmp_path / "mix.wav"), str(tmp_path / "absent.wav"), "--text", "a tone sound",
                 "--backend", "torch", "--model", str(tiny_separator), "-o", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "failed absent: missing_file" in err and "absent.wav: file not found" in err
    estimate, rate = sf.read(tmp_path / "out" / "mix.wav")
    assert rate == 16000 and estimate.shape == (16000,)


def test_cli_refuses_a_model_whose_encoder_is_missing_or_changed(tiny_separator, separator_assets, tmp_path, capsys):
    import shutil

    import torch

    from marssep_core.torch_utils import save_torch_atomic

    payload = torch.load(tiny_separator, weights_only=True)
    payload["encoder"]["path"] = str(tmp_path / "encoder.pt")
    save_torch_atomic(tmp_path / "sep.pt", payload)
    save_audio(tmp_path / "mix.wav", _mixture(), 16000)
    command = ["separate", str(tmp_path / "mix.wav"), "--text", "x", "--backend", "torch", "--model", str(tmp_path / "sep.pt")]
    assert main(command) == 2 and "encoder.pt is missing" in capsys.readouterr().err
    shutil.copy(separator_assets.raw / "classes.csv", tmp_path / "encoder.pt")  # some other file
    assert main(command) == 2 and "md5 differs" in capsys.readouterr().err
    assert main(["separate", str(tmp_path / "mix.wav"), "--backend", "torch", "--model", str(tiny_separator)]) == 2  # no query

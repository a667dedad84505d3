"""Typed text queries looked up among the class texts a separator trained on (serving)."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from marssep_core.audio.io import save_audio
from marssep_core.cli import main
from marssep_core.encoders.api import VOCABULARY_MIN_COSINE, nearest_vocabulary_text
from marssep_core.separation.separator import load_separator, save_separator
from marssep_core.serving.bundle import read_bundle
from marssep_core.serving.engine import load_engine
from marssep_core.serving.export import export_bundle
from tests.conftest import synth_clip

VOCABULARY = ["a tone sound", "a noise sound", "a chirp sound"]


def test_nearest_vocabulary_text_replaces_only_close_rows():
    vocabulary = torch.eye(3, 4)
    close = F.normalize(torch.tensor([[0.9, 0.1, 0.0, 0.0]]), dim=-1)  # cosine 0.99 to row 0
    far = F.normalize(torch.tensor([[0.3, 0.0, 0.0, 1.0]]), dim=-1)  # cosine 0.29 to row 0: below the floor
    out = nearest_vocabulary_text(torch.cat([close, far]), vocabulary)
    assert torch.equal(out[0], vocabulary[0]) and torch.equal(out[1], far[0])
    assert float(far[0] @ vocabulary[0]) < VOCABULARY_MIN_COSINE < float(close[0] @ vocabulary[0])


def _with_vocabulary(tiny_separator, path):
    separator, info = load_separator(tiny_separator)
    save_separator(path, separator, info["encoder"], {**info["meta"], "vocabulary": VOCABULARY})
    return path


def test_both_backends_look_typed_text_up_in_the_models_vocabulary(tiny_separator, tmp_path):
    model = _with_vocabulary(tiny_separator, tmp_path / "sep.pt")
    bundle = tmp_path / "onnx"
    export_bundle(model, bundle)
    assert read_bundle(bundle).vocabulary == VOCABULARY
    torch_engine, onnx_engine = load_engine("torch", model, device="cpu"), load_engine("onnx", bundle, device="cpu")
    for engine in (torch_engine, onnx_engine):
        vocabulary = engine.encoder.text(VOCABULARY)
        typed = engine.encoder.text(["tone", "zzz qqq"])
        looked_up = engine.encoder.text_query(["tone", "zzz qqq"])
        for row in range(2):
            similarity = typed[row] @ vocabulary.T
            expected = vocabulary[int(similarity.argmax())] if float(similarity.max()) >= VOCABULARY_MIN_COSINE else typed[row]
            assert torch.allclose(looked_up[row], expected, atol=1e-6)
        assert torch.allclose(engine.encoder.text_query(VOCABULARY), vocabulary, atol=1e-6)  # a class text is itself
    assert float((torch_engine.encoder.text_query(["tone"]) - onnx_engine.encoder.text_query(["tone"])).abs().max()) < 1e-4
    typed_engine = load_engine("onnx", bundle, device="cpu", typed_text=True)
    assert torch.allclose(typed_engine.encoder.text_query(["tone"]), onnx_engine.encoder.text(["tone"]))


def test_cli_typed_text_flag_skips_the_lookup(tiny_separator, tmp_path):
    """The CLI looks "tone" up as its nearest class text (the separated audio equals that text's
    query) unless --typed-text; a model without a vocabulary uses text as typed."""
    model = _with_vocabulary(tiny_separator, tmp_path / "sep.pt")
    engine = load_engine("torch", model, device="cpu")
    nearest = VOCABULARY[int((engine.encoder.text(["tone"]) @ engine.encoder.text(VOCABULARY).T).argmax())]
    save_audio(tmp_path / "mix.wav", synth_clip("tone", 3, 1.5) + synth_clip("noise", 4, 1.5), 16000)
    outputs = {}
    runs = {"lookup": ["--text", "tone"], "class": ["--text", nearest], "typed": ["--text", "tone", "--typed-text"]}
    for name, args in runs.items():
        code = main(["separate", str(tmp_path / "mix.wav"), *args, "--backend", "torch", "--model", str(model), "--device", "cpu",
                     "-o", str(tmp_path / name)])
        assert code == 0
        outputs[name] = sf.read(tmp_path / name / "mix.wav", dtype="float32")[0]
    similarity = float(engine.encoder.text(["tone"]) @ engine.encoder.text([nearest]).T)
    assert similarity >= VOCABULARY_MIN_COSINE  # the tiny encoder's "tone" is near "a tone sound"
    assert np.array_equal(outputs["lookup"], outputs["class"]) and not np.array_equal(outputs["lookup"], outputs["typed"])
    assert load_separator(tiny_separator)[1]["meta"].get("vocabulary") is None
    plain = load_engine("torch", tiny_separator, device="cpu")
    assert torch.equal(plain.encoder.text_query(["tone"]), plain.encoder.text(["tone"]))

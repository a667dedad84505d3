"""The query-encoding API on a small saved encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from marssep_core.audio.io import save_audio
from marssep_core.encoders.api import QueryEncoder
from marssep_core.encoders.imagebind import ImageBindModel, tiny
from marssep_core.encoders.store import save_encoder
from marssep_core.torch_utils import resolve_device


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("enc") / "encoder.pt"
    save_encoder(path, ImageBindModel(tiny()), 0.07, {"stage": "test"})
    return QueryEncoder.from_checkpoint(path)


def test_batched_embeddings_are_unit_norm(encoder, tmp_path):
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(16000 * 3)).astype(np.float32)
    save_audio(tmp_path / "q.wav", np.stack([wave, wave]), 16000)  # stereo file -> mono
    Image.new("RGB", (300, 240), (10, 200, 30)).save(tmp_path / "q.png")
    text = encoder.text(["a dog barking", "rain falling"])
    audio = encoder.audio([wave, tmp_path / "q.wav"])
    image = encoder.image([tmp_path / "q.png"])
    assert text.shape == (2, 128) and audio.shape == (2, 128) and image.shape == (1, 128)
    for emb in (text, audio, image):
        torch.testing.assert_close(emb.norm(dim=-1), torch.ones(emb.shape[0]))
    torch.testing.assert_close(audio[0], audio[1], atol=1e-4, rtol=1e-4)  # same sound, file or array
    resampled = encoder.audio([wave[::2].copy()], sample_rate=8000)
    assert resampled.shape == (1, 128)


def test_query_mixes_modalities_with_weights(encoder):
    wave = np.zeros(16000, dtype=np.float32)
    text_only = encoder.query(text=["a dog barking"])
    torch.testing.assert_close(text_only, encoder.text(["a dog barking"]))
    both = encoder.query(text=["a dog barking"], audio=[wave], weights={"text": 2.0, "audio": 1.0})
    expected = torch.nn.functional.normalize(2 * encoder.text(["a dog barking"]) + encoder.audio([wave]), dim=-1)
    torch.testing.assert_close(both, expected)
    with pytest.raises(ValueError, match="needs text"):
        encoder.query()
    with pytest.raises(ValueError, match="batch sizes"):
        encoder.query(text=["a", "b"], audio=[wave])


def test_device_resolution():
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            resolve_device("cuda")


def test_saved_encoder_bytes_are_reproducible(tmp_path):
    torch.manual_seed(1)
    model = ImageBindModel(tiny())
    save_encoder(tmp_path / "a.pt", model, 0.07, {"stage": "x"})
    save_encoder(tmp_path / "b.pt", model, 0.07, {"stage": "x"})
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_a_served_query_is_the_evaluations_omni_query_for_the_same_embeddings(separator_assets):
    """`marssep separate --text --audio --image` builds the query the evaluation scores as omni."""
    import pandas as pd

    from marssep_core.encoders.api import QueryEmbedder
    from marssep_core.separation.data import pair_queries
    from marssep_core.separation.queries import QueryBank
    from marssep_core.serving.api import embed_query

    bank = QueryBank.load(separator_assets.queries)

    class BankEmbedder(QueryEmbedder):  # the query bank's embeddings, looked up by what is passed
        def __init__(self):
            super().__init__(77, 128, 204, 224, torch.device("cpu"))

        def _embed(self, modality, inputs):
            raise AssertionError("looked up, never embedded")

        def text(self, texts):
            return torch.stack([bank.text[bank.texts.index(t)] for t in texts])

        def audio(self, clips, sample_rate=None):
            return bank.audio_of(list(clips))

        def image(self, images):
            return bank.image_of(list(images))

    pairs = pd.DataFrame(separator_assets.pairs)
    with_image = pairs[pairs["query_image"] != ""].head(3)
    without_image = with_image.assign(query_image="")  # the same pairs when the class has no picture
    assert len(with_image)
    for _, pair in pd.concat([with_image, without_image]).iterrows():
        expected = pair_queries(pd.DataFrame([pair]), bank)["omni"]
        text = bank.texts[bank.classes.index(pair["target_class"])]
        served = embed_query(BankEmbedder(), text=text, audio=pair["query_audio_clip"], image=pair["query_image"] or None)
        torch.testing.assert_close(served, expected, atol=1e-6, rtol=0)

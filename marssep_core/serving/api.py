"""The functional inference API (PyTorch by default, or an ONNX bundle on onnxruntime).

    from marssep_core import separate
    estimate, rate = separate("mix.wav", query_text="a dog barking", model="models/separator_rl.pt")
    estimate, rate = separate(wave, sample_rate=44100, query_audio="dog.wav", query_image="dog.png",
                              negative_text="speech", segment=4.0, overlap=0.25)
    estimate, rate = separate("mix.wav", query_text="a dog barking", backend="onnx", model="models/onnx")

The mixture (a path or an array ``(N,)`` / ``(C, N)``) is resampled to the model's rate; each
channel is separated with the same query; long inputs go through overlap-add windows of
``segment`` seconds. Queries: any non-empty subset of text, reference audio (path or array at the
model rate) and image (path or PIL image), combined as ``normalize(sum normalize(e_m))``;
``negative_*`` queries steer away from a sound (``q (1 + a) - a q_neg``, ``a = 0.5``). A text
query is first looked up among the class texts the model's text queries trained on (its nearest,
from a cosine of ``VOCABULARY_MIN_COSINE`` on: "dog" -> "a dog barking"); ``typed_text=True``
keeps it as typed.
The result is ``(N,)`` for mono input, ``(C, N)`` otherwise, resampled back to the input's rate
(returned with it), so it lines up sample for sample with the mixture.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from marssep_core.audio.io import load_audio
from marssep_core.audio.resample import resample
from marssep_core.encoders.api import QueryEmbedder
from marssep_core.encoders.vocabulary import OMNI_WEIGHTS, combine
from marssep_core.separation.queries import negative_query
from marssep_core.serving.engine import Engine, load_engine

AudioQuery = str | Path | np.ndarray
ImageQuery = str | Path | Image.Image


@functools.lru_cache(maxsize=4)
def _load(backend: str, model: str, encoder: str | None, device: str, typed_text: bool) -> Engine:
    return load_engine(backend=backend, model=model, encoder=encoder, device=device, typed_text=typed_text)


def _listify(value: Any) -> list | None:
    if value is None:
        return None
    return list(value) if isinstance(value, (list, tuple)) else [value]


def embed_query(
    encoder: QueryEmbedder,
    text: str | list[str] | None = None,
    audio: AudioQuery | list[AudioQuery] | None = None,
    image: ImageQuery | list[ImageQuery] | None = None,
) -> torch.Tensor:
    """One query ``(1, D)`` from any modalities; several items of one modality are averaged, the
    modalities weighted by ``OMNI_WEIGHTS`` (the evaluation's omni query)."""
    parts = {}
    if text is not None:
        parts["text"] = encoder.text_query(_listify(text)).mean(0, keepdim=True)
    if audio is not None:
        parts["audio"] = encoder.audio(_listify(audio)).mean(0, keepdim=True)
    if image is not None:
        parts["image"] = encoder.image(_listify(image)).mean(0, keepdim=True)
    if not parts:
        raise ValueError("a query needs text, reference audio or an image")
    return combine(parts, OMNI_WEIGHTS)


def full_query(
    encoder: QueryEmbedder,
    text: str | list[str] | None = None,
    audio: AudioQuery | list[AudioQuery] | None = None,
    image: ImageQuery | list[ImageQuery] | None = None,
    negative_text: str | list[str] | None = None,
    negative_audio: AudioQuery | list[AudioQuery] | None = None,
    negative_image: ImageQuery | list[ImageQuery] | None = None,
) -> torch.Tensor:
    """``embed_query`` of the positive side, steered away from the negative side when one is given."""
    query = embed_query(encoder, text, audio, image)
    if any(n is not None for n in (negative_text, negative_audio, negative_image)):
        query = negative_query(query, embed_query(encoder, negative_text, negative_audio, negative_image))
    return query


def separate(
    mixture: str | Path | np.ndarray,
    query_text: str | list[str] | None = None,
    query_audio: AudioQuery | list[AudioQuery] | None = None,
    query_image: ImageQuery | list[ImageQuery] | None = None,
    model: str | Path = "models/separator_rl.pt",
    encoder: str | Path | None = None,
    negative_text: str | list[str] | None = None,
    negative_audio: AudioQuery | list[AudioQuery] | None = None,
    negative_image: ImageQuery | list[ImageQuery] | None = None,
    sample_rate: int | None = None,
    device: str = "cpu",
    segment: float | None = 10.0,
    overlap: float = 0.25,
    backend: str = "torch",
    typed_text: bool = False,
) -> tuple[np.ndarray, int]:
    """Separate the sound the query describes; returns ``(estimate, input_sample_rate)``. Text
    queries are looked up among the model's class texts when it records them, unless ``typed_text``."""
    loaded = _load(backend=backend, model=str(model), encoder=str(encoder) if encoder else None, device=device,
                   typed_text=typed_text)
    engine = dataclasses.replace(loaded, segment=segment, overlap=overlap)
    if isinstance(mixture, (str, Path)):
        wave, source_rate = load_audio(mixture)
    else:
        if sample_rate is None:
            raise ValueError("an array mixture needs sample_rate=")
        wave, source_rate = np.asarray(mixture, dtype=np.float32), sample_rate
    mono = wave.ndim == 1
    query = full_query(
        encoder=engine.encoder,
        text=query_text,
        audio=query_audio,
        image=query_image,
        negative_text=negative_text,
        negative_audio=negative_audio,
        negative_image=negative_image,
    )
    at_model_rate = resample(wave[None] if mono else wave, source_rate, engine.sample_rate)
    estimate = resample(engine.separate_array(at_model_rate, query), engine.sample_rate, source_rate)
    estimate = _fit_length(estimate, wave.shape[-1])
    return (estimate[0] if mono else estimate), source_rate


def _fit_length(wave: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad ``(C, n)`` to ``(C, length)`` (resampling round trips can be off by a sample)."""
    if wave.shape[-1] >= length:
        return wave[:, :length]
    return np.pad(wave, ((0, 0), (0, length - wave.shape[-1])))

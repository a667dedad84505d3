"""The functional inference API on PyTorch.

    from marssep_core import separate
    estimate, rate = separate("mix.wav", query_text="a dog barking", model="models/separator_sup.pt")
    estimate, rate = separate(wave, sample_rate=44100, query_audio="dog.wav", query_image="dog.png",
                              negative_text="speech", segment=4.0, overlap=0.25)

The mixture (a path or an array ``(N,)`` / ``(C, N)``) is resampled to the model's rate; each
channel is separated with the same query; long inputs go through overlap-add windows of
``segment`` seconds. Queries: any non-empty subset of text, reference audio (path or array at the
model rate) and image (path or PIL image), combined as ``normalize(sum normalize(e_m))``;
``negative_*`` queries steer away from a sound (``q (1 + a) - a q_neg``, ``a = 0.5``).
The result is ``(N,)`` for mono input, ``(C, N)`` otherwise, at the model's sample rate.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from marssep_core.audio.io import load_audio
from marssep_core.audio.overlap_add import overlap_add
from marssep_core.audio.resample import resample
from marssep_core.encoders.api import QueryEncoder, resolve_device
from marssep_core.encoders.checkpoint import CheckpointError
from marssep_core.io_utils import md5_file
from marssep_core.separation.queries import negative_query
from marssep_core.separation.separator import Separator, load_separator

AudioQuery = str | Path | np.ndarray
ImageQuery = str | Path | Image.Image


@functools.lru_cache(maxsize=4)
def _load(model: str, encoder: str | None, device: str) -> tuple[Separator, QueryEncoder]:
    separator, info = load_separator(model)
    encoder_path = Path(encoder or info["encoder"]["path"])
    if not encoder_path.is_file():
        raise CheckpointError(
            f"{model}: its query encoder {encoder_path} is missing; pass encoder=/path/to/the/encoder.pt"
        )
    expected = info["encoder"].get("md5")
    if encoder is None and expected and md5_file(encoder_path) != expected:
        raise CheckpointError(
            f"{model}: {encoder_path} is not the encoder the separator was trained with (md5 differs); "
            "pass encoder= explicitly to override"
        )
    return separator.to(resolve_device(device)), QueryEncoder.from_checkpoint(encoder_path, device)


def _listify(value: Any) -> list | None:
    if value is None:
        return None
    return list(value) if isinstance(value, (list, tuple)) else [value]


def embed_query(
    encoder: QueryEncoder,
    text: str | list[str] | None = None,
    audio: AudioQuery | list[AudioQuery] | None = None,
    image: ImageQuery | list[ImageQuery] | None = None,
) -> torch.Tensor:
    """One query ``(1, D)`` from any modalities; several items of one modality are averaged."""
    parts = {}
    if text is not None:
        parts["text"] = encoder.text(_listify(text)).mean(0, keepdim=True)
    if audio is not None:
        parts["audio"] = encoder.audio(_listify(audio)).mean(0, keepdim=True)
    if image is not None:
        parts["vision"] = encoder.image(_listify(image)).mean(0, keepdim=True)
    if not parts:
        raise ValueError("a query needs text, reference audio or an image")
    total = sum(torch.nn.functional.normalize(e, dim=-1) for e in parts.values())
    return torch.nn.functional.normalize(total, dim=-1)


def separate(
    mixture: str | Path | np.ndarray,
    query_text: str | list[str] | None = None,
    query_audio: AudioQuery | list[AudioQuery] | None = None,
    query_image: ImageQuery | list[ImageQuery] | None = None,
    model: str | Path = "models/separator_sup.pt",
    encoder: str | Path | None = None,
    negative_text: str | list[str] | None = None,
    negative_audio: AudioQuery | list[AudioQuery] | None = None,
    negative_image: ImageQuery | list[ImageQuery] | None = None,
    sample_rate: int | None = None,
    device: str = "cpu",
    segment: float | None = 10.0,
    overlap: float = 0.25,
) -> tuple[np.ndarray, int]:
    """Separate the sound the query describes; returns ``(estimate, model_sample_rate)``."""
    separator, query_encoder = _load(str(model), str(encoder) if encoder else None, device)
    rate = separator.sample_rate
    if isinstance(mixture, (str, Path)):
        wave, source_rate = load_audio(mixture)
    else:
        if sample_rate is None:
            raise ValueError("an array mixture needs sample_rate=")
        wave, source_rate = np.asarray(mixture, dtype=np.float32), sample_rate
    mono = wave.ndim == 1
    wave = resample(wave[None] if mono else wave, source_rate, rate)
    query = embed_query(query_encoder, query_text, query_audio, query_image)
    if any(n is not None for n in (negative_text, negative_audio, negative_image)):
        query = negative_query(query, embed_query(query_encoder, negative_text, negative_audio, negative_image))
    device_t = next(separator.parameters()).device
    query = query.to(device_t)

    @torch.inference_mode()
    def process(window: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(window).to(device_t)
        return separator(batch, query.expand(batch.shape[0], -1)).float().cpu().numpy()

    length = int(round(segment * rate)) if segment else wave.shape[-1]
    estimate = overlap_add(process, wave, max(1, length), overlap)
    return (estimate[0] if mono else estimate), rate

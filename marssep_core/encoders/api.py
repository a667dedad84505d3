"""Query encoding for the separator and the RL reward: text, audio, images, or a mix of them.

    encoder = QueryEncoder.from_checkpoint("models/encoder/stage3.pt", device="auto")
    q = encoder.query(text=["a dog barking"], audio=[wave], image=[Image.open("dog.png")])

Every method returns unit-norm ``(B, D)`` float32 tensors on the encoder's device; batches run
in one forward pass per modality. With a ``vocabulary`` (the class texts a separator's text
queries trained on), ``text_query`` looks a typed text up among them: "dog" becomes the embedding
of "a dog barking" when that is its nearest class text by at least ``VOCABULARY_MIN_COSINE``.
``query`` combines modalities as ``normalize(sum_m w_m normalize(e_m))`` (default weights equal;
the evaluation's "omni" query is ``weights={"vision": 2, "text": 2, "audio": 1}``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from marssep_core.audio.io import load_audio, to_mono
from marssep_core.audio.resample import resample
from marssep_core.encoders.imagebind import ImageBindModel
from marssep_core.encoders.preprocess import AudioPreprocessConfig, audio_to_model_input, image_to_model_input
from marssep_core.encoders.store import load_encoder
from marssep_core.encoders.tokenizer import ClipTokenizer
from marssep_core.encoders.vocabulary import OMNI_WEIGHTS, combine
from marssep_core.torch_utils import resolve_device


# a typed text is looked up as its nearest vocabulary text only from this cosine on (a text unlike
# every class text stays as typed)
VOCABULARY_MIN_COSINE = 0.5


def nearest_vocabulary_text(embedded: torch.Tensor, vocabulary: torch.Tensor,
                            min_cosine: float = VOCABULARY_MIN_COSINE) -> torch.Tensor:
    """Each row of ``embedded (B, D)`` replaced by its nearest row of ``vocabulary (K, D)`` (both
    unit norm) when their cosine is at least ``min_cosine``, else kept."""
    best, index = (embedded @ vocabulary.T).max(dim=1)
    return torch.where((best >= min_cosine)[:, None], vocabulary[index], embedded)


class QueryEmbedder(ABC):
    """Batched query embeddings with the encoder's preprocessing; ``_embed`` runs a tower.

    Subclasses: ``QueryEncoder`` (PyTorch) and ``marssep_core.serving.bundle.OnnxQueryEncoder``
    (onnxruntime); both share the tokenizer, the audio front end and the image transform.
    """

    def __init__(self, context_length: int, mel_bins: int, audio_frames: int, image_size: int, device: torch.device,
                 tokenizer: ClipTokenizer | None = None):
        self.device = device
        self.tokenizer = tokenizer or ClipTokenizer(context_length=context_length)
        self.audio_cfg = AudioPreprocessConfig(mel_bins=mel_bins, target_frames=audio_frames)
        self.image_size = image_size
        self.vocabulary: list[str] = []
        self._vocabulary_embedded: torch.Tensor | None = None

    def set_vocabulary(self, texts: Sequence[str]) -> None:
        """Set the class texts ``text_query`` looks typed texts up among (empty: none)."""
        self.vocabulary, self._vocabulary_embedded = list(texts), None

    @property
    def sample_rate(self) -> int:
        return self.audio_cfg.sample_rate

    @abstractmethod
    def _embed(self, modality: str, inputs: torch.Tensor) -> torch.Tensor:
        """Model inputs for ``modality`` -> unit-norm ``(B, D)`` float32 on ``self.device``."""

    @torch.inference_mode()
    def text(self, texts: Sequence[str]) -> torch.Tensor:
        return self._embed("text", self.tokenizer(list(texts)))

    @torch.inference_mode()
    def text_query(self, texts: Sequence[str]) -> torch.Tensor:
        """``text`` looked up among the vocabulary (``nearest_vocabulary_text``); as typed without one."""
        embedded = self.text(texts)
        if not self.vocabulary:
            return embedded
        if self._vocabulary_embedded is None:
            self._vocabulary_embedded = self.text(self.vocabulary)
        return nearest_vocabulary_text(embedded, self._vocabulary_embedded)

    @torch.inference_mode()
    def audio(self, clips: Sequence[np.ndarray | str | Path], sample_rate: int | None = None) -> torch.Tensor:
        """Waveforms ``(samples,)`` at ``sample_rate`` (default: the encoder's) or file paths."""
        batch = []
        for clip in clips:
            if isinstance(clip, (str, Path)):
                audio, rate = load_audio(clip)
                wave = resample(to_mono(audio), rate, self.sample_rate)
            else:
                wave = resample(np.asarray(clip, dtype=np.float32), sample_rate or self.sample_rate, self.sample_rate)
            batch.append(audio_to_model_input(torch.from_numpy(np.ascontiguousarray(wave)), self.audio_cfg))
        return self._embed("audio", torch.stack(batch))

    @torch.inference_mode()
    def image(self, images: Sequence[Image.Image | str | Path]) -> torch.Tensor:
        pixels = [
            image_to_model_input(Image.open(i) if isinstance(i, (str, Path)) else i, self.image_size) for i in images
        ]
        return self._embed("vision", torch.stack(pixels))

    def query(
        self,
        text: Sequence[str] | None = None,
        audio: Sequence[np.ndarray | str | Path] | None = None,
        image: Sequence[Image.Image | str | Path] | None = None,
        weights: dict[str, float] | None = None,
    ) -> torch.Tensor:
        """A combined query ``(B, D)`` from any non-empty subset of modalities (equal batch sizes),
        weighted by ``weights`` (default ``OMNI_WEIGHTS``, as the evaluation's omni query)."""
        parts = {"text": self.text_query(text) if text else None, "audio": self.audio(audio) if audio else None,
                 "image": self.image(image) if image else None}
        present = {m: e for m, e in parts.items() if e is not None}
        if not present:
            raise ValueError("a query needs text, audio or an image")
        sizes = {e.shape[0] for e in present.values()}
        if len(sizes) > 1:
            raise ValueError(f"query modalities have different batch sizes: { {m: e.shape[0] for m, e in present.items()} }")
        return combine(present, OMNI_WEIGHTS if weights is None else weights)


class QueryEncoder(QueryEmbedder):
    """A frozen PyTorch encoder with its preprocessing."""

    def __init__(self, model: ImageBindModel, device: str = "cpu", tokenizer: ClipTokenizer | None = None):
        cfg = model.cfg
        super().__init__(context_length=cfg.context_length, mel_bins=cfg.mel_bins, audio_frames=cfg.audio_frames,
                         image_size=cfg.image_size, device=resolve_device(device), tokenizer=tokenizer)
        self.model = model.to(self.device).eval().requires_grad_(False)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> QueryEncoder:
        model, _, _ = load_encoder(Path(path))
        return cls(model, device)

    def _embed(self, modality: str, inputs: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.model.embed(modality, inputs.to(self.device)), dim=-1)

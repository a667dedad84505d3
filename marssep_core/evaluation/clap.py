"""LAION-CLAP as the semantic judge, from a local checkpoint.

Install ``laion-clap`` yourself (it is not a default dependency: it pulls ``transformers`` and
downloads the RoBERTa tokenizer on first use, so the machine needs that cached) and point
``evaluate.judge`` at the checkpoint, e.g. ``music_speech_audioset_epoch_15_esc_89.98.pt``
(HTSAT-base audio tower, no fusion). Audio is resampled to CLAP's 48 kHz and int16-quantised as
the LAION-CLAP examples do; embeddings come back L2-normalised.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from marssep_core.audio.resample import resample

CLAP_SAMPLE_RATE = 48000


class LaionClapJudge:
    """``SemanticJudge`` over ``laion_clap.CLAP_Module``."""

    name = "laion-clap"

    def __init__(self, checkpoint: str | Path, classes: list[str], texts: list[str], audio_model: str = "HTSAT-base", batch: int = 16):
        checkpoint = Path(checkpoint)
        if not checkpoint.is_file():
            raise FileNotFoundError(f"{checkpoint}: LAION-CLAP checkpoint not found")
        try:
            laion_clap = importlib.import_module("laion_clap")
        except ImportError:
            raise ImportError(f"{checkpoint}: using a LAION-CLAP judge needs `pip install laion-clap`") from None
        self.model = laion_clap.CLAP_Module(enable_fusion=False, amodel=audio_model)
        self.model.load_ckpt(str(checkpoint))
        self.classes, self.texts, self.batch = list(classes), list(texts), batch
        self._class_embeddings = self.embed_text(self.texts)

    @torch.no_grad()
    def embed_audio(self, waves: np.ndarray, sample_rate: int) -> torch.Tensor:
        waves = np.atleast_2d(np.asarray(waves, dtype=np.float32))
        waves = np.stack([resample(w, sample_rate, CLAP_SAMPLE_RATE) for w in waves])
        waves = (np.clip(waves, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0
        chunks = [torch.as_tensor(self.model.get_audio_embedding_from_data(x=torch.from_numpy(waves[i : i + self.batch]), use_tensor=True)).float().cpu()
                  for i in range(0, len(waves), self.batch)]
        return F.normalize(torch.cat(chunks), dim=-1)

    @torch.no_grad()
    def embed_text(self, texts: list[str]) -> torch.Tensor:
        embedded = torch.as_tensor(self.model.get_text_embedding(list(texts), use_tensor=True)).float().cpu()
        return F.normalize(embedded, dim=-1)

    def class_embeddings(self) -> torch.Tensor:
        return self._class_embeddings

"""Training and evaluation inputs for the encoder: audio crops, class texts, class pictures.

``EncoderData`` holds the clean clips (through the audio bank), the text of each class and its
other wordings (tokenised; ``encoders/phrasing.py``) and the class pictures (preprocessed).
Batches are class-balanced: classes are drawn uniformly, then a clip of the class, then a random
2 s crop of it, so rare everyday classes are seen as often as the 64-clip instruments.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from marssep_core.data.audio_bank import AudioBank, load_audio_bank
from marssep_core.encoders.augment import FbankAugmentConfig, augment_fbank
from marssep_core.encoders.phrasing import phrasings
from marssep_core.encoders.preprocess import AudioPreprocessConfig, audio_to_model_input, image_to_model_input
from marssep_core.encoders.tokenizer import ClipTokenizer


@dataclass
class Batch:
    """``audio (B, 1, M, T)``, ``text (B, L)`` ids, ``image (B, 3, S, S)`` with ``has_image (B,)``,
    ``labels (B,)`` class indices; ``text_pair (B, L)``: another wording of each row's class, when
    drawn."""

    audio: torch.Tensor
    text: torch.Tensor
    image: torch.Tensor
    has_image: torch.Tensor
    labels: torch.Tensor
    text_pair: torch.Tensor | None = None


class EncoderData:
    """Clips of one bank, class texts and pictures, shared by pretraining, alignment and metrics."""

    def __init__(self, bank: AudioBank, raw_dir: Path, tokenizer: ClipTokenizer, image_size: int):
        self.bank = bank
        classes = pd.read_csv(raw_dir / "classes.csv", keep_default_na=False)
        classes = classes[classes["class"].isin(set(bank.index["class"]))].sort_values("class")
        self.classes: list[str] = classes["class"].tolist()
        self.class_index = {label: i for i, label in enumerate(self.classes)}
        self.corpus_of = dict(zip(classes["class"], classes["corpus"]))
        self.texts: list[str] = classes["text"].tolist()
        self.text_tokens = tokenizer(self.texts)  # (C, L)
        # (K_c, L) per class; row 0 is the class text
        self.wording_tokens = [tokenizer(phrasings(label, text)) for label, text in zip(self.classes, self.texts)]
        images = pd.read_csv(raw_dir / "images.csv", keep_default_na=False)
        self.images: dict[int, torch.Tensor] = {}
        for label, part in images.groupby("class"):
            if label in self.class_index:
                stack = [image_to_model_input(Image.open(raw_dir / p), image_size) for p in sorted(part["path"])]
                self.images[self.class_index[label]] = torch.stack(stack)
        self.audio_cfg = AudioPreprocessConfig(sample_rate=bank.sample_rate)

    def clips(self, split: str) -> pd.DataFrame:
        return self.bank.split(split)

    def labels_of(self, clips: pd.DataFrame) -> torch.Tensor:
        return torch.tensor([self.class_index[c] for c in clips["class"]])

    def crop_input(self, clip_id: str, rng: np.random.Generator, augment: FbankAugmentConfig | None = None) -> torch.Tensor:
        """One random ``clip_seconds`` crop as fbank ``(1, M, T)``, augmented when ``augment`` is on."""
        length = int(self.audio_cfg.clip_seconds * self.bank.sample_rate)
        wave = self.bank.clip(clip_id)
        start = int(rng.integers(0, max(1, wave.shape[0] - length + 1)))
        piece = torch.from_numpy(np.ascontiguousarray(wave[start : start + length]))
        single = AudioPreprocessConfig(sample_rate=self.bank.sample_rate, clips=1)
        fbank = audio_to_model_input(piece, single)[0]
        if augment is None or not augment.active:
            return fbank
        window = int(single.sample_rate * single.frame_length_ms / 1000)
        shift = int(single.sample_rate * single.frame_shift_ms / 1000)
        valid_frames = 1 + (piece.shape[0] - window) // shift if piece.shape[0] >= window else 0
        return augment_fbank(fbank, valid_frames=valid_frames, cfg=augment, std=single.std, rng=rng)

    def full_input(self, clip_id: str) -> torch.Tensor:
        """The whole clip as the official model sees it: ``(clips, 1, M, T)``."""
        return audio_to_model_input(torch.from_numpy(self.bank.clip(clip_id)), self.audio_cfg)

    def sample(self, split: str, batch_size: int, rng: np.random.Generator, augment: FbankAugmentConfig | None = None,
               wordings: bool = False, wording_pairs: bool = False) -> Batch:
        """``batch_size`` class-balanced rows; ``wordings``: each row's text a random wording of its
        class (else the class text); ``wording_pairs`` (with ``wordings``): ``text_pair`` holds
        another wording of the row's class, drawn last so the other draws stay as without it."""
        clips = self.clips(split)
        by_class = {label: part["clip_id"].to_numpy() for label, part in clips.groupby("class")}
        labels = sorted(by_class)
        chosen = [labels[i] for i in rng.integers(0, len(labels), size=batch_size)]
        audio, images, has_image = [], [], []
        for label in chosen:
            audio.append(self.crop_input(str(rng.choice(by_class[label])), rng, augment=augment))
            pictures = self.images.get(self.class_index[label])
            has_image.append(pictures is not None)
            images.append(pictures[rng.integers(len(pictures))] if pictures is not None else None)
        blank = torch.zeros_like(next((i for i in images if i is not None), torch.zeros(3, 1, 1)))
        index = torch.tensor([self.class_index[label] for label in chosen])
        if wording_pairs and not wordings:
            raise ValueError("wording_pairs needs wordings: the pair would be the class text twice")
        text_pair = None
        if wordings:
            options = [self.wording_tokens[int(i)] for i in index]
            first = [int(rng.integers(len(o))) for o in options]
            text = torch.stack([o[k] for o, k in zip(options, first)])
            if wording_pairs:  # a different wording of the class (offset 1..K-1 from the first)
                text_pair = torch.stack([o[(k + 1 + int(rng.integers(max(1, len(o) - 1)))) % len(o)] for o, k in zip(options, first)])
        else:
            text = self.text_tokens[index]
        return Batch(
            audio=torch.stack(audio),
            text=text,
            image=torch.stack([i if i is not None else blank for i in images]),
            has_image=torch.tensor(has_image),
            labels=index,
            text_pair=text_pair,
        )

    def sample_same_class(self, split: str, labels: torch.Tensor, rng: np.random.Generator,
                          augment: FbankAugmentConfig | None = None) -> torch.Tensor:
        """A crop ``(B, 1, M, T)`` of a clip of each row's class (another clip where one exists)."""
        clips = self.clips(split)
        by_class = {self.class_index[c]: part["clip_id"].to_numpy() for c, part in clips.groupby("class")}
        return torch.stack([self.crop_input(str(rng.choice(by_class[int(label)])), rng, augment=augment) for label in labels])


def open_data(raw_dir: Path, bank_dir: Path, image_size: int) -> EncoderData:
    """The clips of the audio bank at ``bank_dir`` with the class texts and pictures of ``raw_dir``."""
    return EncoderData(load_audio_bank(bank_dir), raw_dir, ClipTokenizer(), image_size)

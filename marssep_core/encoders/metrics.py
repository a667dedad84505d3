"""Encoder quality: cross-modal retrieval, zero-shot accuracy, target-vs-mixture similarity gap.

Retrieval is class-level, on a split's clips: audio->text ranks the class texts for each clip
(hit when the clip's class text is in the top k); text->audio ranks the clips for each class text
(hit when a clip of that class is in the top k); audio->audio ranks the other clips;
audio->image and image->audio use the class pictures. Zero-shot accuracy classifies each test clip
by its most similar class text within its corpus. The gap is the paper's
``mean cos(q, target audio) - cos(q, mixture audio)`` over the fixed test pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from marssep_core.audio.mixing import mix_pair
from marssep_core.encoders.data import EncoderData
from marssep_core.encoders.imagebind import ImageBindModel
from marssep_core.encoders.preprocess import audio_to_model_input


def embed_on_device(model: ImageBindModel, modality: str, inputs: torch.Tensor) -> torch.Tensor:
    """Embeddings ``(B, D)`` on the CPU in float32, computed on the model's device."""
    device = next(model.parameters()).device
    return model.embed(modality, inputs.to(device)).float().cpu()


@torch.no_grad()
def embed_audio(model: ImageBindModel, data: EncoderData, clip_ids: list[str], batch: int = 32) -> torch.Tensor:
    """Unit-norm audio embeddings ``(N, D)`` of whole clips (3 clips of 2 s each, averaged)."""
    out = [
        embed_on_device(model, "audio", torch.stack([data.full_input(c) for c in clip_ids[i : i + batch]]))
        for i in range(0, len(clip_ids), batch)
    ]
    return F.normalize(torch.cat(out), dim=-1)


@torch.no_grad()
def embed_waves(model: ImageBindModel, data: EncoderData, waves: list[np.ndarray], batch: int = 32) -> torch.Tensor:
    """Unit-norm audio embeddings ``(N, D)`` of waveforms at the bank's sample rate."""
    inputs = [audio_to_model_input(torch.from_numpy(w.astype(np.float32)), data.audio_cfg) for w in waves]
    out = [embed_on_device(model, "audio", torch.stack(inputs[i : i + batch])) for i in range(0, len(inputs), batch)]
    return F.normalize(torch.cat(out), dim=-1)


@torch.no_grad()
def embed_texts(model: ImageBindModel, data: EncoderData) -> torch.Tensor:
    return F.normalize(embed_on_device(model, "text", data.text_tokens), dim=-1)


@torch.no_grad()
def embed_images(model: ImageBindModel, data: EncoderData) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit-norm picture embeddings ``(K, D)`` and their class indices ``(K,)``."""
    labels = [label for label, stack in sorted(data.images.items()) for _ in range(stack.shape[0])]
    pictures = torch.cat([stack for _, stack in sorted(data.images.items())])
    return F.normalize(embed_on_device(model, "vision", pictures), dim=-1), torch.tensor(labels)


def recall_at(similarity: torch.Tensor, relevant: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Share of queries (rows) with a relevant gallery item (column) among their top k."""
    order = similarity.argsort(dim=1, descending=True)
    hits = relevant.gather(1, order)
    return {k: float(hits[:, :k].any(dim=1).float().mean()) for k in ks}


@torch.no_grad()
def retrieval_metrics(model: ImageBindModel, data: EncoderData, split: str = "val") -> dict[str, float]:
    model.eval()
    clips = data.clips(split)
    labels = data.labels_of(clips)
    audio = embed_audio(model, data, clips["clip_id"].tolist())
    text = embed_texts(model, data)
    class_ids = torch.arange(len(data.classes))
    results: dict[str, float] = {}
    pairs = {
        "audio_text": (audio @ text.T, labels[:, None] == class_ids[None, :]),
        "text_audio": (text @ audio.T, class_ids[:, None] == labels[None, :]),
    }
    same = labels[:, None] == labels[None, :]
    self_sim = (audio @ audio.T).fill_diagonal_(-float("inf"))
    pairs["audio_audio"] = (self_sim, same & ~torch.eye(len(labels), dtype=torch.bool))
    if data.images:
        images, image_labels = embed_images(model, data)
        pictured = torch.isin(labels, image_labels)
        pairs["audio_image"] = ((audio @ images.T)[pictured], (labels[:, None] == image_labels[None, :])[pictured])
        pairs["image_audio"] = (images @ audio.T, image_labels[:, None] == labels[None, :])
    for name, (similarity, relevant) in pairs.items():
        keep = relevant.any(dim=1)  # queries with something to find
        for k, value in recall_at(similarity[keep], relevant[keep]).items():
            results[f"{name}_r{k}"] = round(value, 4)
    return results


@torch.no_grad()
def zero_shot_accuracy(model: ImageBindModel, data: EncoderData, split: str = "test") -> dict[str, float]:
    """Text->audio zero-shot class accuracy per corpus and over all clips."""
    model.eval()
    clips = data.clips(split)
    audio = embed_audio(model, data, clips["clip_id"].tolist())
    text = embed_texts(model, data)
    labels = data.labels_of(clips)
    similarity = audio @ text.T
    corpus_of_class = np.array([data.corpus_of[c] for c in data.classes])
    results, correct_all = {}, []
    for corpus in sorted(set(corpus_of_class)):
        rows = torch.tensor((clips["corpus"] == corpus).to_numpy())
        allowed = torch.from_numpy(corpus_of_class == corpus)
        predicted = similarity[rows].masked_fill(~allowed[None, :], -float("inf")).argmax(dim=1)
        correct = predicted == labels[rows]
        results[f"zero_shot_acc_{corpus}"] = round(float(correct.float().mean()), 4)
        correct_all.append(correct)
    results["zero_shot_acc"] = round(float(torch.cat(correct_all).float().mean()), 4)
    return results


@torch.no_grad()
def similarity_gap(model: ImageBindModel, data: EncoderData, pairs: pd.DataFrame) -> dict[str, float]:
    """``cos(q, target) - cos(q, mixture)`` averaged over test pairs, for text and audio queries."""
    model.eval()
    rate = data.bank.sample_rate
    targets, mixtures = [], []
    for pair in pairs.itertuples(index=False):
        length = int(round(pair.crop_seconds * rate))
        target = data.bank.crop(pair.target_clip, length, int(round(pair.target_offset_s * rate)))
        interferer = data.bank.crop(pair.interferer_clip, length, int(round(pair.interferer_offset_s * rate)))
        mixture, target, _ = mix_pair(target, interferer, float(pair.snr_db))
        targets.append(target)
        mixtures.append(mixture)
    target_emb, mixture_emb = embed_waves(model, data, targets), embed_waves(model, data, mixtures)
    text = embed_texts(model, data)[torch.tensor([data.class_index[c] for c in pairs["target_class"]])]
    audio_query = embed_audio(model, data, pairs["query_audio_clip"].tolist())
    gap_text = (text * target_emb).sum(-1) - (text * mixture_emb).sum(-1)
    gap_audio = (audio_query * target_emb).sum(-1) - (audio_query * mixture_emb).sum(-1)
    return {"gap_text": round(float(gap_text.mean()), 4), "gap_audio": round(float(gap_audio.mean()), 4)}

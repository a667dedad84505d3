"""DVC stage ``train_fusion``: MLBP fusion of the reward anchor, trained on frozen aligned embeddings.

Each step builds anchors from a query clip of a row's class (another clip than the row's own),
the class text and the class picture, with each modality dropped with ``modality_dropout`` (at
least one kept), and pulls the anchor towards the row's clip embedding with InfoNCE. The kept
weights are those with the best validation anchor accuracy (``anchor_acc_mlbp``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from marssep_core.encoders import losses
from marssep_core.encoders.data import EncoderData
from marssep_core.encoders.fusion import FUSION_KINDS, MLBPFusion, fuse
from marssep_core.encoders.imagebind import ImageBindModel
from marssep_core.encoders.metrics import embed_audio, embed_images, embed_texts
from marssep_core.encoders.store import load_encoder
from marssep_core.io_utils import md5_file, write_json_atomic
from marssep_core.torch_utils import save_torch_atomic
from marssep_core.training.loop import LoopConfig, clear_run, fingerprint_of, train_loop


@dataclass(frozen=True)
class FusionTrainConfig:
    """``encoder.fusion``: the MLBP rank and its training (the loop's settings plus the loss's)."""

    rank: int = 128
    modality_dropout: float = 0.3
    temperature: float = 0.07
    loop: LoopConfig = LoopConfig(steps=400, batch_size=64, lr=3e-3, warmup=0, eval_every=100)


def _fusion_inputs(model: ImageBindModel, data: EncoderData, split: str) -> dict[str, torch.Tensor]:
    clips = data.clips(split)
    audio = embed_audio(model, data, clips["clip_id"].tolist())
    text = embed_texts(model, data)
    images, image_labels = embed_images(model, data) if data.images else (None, torch.zeros(0, dtype=torch.long))
    vision = torch.zeros_like(text)
    has_vision = torch.zeros(len(data.classes), dtype=torch.bool)
    if images is not None:
        for label in image_labels.unique():
            vision[label] = F.normalize(images[image_labels == label].mean(0), dim=-1)
            has_vision[label] = True
    return {"audio": audio, "labels": data.labels_of(clips), "text": text, "vision": vision, "has_vision": has_vision}


def _query_audio(audio: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """For each clip, the embedding of another clip of its class (itself if it is the only one)."""
    picked = []
    for row, label in enumerate(labels.tolist()):
        same = torch.nonzero(labels == label).flatten().tolist()
        others = [i for i in same if i != row] or [row]
        picked.append(others[rng.integers(len(others))])
    return audio[torch.tensor(picked)]


def anchor_accuracy(kind: str, inputs: dict[str, torch.Tensor], fusion: MLBPFusion | None, seed: int = 0) -> float:
    """Class faithfulness of the reward anchor: build one anchor per class from a query clip of the
    class, its text and its picture (when it has one); score the class's *other* clips by nearest
    anchor. ``kind`` in ``FUSION_KINDS``."""
    rng = np.random.default_rng(seed)
    labels, audio = inputs["labels"], inputs["audio"]
    classes = labels.unique().tolist()
    anchors, query_rows = [], set()
    with torch.no_grad():
        for label in classes:
            rows = torch.nonzero(labels == label).flatten().tolist()
            query_row = rows[rng.integers(len(rows))]
            query_rows.add(query_row)
            parts = {
                "audio": audio[query_row][None],
                "text": inputs["text"][label][None],
                "vision": inputs["vision"][label][None] if inputs["has_vision"][label] else None,
            }
            anchors.append(fuse(kind, parts, fusion)[0])
        predicted = torch.tensor(classes)[(audio @ torch.stack(anchors).T).argmax(dim=1)]
    scored = torch.tensor([row not in query_rows for row in range(len(labels))])
    return round(float((predicted == labels)[scored].float().mean()), 4)


class FusionTask:
    """``Task`` of MLBP training: anchors of sampled rows against their clips' embeddings."""

    def __init__(self, train: dict[str, torch.Tensor], val: dict[str, torch.Tensor], cfg: FusionTrainConfig):
        self.train, self.val, self.cfg = train, val, cfg

    def loss(self, model: nn.Module, rng: np.random.Generator, batch_size: int, device: torch.device
             ) -> tuple[torch.Tensor, dict[str, float]]:
        train, labels = self.train, self.train["labels"]
        rows = torch.from_numpy(rng.integers(0, len(labels), size=batch_size))
        query = _query_audio(train["audio"], labels, rng)[rows]
        batch_labels = labels[rows]
        keep = {m: torch.from_numpy(rng.random(batch_size) >= self.cfg.modality_dropout) for m in ("audio", "text", "vision")}
        keep["vision"] &= train["has_vision"][batch_labels]
        keep["text"] |= ~(keep["audio"] | keep["text"] | keep["vision"])  # every row keeps one modality
        inputs = {"audio": query, "text": train["text"][batch_labels], "vision": train["vision"][batch_labels]}
        anchors = model({m: v.to(device) for m, v in inputs.items()}, present={m: v.to(device) for m, v in keep.items()})
        return losses.info_nce(anchors, train["audio"][rows].to(device), self.cfg.temperature, batch_labels.to(device)), {}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        # the accuracy is computed on the CPU from CPU embeddings; the small copy leaves the
        # trained model on its device
        return {"anchor_acc_mlbp": anchor_accuracy("mlbp", self.val, copy.deepcopy(model).cpu())}


def run_fusion_stage(
    encoder_path: Path, data: EncoderData, cfg: FusionTrainConfig, out_model: Path, out_metrics: Path, run_dir: Path
) -> dict[str, Any] | None:
    """Train MLBP on frozen aligned embeddings (resuming from ``run_dir``) and report anchor
    accuracy for every fusion kind. Returns the report on rank 0, ``None`` on other DDP ranks."""
    torch.manual_seed(cfg.loop.seed)
    model, _, _ = load_encoder(encoder_path)
    model.eval()
    train, val = _fusion_inputs(model, data, "train"), _fusion_inputs(model, data, "val")
    fusion = MLBPFusion(model.cfg.out_dim, cfg.rank)
    result = train_loop(model=fusion, task=FusionTask(train, val, cfg), cfg=cfg.loop, run_dir=run_dir,
                        fingerprint=fingerprint_of(cfg, md5_file(encoder_path)), selection_metric="anchor_acc_mlbp",
                        desc="fusion")
    if not result.dist.is_main:
        return None
    fusion.load_state_dict(result.best_state)
    fusion.cpu().eval()
    report = {f"anchor_acc_{kind}": anchor_accuracy(kind, val, fusion) for kind in FUSION_KINDS}
    report["best_step"] = result.best_step
    save_torch_atomic(
        out_model, {"format": "marssep-mlbp-v1", "dim": model.cfg.out_dim, "rank": cfg.rank, "state_dict": fusion.state_dict()}
    )
    write_json_atomic(out_metrics, report)
    clear_run(run_dir)
    return report

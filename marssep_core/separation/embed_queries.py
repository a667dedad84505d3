"""DVC stage ``embed_queries``: the query bank (see ``queries``) computed with the aligned encoder.

Kept apart from ``queries`` so that the stages which only read a bank (training, RL, evaluation,
export) do not import, or depend on, the encoder's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from marssep_core.encoders.data import EncoderData, open_data
from marssep_core.encoders.imagebind import ImageBindModel
from marssep_core.encoders.metrics import embed_audio, embed_on_device, embed_texts
from marssep_core.encoders.store import load_encoder
from marssep_core.io_utils import md5_file
from marssep_core.separation.queries import QueryBank
from marssep_core.torch_utils import resolve_device


@dataclass(frozen=True)
class EmbedQueriesConfig:
    """``embed_queries`` params section."""

    device: str = "auto"  # cpu | cuda | auto (CUDA when present)
    batch: int = 32  # clips (or pictures) per encoder call


def build_query_bank(model: ImageBindModel, data: EncoderData, raw_dir: Path, encoder_path: Path, batch: int = 32) -> QueryBank:
    """Embed every bank clip, class text and class picture with ``model`` (eval mode, on its
    device; the bank's tensors are on the CPU), ``batch`` inputs per call."""
    model.eval()
    clip_ids = data.bank.index["clip_id"].tolist()
    images = pd.read_csv(raw_dir / "images.csv", keep_default_na=False)
    # EncoderData stacks each class's pictures in sorted path order: keep that order here
    paths, labels, stacks = [], [], []
    for label in data.classes:
        stack = data.images.get(data.class_index[label])
        if stack is None:
            continue
        paths += sorted(images.loc[images["class"] == label, "path"])
        labels += [label] * stack.shape[0]
        stacks.append(stack)
    with torch.no_grad():
        pictures = torch.cat(stacks) if stacks else None
        vision = (F.normalize(torch.cat([embed_on_device(model, "vision", pictures[i : i + batch])
                                         for i in range(0, len(pictures), batch)]), dim=-1)
                  if stacks else torch.zeros(0, 1))
    return QueryBank(
        clip_ids=clip_ids,
        audio=embed_audio(model, data, clip_ids, batch),
        classes=list(data.classes),
        texts=list(data.texts),
        text=embed_texts(model, data),
        image_paths=paths,
        image_classes=labels,
        image=vision,
        encoder={"path": str(encoder_path), "md5": md5_file(encoder_path)},
    )


def run_embed_queries(encoder_path: Path, raw_dir: Path, bank_dir: Path, out: Path,
                      cfg: EmbedQueriesConfig = EmbedQueriesConfig()) -> dict[str, Any]:
    """DVC stage ``embed_queries``: every clip, class text and picture embedded with the aligned
    encoder (on ``cfg.device``) into a query bank at ``out``."""
    model, _, meta = load_encoder(encoder_path)
    model.to(resolve_device(cfg.device))
    data = open_data(raw_dir, bank_dir, model.cfg.image_size)
    bank = build_query_bank(model=model, data=data, raw_dir=raw_dir, encoder_path=encoder_path, batch=cfg.batch)
    bank.save(out)
    return {"clips": len(bank.clip_ids), "classes": len(bank.classes), "pictures": len(bank.image_paths),
            "dim": bank.dim, "encoder_stage": meta.get("stage", "")}

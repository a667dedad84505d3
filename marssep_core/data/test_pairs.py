"""The fixed, versioned evaluation pairs of each corpus.

A pair is a target clip from the clean test split, an interferer of another class (also from the
test split), an SNR drawn uniformly from ``[snr_db_min, snr_db_max]``, crop offsets, and the
queries: the class text, an audio query that is a *different* clip of the target class (from the
test split when it has one, else val, then train; never the target), and a picture of the class
when the class has one. Targets cycle through the classes so every class is evaluated evenly.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from marssep_core.config import TestPairsConfig

PAIR_COLUMNS = [
    "pair_id",
    "corpus",
    "target_clip",
    "target_class",
    "target_offset_s",
    "interferer_clip",
    "interferer_class",
    "interferer_offset_s",
    "snr_db",
    "crop_seconds",
    "seed",
    "query_text",
    "query_audio_clip",
    "query_image",
]


class TestPairError(ValueError):
    """A corpus whose clean test split cannot supply valid pairs."""

    __test__ = False  # not a pytest test class


# where audio queries come from, in order of preference, for pairs drawn from each split
# (the cross-source set's clips, ``data/cross_source.py``, take their audio queries from the corpus)
QUERY_SPLITS = {"test": ("test", "val", "train"), "val": ("val", "train", "test"), "cross_source": ("test", "val", "train")}


def make_test_pairs(
    clean: pd.DataFrame, classes: pd.DataFrame, images: pd.DataFrame, cfg: TestPairsConfig, split: str = "test",
    max_seconds: float | None = None,
) -> pd.DataFrame:
    """Build ``cfg.pairs_per_corpus`` pairs per corpus from ``clean`` (kept clips with ``split``
    and ``duration``); targets and interferers come from ``split`` (the validation pairs of the
    separator stages use ``val``). Crops start within the first ``max_seconds`` of a clip: the
    audio bank keeps only that much (``prepare_audio.max_seconds``), so a crop drawn further in
    would be silence."""
    if max_seconds is not None:
        clean = clean.assign(duration=clean["duration"].clip(upper=max_seconds))
    tables = []
    for corpus in sorted(clean["corpus"].unique()):
        tables.append(
            _corpus_pairs(corpus=corpus, clips=clean[clean["corpus"] == corpus], classes=classes, images=images, cfg=cfg, split=split)
        )
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=PAIR_COLUMNS)


def _corpus_pairs(
    corpus: str, clips: pd.DataFrame, classes: pd.DataFrame, images: pd.DataFrame, cfg: TestPairsConfig, split: str
) -> pd.DataFrame:
    rng = np.random.default_rng([cfg.seed, _stable_int(corpus)])
    test = clips[clips["split"] == split].sort_values("clip_id")
    by_class = {label: part for label, part in test.groupby("class")}
    labels = sorted(by_class)
    if len(labels) < 2:
        raise TestPairError(f"corpus {corpus}: {split} split has {len(labels)} class(es); pairs need at least 2")
    text = classes.set_index("class")["text"].to_dict()
    pictures = images.sort_values("image_id").groupby("class")["path"].apply(list).to_dict()
    query_pool = {
        label: part.assign(order=part["split"].map({s: i for i, s in enumerate(QUERY_SPLITS[split])})).sort_values(["order", "clip_id"])
        for label, part in clips.groupby("class")
    }
    rows = []
    for index in range(cfg.pairs_per_corpus):
        target_class = labels[index % len(labels)]
        target = by_class[target_class].iloc[rng.integers(len(by_class[target_class]))]
        others = [label for label in labels if label != target_class]
        interferer_class = others[rng.integers(len(others))]
        interferer = by_class[interferer_class].iloc[rng.integers(len(by_class[interferer_class]))]
        candidates = query_pool[target_class]
        candidates = candidates[candidates["clip_id"] != target["clip_id"]]
        if candidates.empty:
            raise TestPairError(f"corpus {corpus}: class {target_class} has one clean clip; no audio query possible")
        best_split = candidates["order"].min()
        pool = candidates[candidates["order"] == best_split]
        query_audio = pool.iloc[rng.integers(len(pool))]["clip_id"]
        picture_choices = pictures.get(target_class, [])
        rows.append(
            {
                "pair_id": f"{corpus}-{index:05d}",
                "corpus": corpus,
                "target_clip": target["clip_id"],
                "target_class": target_class,
                "target_offset_s": _offset(rng, float(target["duration"]), cfg.crop_seconds),
                "interferer_clip": interferer["clip_id"],
                "interferer_class": interferer_class,
                "interferer_offset_s": _offset(rng, float(interferer["duration"]), cfg.crop_seconds),
                "snr_db": round(float(rng.uniform(cfg.snr_db_min, cfg.snr_db_max)), 3),
                "crop_seconds": cfg.crop_seconds,
                "seed": int(rng.integers(0, 2**31 - 1)),
                "query_text": text.get(target_class, target_class.replace("_", " ")),
                "query_audio_clip": query_audio,
                "query_image": picture_choices[rng.integers(len(picture_choices))] if picture_choices else "",
            }
        )
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def _offset(rng: np.random.Generator, duration: float, crop: float) -> float:
    """A crop start in seconds; 0 for clips no longer than the crop (they are zero-padded)."""
    return round(float(rng.uniform(0.0, duration - crop)), 4) if duration > crop else 0.0


def _stable_int(text: str) -> int:
    return int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little")

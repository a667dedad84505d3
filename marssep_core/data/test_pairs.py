"""The fixed, versioned evaluation pairs of each corpus.

A pair is a target clip from the clean test split, an interferer of another class (also from the
test split), an SNR drawn uniformly from ``[snr_db_min, snr_db_max]``, crop offsets, and the
queries: the class text, an audio query that is a *different* clip of the target class (from the
test split when it has one, else val, then train; never the target), and a picture of the class
when the class has one. Targets cycle through the classes so every class is evaluated evenly.

A crop must hold sound: a uniformly drawn offset is kept when the crop has at least
``min_active_seconds`` of active frames (RMS within ``active_rel_db`` of the clip's loudest
frame), else the offset is redrawn among the crops that do (the best one when none does). A
clip that is mostly digital silence would otherwise give a one-source "mixture" whose SI-SDRi is
undefined (about +-100 dB) and dominates a mean.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from marssep_core.audio.features import sounding_frames
from marssep_core.config import TestPairsConfig

# a clip's mono waveform and its sample rate, by clip id
ClipAudio = Callable[[str], tuple[np.ndarray, int]]

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
    clean: pd.DataFrame, classes: pd.DataFrame, images: pd.DataFrame, cfg: TestPairsConfig, audio: ClipAudio,
    split: str = "test", max_seconds: float | None = None,
) -> pd.DataFrame:
    """Build ``cfg.pairs_per_corpus`` pairs per corpus from ``clean`` (kept clips with ``split``
    and ``duration``); targets and interferers come from ``split`` (the validation pairs of the
    separator stages use ``val``). ``audio`` gives the waveform of a drawn clip, to place its crop
    over sound. Crops start within the first ``max_seconds`` of a clip: the audio bank keeps only
    that much (``prepare_audio.max_seconds``), so a crop drawn further in would be silence."""
    if max_seconds is not None:
        clean = clean.assign(duration=clean["duration"].clip(upper=max_seconds))
    placer = CropPlacer(audio=audio, cfg=cfg)
    tables = []
    for corpus in sorted(clean["corpus"].unique()):
        tables.append(
            _corpus_pairs(corpus=corpus, clips=clean[clean["corpus"] == corpus], classes=classes, images=images, cfg=cfg,
                          split=split, placer=placer)
        )
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=PAIR_COLUMNS)


def _corpus_pairs(
    corpus: str, clips: pd.DataFrame, classes: pd.DataFrame, images: pd.DataFrame, cfg: TestPairsConfig, split: str,
    placer: CropPlacer,
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
                "target_offset_s": placer.offset(rng, target["clip_id"], float(target["duration"])),
                "interferer_clip": interferer["clip_id"],
                "interferer_class": interferer_class,
                "interferer_offset_s": placer.offset(rng, interferer["clip_id"], float(interferer["duration"])),
                "snr_db": round(float(rng.uniform(cfg.snr_db_min, cfg.snr_db_max)), 3),
                "crop_seconds": cfg.crop_seconds,
                "seed": int(rng.integers(0, 2**31 - 1)),
                "query_text": text.get(target_class, target_class.replace("_", " ")),
                "query_audio_clip": query_audio,
                "query_image": picture_choices[rng.integers(len(picture_choices))] if picture_choices else "",
            }
        )
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


class CropPlacer:
    """Crop starts over sound (see the module docstring); activity is measured once per clip."""

    def __init__(self, audio: ClipAudio, cfg: TestPairsConfig):
        self.audio, self.cfg = audio, cfg
        self._active: dict[str, np.ndarray] = {}

    def active_frames(self, clip_id: str) -> np.ndarray:
        """``(frames,)`` bool, one per ``cfg.active_frame_seconds``: frames that hold sound."""
        if clip_id not in self._active:
            wave, rate = self.audio(clip_id)
            frame = max(1, int(round(self.cfg.active_frame_seconds * rate)))
            self._active[clip_id] = sounding_frames(np.asarray(wave, dtype=np.float32), frame, self.cfg.active_rel_db)
        return self._active[clip_id]

    def offset(self, rng: np.random.Generator, clip_id: str, duration: float) -> float:
        """A crop start in seconds; 0 for clips no longer than the crop (they are zero-padded)."""
        crop = self.cfg.crop_seconds
        if duration <= crop:
            return 0.0
        start = round(float(rng.uniform(0.0, duration - crop)), 4)
        hop = self.cfg.active_frame_seconds
        active = self.active_frames(clip_id)
        width, starts = int(round(crop / hop)), int((duration - crop) / hop) + 1
        counts = np.convolve(active.astype(np.int64), np.ones(width, dtype=np.int64))[width - 1:][:starts]
        counts = np.pad(counts, (0, starts - len(counts)))
        needed = min(int(np.ceil(self.cfg.min_active_seconds / hop)), int(counts.max()))
        if counts[min(int(start / hop), starts - 1)] >= needed:
            return start
        good = np.flatnonzero(counts >= needed)
        return round(float(good[rng.integers(len(good))] * hop), 4)


def _stable_int(text: str) -> int:
    return int.from_bytes(text.encode()[:8].ljust(8, b"\0"), "little")

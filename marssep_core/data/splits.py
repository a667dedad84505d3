"""Grouped, stratified train/val/test splits.

Whole recording origins are assigned to one split (no recording leaks across splits). Origins are
visited largest first, in a seeded order, and each goes to the split whose per-class quota is
least filled, relative to its target; ties go to train, then test, then val, so a class with one
origin trains, two origins train and test, three cover all splits. ``split_hint`` pins sources to a
side: ``test`` (e.g. the MuseScore-rendered instruments) or ``trainval``.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import pandas as pd

SPLITS = ("train", "val", "test")
_TIE_ORDER = {"train": 0, "test": 1, "val": 2}


def assign_splits(clips: pd.DataFrame, fractions: dict[str, float], seed: int) -> pd.Series:
    """Return a ``split`` label per clip; ``clips`` needs ``class``, ``origin``, ``split_hint``."""
    if set(fractions) != set(SPLITS) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must give train/val/test summing to 1, got {fractions}")
    hints = clips.groupby("origin")["split_hint"].agg(lambda s: s.iloc[0])
    class_totals = clips.groupby("class").size().to_dict()
    filled: dict[tuple[str, str], int] = {}
    origin_split: dict[str, str] = {}
    sizes = clips.groupby("origin").size()
    order = sorted(sizes.index, key=lambda o: (-sizes[o], _seeded_key(o, seed)))
    # class counts per origin in one pass (a mask over all clips per origin made this quadratic)
    members_of: dict[str, Counter] = {}
    for origin, label in zip(clips["origin"], clips["class"]):
        members_of.setdefault(origin, Counter())[label] += 1
    for origin in order:
        members = members_of[origin].most_common()  # by count, ties in order of appearance
        allowed = {"test": ("test",), "trainval": ("train", "val")}.get(hints[origin], SPLITS)

        best = max(
            allowed, key=lambda split: _deficit(split=split, members=members, fractions=fractions, class_totals=class_totals, filled=filled)
        )
        origin_split[origin] = best
        for label, count in members:
            filled[(label, best)] = filled.get((label, best), 0) + int(count)
    return clips["origin"].map(origin_split)


def _deficit(
    split: str,
    members: list[tuple[str, int]],
    fractions: dict[str, float],
    class_totals: dict[str, int],
    filled: dict[tuple[str, str], int],
) -> tuple[float, int]:
    """How much ``split`` still lacks of the classes in ``members`` (relative), then tie order."""
    score = 0.0
    for label, count in members:
        target = max(fractions[split] * class_totals[label], 1e-9)
        score += count * (target - filled.get((label, split), 0)) / target
    return score, -_TIE_ORDER[split]


def _seeded_key(text: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{text}".encode()).hexdigest()

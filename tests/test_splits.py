"""Grouped stratified splits: origins stay whole, hints are obeyed, small classes still train."""

from __future__ import annotations

import pandas as pd
import pytest

from marssep_core.data.splits import assign_splits

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def _clips(spec: dict[str, list[int]], hint: str = "") -> pd.DataFrame:
    rows = []
    for label, origin_sizes in spec.items():
        for o, size in enumerate(origin_sizes):
            rows += [{"clip_id": f"{label}-{o}-{k}", "class": label, "origin": f"{label}:{o}", "split_hint": hint}
                     for k in range(size)]
    return pd.DataFrame(rows)


def test_origins_never_straddle_and_fractions_are_close():
    clips = _clips({"a": [1] * 40, "b": [2] * 20, "c": [3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]})
    split = assign_splits(clips, FRACTIONS, seed=0)
    assert (clips.assign(split=split).groupby("origin")["split"].nunique() == 1).all()
    for label, part in clips.assign(split=split).groupby("class"):
        share = part["split"].value_counts(normalize=True)
        assert share["train"] == pytest.approx(0.7, abs=0.1), label
        assert share["test"] == pytest.approx(0.15, abs=0.1), label


@pytest.mark.parametrize("origins, expected", [(1, {"train"}), (2, {"train", "test"}), (3, {"train", "val", "test"})])
def test_small_classes_train_first_then_test_then_val(origins, expected):
    clips = _clips({"small": [1] * origins, "big": [1] * 30})
    split = assign_splits(clips, FRACTIONS, seed=0)
    assert set(split[clips["class"] == "small"]) == expected


def test_hints_pin_sources_and_seed_changes_assignment():
    clips = pd.concat([_clips({"violin": [1] * 20}, hint="trainval"),
                       _clips({"violin": [1] * 6}, hint="test").assign(origin=lambda f: "ms:" + f["origin"])])
    split = assign_splits(clips, FRACTIONS, seed=0)
    assert set(split[clips["split_hint"] == "test"]) == {"test"}
    assert set(split[clips["split_hint"] == "trainval"]) == {"train", "val"}
    other = assign_splits(clips, FRACTIONS, seed=1)
    assert (split != other).any() and (split.value_counts() == other.value_counts()).all()


def test_bad_fractions_are_rejected():
    with pytest.raises(ValueError, match="sum"):
        assign_splits(_clips({"a": [1]}), {"train": 0.9, "val": 0.2, "test": 0.1}, seed=0)

"""Instrument renders on the fly: the melody styles, the sampler wiring, and the rule that no
soundfont of a held-out family (the test instruments' MuseScore General, the reserved TimGM6mb)
can reach training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from marssep_core.data import sources
from marssep_core.data.audio_bank import load_audio_bank
from marssep_core.data.instruments import PITCH_RANGE, STYLES, make_melody
from marssep_core.data.soundfonts import (
    COLUMNS,
    HELD_OUT_PACKAGES,
    TABLE,
    TRAINING_BANK_KEYS,
    TRAINING_SOUNDFONTS,
    HeldOutSoundfontError,
    check_trainable,
    read_soundfonts,
)
from marssep_core.io_utils import md5_file
from marssep_core.separation.data import MixingConfig, MixtureSampler, training_sampler
from marssep_core.separation.queries import QueryBank

ROOT = Path(__file__).resolve().parents[1]


def test_corpus_melodies_keep_their_notes():
    """The corpus renders (and so data.dvc) depend on the default style drawing the same numbers."""
    notes = make_melody(40, seed=1_040_003, seconds=6.0)
    assert [(n.pitches, n.start, n.duration, n.velocity) for n in notes[:3]] == [
        ((85,), 0.4, 1.2, 95), ((81,), 1.6, 0.4, 70), ((79,), 2.0, 1.2, 77)]


def test_training_style_is_livelier_and_stays_in_range():
    velocities, fractions = [], []
    for seed in range(40):
        for program in (0, 40, 58):
            plain = make_melody(program, seed, 6.0)
            lively = make_melody(program, seed, 6.0, STYLES["lively"])
            low, high = PITCH_RANGE[program]
            assert all(low <= p <= high for note in lively for p in note.pitches)
            velocities += [n.velocity for n in lively]
            # a note's slot ends where the next begins; staccato notes sound for part of it
            fractions += [n.duration / (b.start - n.start) for n, b in zip(lively, lively[1:]) if b.start > n.start]
            assert plain != lively
    assert min(velocities) < 50 and max(velocities) > 115
    assert min(fractions) < 0.5 and max(fractions) > 0.95


class FakeRenders:
    """Stands in for ``FreshRenders``: a constant 0.25 for every render of a known class."""

    def __init__(self, programs: dict[str, int]):
        self.programs = programs
        self.calls: list[tuple[str, int]] = []

    def render(self, label: str, samples: int, rng: np.random.Generator) -> np.ndarray:
        self.calls.append((label, samples))
        rng.integers(0, 2**31)  # a real render draws its soundfont and seed from rng
        return np.full(samples, 0.25, dtype=np.float32)


def test_renders_replace_instrument_sources_only(separator_assets):
    bank, queries = load_audio_bank(separator_assets.bank), QueryBank.load(separator_assets.queries)
    renders = FakeRenders({"low": 0, "high": 1})
    sampler = MixtureSampler(
        bank=bank,
        queries=queries,
        split="train",
        cfg=MixingConfig(crop_seconds=0.5, speed_range=0.0, tilt_range=0.0, render_prob=1.0),
        renders=renders,
    )
    batch = sampler.sample(24, np.random.default_rng(3))
    torch.testing.assert_close(batch.mixture, batch.target + batch.interferer)
    for row, label in enumerate(batch.target_class):
        constant = float(batch.target[row].std()) < 1e-6
        assert constant == (label in renders.programs), label
    assert {label for label, _ in renders.calls} <= set(renders.programs)
    assert all(samples == sampler.length + 1 for _, samples in renders.calls)


def test_render_prob_zero_draws_the_batches_of_a_sampler_without_renders(separator_assets):
    bank, queries = load_audio_bank(separator_assets.bank), QueryBank.load(separator_assets.queries)
    cfg = MixingConfig(crop_seconds=0.5, speed_range=0.1, tilt_range=0.3)
    plain = MixtureSampler(bank, queries, "train", cfg).sample(8, np.random.default_rng(5))
    renders = FakeRenders({"low": 0, "high": 1})
    off = MixtureSampler(bank=bank, queries=queries, split="train", cfg=cfg, renders=renders).sample(8, np.random.default_rng(5))
    torch.testing.assert_close(plain.mixture, off.mixture)
    assert not renders.calls
    with pytest.raises(ValueError, match="render_prob"):
        MixtureSampler(bank, queries, "train", MixingConfig(render_prob=0.5))
    with pytest.raises(ValueError, match="soundfont folder"):
        training_sampler(bank, queries, MixingConfig(render_prob=0.5), None)
    # with renders off the soundfont folder is never read: a missing one draws the same batches
    absent = training_sampler(bank, queries, cfg, Path("/nonexistent/soundfonts")).sample(8, np.random.default_rng(5))
    torch.testing.assert_close(plain.mixture, absent.mixture)


def test_training_soundfonts_are_all_trainable_and_the_test_font_is_held_out():
    for key, source in TRAINING_SOUNDFONTS.items():
        check_trainable(key, source.family, source.package)
    test_package, _ = sources.SOUNDFONT_PACKAGES["musescore"]
    assert test_package in HELD_OUT_PACKAGES
    assert "timgm6mb-soundfont" in HELD_OUT_PACKAGES
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section in (params["train_supervised"], params["rl"]):
        assert set(section["mixing"]["render_soundfonts"]) <= set(TRAINING_BANK_KEYS)


def _table(directory: Path, rows: list[dict]) -> None:
    for row in rows:
        (directory / row["file"]).write_bytes(row["key"].encode() * 100)
        row.setdefault("md5", md5_file(directory / row["file"]))
    pd.DataFrame(rows, columns=COLUMNS).to_csv(directory / TABLE, index=False)


def _row(key: str, family: str, package: str) -> dict:
    return {"key": key, "file": f"{key}.sf2", "family": family, "package": package, "version": "1",
            "original_path": f"usr/share/sounds/sf2/{key}.sf2", "licence": "MIT"}


def test_read_soundfonts_refuses_held_out_families_and_changed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="marssep data soundfonts"):
        read_soundfonts(tmp_path, ["fluidr3"])
    _table(tmp_path, [_row("fluidr3", "fluidr3", "fluid-soundfont-gm"),
                      _row("musescore", "musescore_general", "musescore-general-soundfont-small"),
                      _row("disguised", "other", "timgm6mb-soundfont")])
    assert read_soundfonts(tmp_path, ["fluidr3"]) == {"fluidr3": tmp_path / "fluidr3.sf2"}
    for key in ("musescore", "disguised"):
        with pytest.raises(HeldOutSoundfontError, match="never be rendered for training"):
            read_soundfonts(tmp_path, [key])
    with pytest.raises(KeyError, match="opl3_fm"):
        read_soundfonts(tmp_path, ["opl3_fm"])
    (tmp_path / "fluidr3.sf2").write_bytes(b"changed")
    with pytest.raises(ValueError, match="fluidr3.sf2"):
        read_soundfonts(tmp_path, ["fluidr3"])


def test_fresh_renders_play_real_fluidsynth_and_feed_the_training_sampler(separator_assets, tmp_path):
    from marssep_core.data.instruments import FreshRenders
    from tests.soundfont_fixture import write_soundfont_folder

    write_soundfont_folder(tmp_path, ["tiny"], [0, 40])
    programs = {"low": 0, "high": 40}

    def draws(renders: FreshRenders) -> list[np.ndarray]:
        rng = np.random.default_rng(11)
        return [renders.render(label, 8000, rng) for label in ("low", "high", "low", "high")]

    first = draws(FreshRenders(read_soundfonts(tmp_path, ["tiny"]), programs, 16000))
    again = draws(FreshRenders(read_soundfonts(tmp_path, ["tiny"]), programs, 16000))
    assert all(w.shape == (8000,) and w.dtype == np.float32 and float(np.abs(w).max()) > 1e-3 for w in first)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))  # a fresh instance repeats its draws
    assert not np.allclose(first[0], first[2])  # each draw is a new melody

    bank, queries = load_audio_bank(separator_assets.bank), QueryBank.load(separator_assets.queries)
    cfg = MixingConfig(crop_seconds=0.5, render_prob=1.0, render_soundfonts=("tiny",))
    sampler = training_sampler(bank, queries, cfg, tmp_path)
    assert set(sampler.renders.programs) == set()  # the tiny corpus has no General MIDI class names
    batch = sampler.sample(4, np.random.default_rng(0))
    torch.testing.assert_close(batch.mixture, batch.target + batch.interferer)

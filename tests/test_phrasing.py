"""Class wordings for the text tower's training, and the benchmark's held-out wordings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from marssep_core.encoders.phrasing import TRAINING_TEMPLATES, class_name, phrasings


def test_wordings_fill_the_class_text_and_name_without_repeats():
    words = phrasings("acoustic_guitar", "an acoustic guitar playing")
    assert words[0] == "an acoustic guitar playing"
    assert "acoustic guitar" in words and "acoustic guitar sound" in words
    assert len(words) == len(set(words)) == len(TRAINING_TEMPLATES)
    assert class_name("acoustic_guitar") == "acoustic guitar"
    # a template that fills to the same string for some class is kept once
    assert phrasings("rain", "rain", templates=("{text}", "{name}", "{name} sound")) == ["rain", "rain sound"]


def test_benchmark_wordings_are_never_drawn_in_training(monkeypatch):
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(folder))  # the script imports its folder's helpers
    spec = importlib.util.spec_from_file_location("text_phrasing", folder / "text_phrasing.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    held_out = benchmark.HELD_OUT_TEMPLATES
    assert held_out and not set(held_out) & set(TRAINING_TEMPLATES)
    filled = {t.format(name="dog", text="a dog barking") for t in held_out}
    assert not filled & set(phrasings("dog", "a dog barking"))

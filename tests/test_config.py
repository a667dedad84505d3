"""Typed params: every section of the repository's params.yaml builds; mistakes are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from marssep_core.config import (
    AudioConfig,
    CleanConfig,
    ConfigError,
    CorpusConfig,
    IngestConfig,
    build,
    load_section,
)

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_build_every_section():
    params = ROOT / "params.yaml"
    assert load_section(AudioConfig, "audio", params).sample_rate == 16000
    assert load_section(CorpusConfig, "corpus", params).instruments.musescore_clips_per_class > 0
    assert load_section(IngestConfig, "ingest", params).workers >= 1
    clean = load_section(CleanConfig, "clean", params)
    assert sum(clean.split_fractions.values()) == pytest.approx(1.0)
    assert clean.test_pairs.pairs_per_corpus >= 300


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match="min_secondz"):
        build(CleanConfig, {"min_secondz": 1.0}, "params.yaml:clean")


def test_nested_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"label_filter.*topk"):
        build(CleanConfig, {"label_filter": {"topk": 3}}, "clean")


def test_wrong_type_is_rejected_and_ints_become_floats():
    with pytest.raises(ConfigError, match="expected int"):
        build(IngestConfig, {"workers": "two"})
    assert build(CleanConfig, {"min_seconds": 1}).min_seconds == 1.0


def test_exponents_without_a_dot_are_floats(tmp_path):
    """``dvc exp run -S rl.loop.lr=0.00005`` writes ``5e-05``, a string to PyYAML's YAML 1.1 resolver."""
    (tmp_path / "params.yaml").write_text("clean:\n  min_seconds: 5e-01\n  min_bandwidth_hz: 1E+2\n")
    assert isinstance(yaml.safe_load((tmp_path / "params.yaml").read_text())["clean"]["min_seconds"], str)
    clean = load_section(CleanConfig, "clean", tmp_path / "params.yaml")
    assert (clean.min_seconds, clean.min_bandwidth_hz) == (0.5, 100.0)
    with pytest.raises(ConfigError, match="expected float"):
        build(CleanConfig, {"min_seconds": "half"})


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_section(AudioConfig, "audio", tmp_path / "nope.yaml")


def test_profile_overlay_becomes_dvc_exp_arguments(capsys):
    from marssep_core.cli import main
    from marssep_core.config import overlay_assignments

    assert overlay_assignments({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": True, "f": 0.5, "g": "x y"}) == [
        "a.b=1", "a.c.d=[1, 2]", "e=true", "f=0.5", "g=x y"]
    profile = Path(__file__).resolve().parents[1] / "profiles" / "paper.yaml"
    assert main(["params", "exp-args", str(profile)]) == 0
    assert "-S train_supervised.model.downs=7 " in capsys.readouterr().out

"""params.yaml is where the pipeline's values live: a dataclass default that disagrees with it is a
second value that a profile or ``-S`` override leaving the key out would silently take."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from marssep_core.config import AudioConfig, CleanConfig, CorpusConfig, IngestConfig, PrepareAudioConfig, build
from marssep_core.encoders.stages import EncoderConfig
from marssep_core.evaluation.judge_train import JudgeConfig
from marssep_core.evaluation.runner import EvaluateConfig
from marssep_core.rl.probe import ProbeConfig
from marssep_core.rl.stage import RLConfig
from marssep_core.separation.embed_queries import EmbedQueriesConfig
from marssep_core.separation.stages import SupervisedConfig
from marssep_core.serving.stage import ExportConfig

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"
SECTIONS = {"audio": AudioConfig, "corpus": CorpusConfig, "ingest": IngestConfig, "clean": CleanConfig,
            "prepare_audio": PrepareAudioConfig, "encoder": EncoderConfig, "embed_queries": EmbedQueriesConfig, "train_supervised": SupervisedConfig,
            "judge": JudgeConfig, "evaluate": EvaluateConfig, "rl": RLConfig, "rl_probe": ProbeConfig,
            "export": ExportConfig}
# Fields that are not params keys, each because that stage never reads it.
NOT_PARAMS = {
    "corpus.instruments.programs": "empty: the built-in General MIDI program per class (data/sources.py)",
    **{f"encoder.{stage}.{name}": "alignment losses pretraining does not use"
       for stage in ("pretrain",) for name in ("triplet_margin", "consistency_weight", "replay_weight")},
    **{f"encoder.stage1.{name}": "stage 1 is audio-text InfoNCE only"
       for name in ("triplet_margin", "consistency_weight", "replay_weight")},
    "encoder.stage3.consistency_weight": "stage 3 has no consistency term",
    **{f"encoder.stage{k}.{name}": "alignment continues the previous stage's temperature; pairs are pretraining's"
       for k in (1, 2, 3) for name in ("temperature", "pairs", "text_text_rows")},
    "rl.loop.data_workers": "RL rollouts need the policy, so batches are drawn in the loop",
    "encoder.fusion.loop.data_workers": "fusion batches are rows of in-memory embeddings, drawn in the loop",
}


def disagreements(default, values: dict, where: str) -> list[str]:
    """Dotted keys where the dataclass instance ``default`` differs from the params ``values``."""
    found = []
    for field in dataclasses.fields(default):
        key, ours = f"{where}.{field.name}", getattr(default, field.name)
        if field.name not in values:
            if key not in NOT_PARAMS:
                found.append(f"{key}: not in params.yaml (default {ours!r})")
        elif dataclasses.is_dataclass(ours):
            found += disagreements(ours, values[field.name], key)
        elif as_lists(build(type(default), {field.name: values[field.name]}, where, base=default)) != as_lists(default):
            found.append(f"{key}: default {ours!r}, params.yaml {values[field.name]!r}")
    return found


def as_lists(config) -> dict:
    """``asdict`` with tuples as lists (YAML gives lists where the dataclasses annotate tuples)."""
    return yaml.safe_load(yaml.safe_dump(dataclasses.asdict(config)))


def all_disagreements(params: dict) -> list[str]:
    missing = sorted(set(params) - set(SECTIONS))
    return [f"{name}: section without a dataclass here" for name in missing] + [
        problem for name, cls in SECTIONS.items() for problem in disagreements(cls(), params[name], name)]


def test_dataclass_defaults_equal_params_yaml():
    assert all_disagreements(yaml.safe_load(PARAMS.read_text())) == []


@pytest.mark.parametrize("planted", ["rl.loop.lr=0.001", "encoder.stage2.loop.seed=0", "clean.min_seconds=0.5", "rl.entropy_coef=0.1"])
def test_a_planted_drift_is_caught(planted):
    params = yaml.safe_load(PARAMS.read_text())
    dotted, value = planted.split("=")
    *path, key = dotted.split(".")
    section = params
    for name in path:
        section = section[name]
    section[key] = yaml.safe_load(value)
    assert [problem.split(":")[0] for problem in all_disagreements(params)] == [dotted]


def test_a_partial_nested_override_keeps_the_sections_own_defaults():
    cfg = build(RLConfig, {"loop": {"steps": 3}}, "rl")
    assert cfg.loop.steps == 3 and cfg.loop.lr == RLConfig().loop.lr == 2e-4
    stage2 = build(EncoderConfig, {"stage2": {"loop": {"steps": 3}}}, "encoder").stage2
    assert (stage2.loop.steps, stage2.loop.seed, stage2.loop.batch_size) == (3, 2, 64)

"""DVC experiments seen from an orchestrator: the ``dvc exp run`` command line for a set of
parameter overrides, and the comparison of an experiment with its baseline (``dvc exp diff``)
turned into the rows and markdown the rl-training flow publishes."""

from __future__ import annotations

import fnmatch
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# The metrics an RL run is judged by (``file:key`` globs over ``dvc exp diff`` keys): the RL
# stage's own summary, signal quality and the independent judge's CLAP score per system and
# query modality, and the paired RL - supervised differences.
DEFAULT_METRICS: tuple[str, ...] = (
    "metrics/rl.json:best_step",
    "metrics/rl.json:kept_start",
    "metrics/rl.json:improvement_at_best.*",
    "metrics/rl.json:reward_hacking.diverged",
    "metrics/eval.json:all.*.*.sdr",
    "metrics/eval.json:all.*.*.si_sdri",
    "metrics/eval.json:all.*.*.clap_t",
    "metrics/eval.json:paired.*.mean",
)

# git check-ref-format is stricter than this; DVC also rejects names it cannot make a ref of.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


def check_experiment_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"experiment name {name!r}: use letters, digits, '-' and '_' (it becomes a git ref)")
    return name


def default_experiment_name(prefix: str = "rl", now: datetime | None = None) -> str:
    """``rl-20261125-101500``: unique per second, sorts by time."""
    return f"{prefix}-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}"


def format_override(key: str, value: Any) -> str:
    """One ``-S`` assignment; the value is written as JSON, which DVC reads as YAML."""
    if not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", key):
        raise ValueError(f"parameter {key!r}: expected a dotted params.yaml key such as rl.kappa")
    return f"{key}={json.dumps(value)}"


def exp_run_args(name: str, overrides: Mapping[str, Any], targets: Sequence[str], temp: bool = True) -> list[str]:
    """``dvc exp run`` for ``targets`` (and whatever they depend on that changed).

    ``temp`` runs it in a temporary copy of the repository, so the user's workspace (and a
    concurrent ``dvc repro`` in it) is left alone; the result is stored as experiment ``name``.
    """
    args = ["dvc", "exp", "run", "--name", check_experiment_name(name)]
    if temp:
        args.append("--temp")
    for key, value in overrides.items():
        args += ["--set-param", format_override(key, value)]
    return args + list(targets)


@dataclass(frozen=True)
class MetricChange:
    file: str
    key: str
    baseline: Any
    experiment: Any
    change: Any

    @property
    def as_row(self) -> dict[str, Any]:
        return {"file": self.file, "metric": self.key, "baseline": self.baseline,
                "experiment": self.experiment, "change": self.change}


def select_metrics(diff: Mapping[str, Any], patterns: Sequence[str] = DEFAULT_METRICS) -> list[MetricChange]:
    """The metrics of a ``dvc exp diff --json --all`` result matching ``file:key`` globs, in
    pattern order (then key order)."""
    metrics = diff.get("metrics", {})
    chosen: list[MetricChange] = []
    seen: set[tuple[str, str]] = set()
    for pattern in patterns:
        file_glob, _, key_glob = pattern.partition(":")
        for file in sorted(f for f in metrics if fnmatch.fnmatchcase(f, file_glob)):
            for key in sorted(k for k in metrics[file] if fnmatch.fnmatchcase(k, key_glob or "*")):
                if (file, key) in seen:
                    continue
                seen.add((file, key))
                values = metrics[file][key]
                chosen.append(
                    MetricChange(file=file, key=key, baseline=values.get("old"), experiment=values.get("new"), change=values.get("diff"))
                )
    return chosen


def changed_params(diff: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, baseline, experiment) for every parameter whose value differs."""
    rows = []
    for file, params in sorted(diff.get("params", {}).items()):
        for key, values in sorted(params.items()):
            if values.get("old") != values.get("new"):
                rows.append((f"{file}:{key}" if file != "params.yaml" else key, values.get("old"), values.get("new")))
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def diff_markdown(title: str, diff: Mapping[str, Any], patterns: Sequence[str] = DEFAULT_METRICS,
                  max_rows: int = 300) -> str:
    """A markdown report of a ``{"metrics": ..., "params": ...}`` diff (``dvc exp diff --json``
    shape): the parameters that changed, then the selected metrics with baseline, experiment and
    change columns (at most ``max_rows``; the rest are counted)."""
    lines = [f"# {title}", "", "## Parameters changed", ""]
    params = changed_params(diff)
    if params:
        lines += ["| parameter | baseline | experiment |", "|---|---|---|"]
        lines += [f"| `{key}` | {_cell(old)} | {_cell(new)} |" for key, old, new in params]
    else:
        lines.append("none (same parameters as the baseline)")
    lines += ["", "## Metrics", "", "| file | metric | baseline | experiment | change |", "|---|---|---|---|---|"]
    rows = select_metrics(diff, patterns)
    for row in rows[:max_rows]:
        lines.append(f"| {row.file} | `{row.key}` | {_cell(row.baseline)} | {_cell(row.experiment)} | {_cell(row.change)} |")
    if len(rows) > max_rows:
        lines.append(f"| … | {len(rows) - max_rows} more metrics | | | |")
    return "\n".join(lines) + "\n"

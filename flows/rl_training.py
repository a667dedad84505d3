"""``rl-training``: the RL stage and the evaluation as a DVC experiment (``dvc exp run`` with the
flow's parameter overrides), then the experiment against its baseline (``dvc exp diff``)
published as a table and a markdown artifact. DVC versions the experiment; ``dvc exp show``,
``dvc exp apply`` and ``dvc metrics diff`` work on it like on any other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from marssep_core.io_utils import write_json_atomic
from marssep_core.orchestration.commands import CommandError, run_json, run_logged
from marssep_core.orchestration.experiments import (
    DEFAULT_METRICS,
    check_experiment_name,
    default_experiment_name,
    diff_markdown,
    exp_run_args,
    select_metrics,
)


def _dvc_lock_busy(task, task_run, state) -> bool:
    """Retry only when another DVC command held the repository lock: re-running an RL stage that
    failed for any other reason would fail the same way, an hour later."""
    error = state.data
    return isinstance(error, CommandError) and error.dvc_lock_busy


@task(retries=3, retry_delay_seconds=60, retry_condition_fn=_dvc_lock_busy)
def run_experiment(project_dir: str, name: str, overrides: dict[str, Any], targets: list[str], temp: bool) -> None:
    run_logged(exp_run_args(name, overrides, targets, temp), Path(project_dir), get_run_logger())


@task(retries=2, retry_delay_seconds=10)
def compare_with_baseline(project_dir: str, name: str, baseline: str) -> str:
    """``dvc exp diff BASELINE NAME --all --json`` saved under runs/flows/rl-training/NAME."""
    diff = run_json(["dvc", "exp", "diff", baseline, name, "--all", "--json"], Path(project_dir), get_run_logger())
    path = Path(project_dir) / "runs" / "flows" / "rl-training" / name / "exp_diff.json"
    write_json_atomic(path, diff)
    return str(path)


@task(retries=2, retry_delay_seconds=10)
def publish(diff_path: str, name: str, baseline: str, metrics: list[str]) -> int:
    diff = json.loads(Path(diff_path).read_text())
    rows = [row.as_row for row in select_metrics(diff, metrics)]
    create_table_artifact(rows, key="rl-training-metrics", description=f"experiment {name}: selected metrics")
    create_markdown_artifact(diff_markdown(f"Experiment `{name}` vs `{baseline}`", diff, metrics),
                             key="rl-training-vs-baseline", description=f"{name} against {baseline}; full diff {diff_path}")
    return len(rows)


@flow(name="rl-training")
def rl_training(project_dir: str = ".", name: str | None = None, overrides: dict[str, Any] | None = None,
                targets: list[str] | None = None, baseline: str = "HEAD", metrics: list[str] | None = None,
                temp: bool = True) -> dict:
    """Run ``targets`` (default: ``evaluate``, which brings ``train_rl`` with it when its params
    changed) as DVC experiment ``name`` with ``overrides`` (``{"rl.kappa": 5}``), then compare it
    with ``baseline`` (a git revision or experiment name). ``temp`` runs it outside the workspace."""
    project = str(Path(project_dir).resolve())
    name = check_experiment_name(name) if name else default_experiment_name()
    run_experiment(project_dir=project, name=name, overrides=overrides or {}, targets=targets or ["evaluate"], temp=temp)
    diff_path = compare_with_baseline(project, name, baseline)
    rows = publish(diff_path, name, baseline, metrics or list(DEFAULT_METRICS))
    return {"experiment": name, "baseline": baseline, "diff": diff_path, "metrics_published": rows}

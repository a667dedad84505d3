"""``pipeline``: ``dvc repro`` (the whole DAG or one target stage) as a retried task, then the
metrics it changed (``dvc metrics diff`` against HEAD) as a markdown artifact; ``dvc push``
optionally. DVC decides what is stale; the flow only runs it and reports."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from marssep_core.orchestration.commands import run_json, run_logged
from marssep_core.orchestration.experiments import diff_markdown


# Retried: a stage killed by the OS or a DVC lock held by another command are transient, and
# `dvc repro` resumes (finished stages are cached, training stages resume from runs/<stage>).
@task(retries=2, retry_delay_seconds=30)
def dvc_repro(project_dir: str, target: str | None, force: bool) -> None:
    args = ["dvc", "repro", *(["--force"] if force else []), *([target] if target else [])]
    run_logged(args, Path(project_dir), get_run_logger())


@task(retries=2, retry_delay_seconds=10)
def metrics_diff(project_dir: str) -> dict:
    """Workspace metrics and params against HEAD (``dvc exp diff`` shape)."""
    logger = get_run_logger()
    return {"metrics": run_json(["dvc", "metrics", "diff", "--json"], Path(project_dir), logger),
            "params": run_json(["dvc", "params", "diff", "--json"], Path(project_dir), logger)}


@task(retries=3, retry_delay_seconds=30)
def dvc_push(project_dir: str) -> None:
    run_logged(["dvc", "push"], Path(project_dir), get_run_logger())


@flow(name="pipeline")
def pipeline(project_dir: str = ".", target: str | None = None, force: bool = False, push: bool = False) -> dict:
    """Reproduce ``target`` (default: every stage) in ``project_dir``; publish the metrics that
    changed against HEAD; push the outputs to the DVC remote when ``push``."""
    project = str(Path(project_dir).resolve())
    dvc_repro(project, target, force)
    diff = metrics_diff(project)
    changed = sum(len(keys) for keys in diff["metrics"].values())
    create_markdown_artifact(diff_markdown(f"dvc repro {target or '(all stages)'}: metrics changed against HEAD",
                                           diff, patterns=("*",)),
                             key="pipeline-metrics-diff", description=f"{changed} metrics changed against HEAD")
    if push:
        dvc_push(project)
    return {"target": target, "metrics_changed": changed}

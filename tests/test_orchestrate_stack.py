"""Integration: the local stack of ``marssep orchestrate up`` (a real Prefect server and worker on
loopback) runs ``prefect deployment run rl-training/default`` on the tiny project to COMPLETED,
the run leaves a DVC experiment with metrics, the scheduled batch deployment carries its cron,
and ``down`` stops every process the stack started."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marssep_core.orchestration import local
from marssep_core.orchestration.commands import tool_env
from tests.conftest import copy_project, run_tool


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _marssep(project: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "marssep_core.cli", "orchestrate", *args, "--project", str(project)],
                          capture_output=True, text=True, timeout=timeout)


def _group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.slow
def test_local_stack_runs_the_rl_training_deployment(tiny_project, tmp_path):
    project = copy_project(tiny_project, tmp_path / "project")
    port = _free_port()
    cfg = local.StackConfig(project, port)
    records: dict[str, local.ProcessRecord] = {}
    try:
        up = _marssep(project, "up", "--port", str(port), timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr
        state = json.loads((cfg.state_dir / "stack.json").read_text())
        records = {name: local.ProcessRecord(**record) for name, record in state["processes"].items()}
        assert set(records) == {"server", "worker"} and all(local.alive(r) for r in records.values())

        # `up` again is a no-op for what runs (same processes), re-deploying prefect.yaml
        again = _marssep(project, "up", timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        assert json.loads((cfg.state_dir / "stack.json").read_text())["processes"] == state["processes"]

        # the deployments as the Prefect API holds them
        deployments = {d["name"]: d for d in local.deployments(cfg)}
        assert {"rl-training/default", "batch-separation/scheduled", "pipeline/repro"} <= set(deployments)
        (schedule,) = deployments["batch-separation/scheduled"]["schedules"]
        assert schedule["schedule"]["cron"] == "*/10 * * * *" and schedule["active"]
        assert deployments["rl-training/default"]["concurrency_limit"] == 1
        assert deployments["rl-training/default"]["schedules"] == []

        # what the README tells a user to type
        env = tool_env(cfg.env())
        started = time.monotonic()
        run = subprocess.run(["prefect", "deployment", "run", "rl-training/default", "-p", "name=stack-kappa",
                              "-p", 'overrides={"rl.kappa": 5}', "--watch", "--watch-timeout", "540"],
                             cwd=project, env=env, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0 and "Completed" in run.stdout, run.stdout[-4000:] + run.stderr[-4000:]
        print(f"rl-training/default on the tiny profile: {time.monotonic() - started:.1f} s")

        shown = json.loads(run_tool(["dvc", "exp", "show", "--json"], project))
        experiments = {exp["name"]: exp for baseline in shown for exp_run in (baseline.get("experiments") or [])
                       for exp in exp_run.get("revs", [])}
        assert "stack-kappa" in experiments
        data = experiments["stack-kappa"]["data"]
        assert data["params"]["params.yaml"]["data"]["rl"]["kappa"] == 5
        assert "all.rl.text.sdr" in data["metrics"]["metrics/eval.json"]["data"]
        # the README's comparison commands accept the experiment name
        diff = json.loads(run_tool(["dvc", "metrics", "diff", "HEAD", "stack-kappa", "--json"], project))
        assert "all.rl.text.sdr" in diff["metrics/eval.json"]
        assert (project / "runs" / "flows" / "rl-training" / "stack-kappa" / "exp_diff.json").is_file()
    finally:
        down = _marssep(project, "down", "--timeout", "20", timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    deadline = time.monotonic() + 30
    while not all(_group_gone(r.pid) for r in records.values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert all(_group_gone(r.pid) for r in records.values()), "a process of the stack outlived `down`"
    assert _marssep(project, "status", timeout=60).returncode == 1  # nothing answers any more

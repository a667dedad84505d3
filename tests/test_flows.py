"""The Prefect flows under ``prefect_test_harness`` (one temporary server for the session): the
pipeline flow with a retried failing stage and on the tiny project, rl-training as a DVC
experiment with its artifacts, and the batch-separation inbox."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import yaml

from marssep_core.audio.io import save_audio
from tests.conftest import copy_project, run_tool, synth_clip


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def _task_runs(state) -> dict[str, list]:
    """Task runs of a finished flow run by task name (Prefect API)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    by_name: dict[str, list] = {}
    for run in runs:
        by_name.setdefault(run.task_key.rsplit("-", 1)[0], []).append(run)
    return by_name


def _artifacts(state) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    return {artifact.key: artifact for artifact in found}


@pytest.fixture
def flaky_project(tmp_path) -> tuple[Path, Path]:
    """A DVC project whose only stage fails on its first run and succeeds on the next (the
    marker lives outside the workspace, as a killed process or a busy resource would)."""
    project, marker = tmp_path / "flaky", tmp_path / "attempted"
    project.mkdir()
    (project / "flaky.py").write_text(textwrap.dedent(f"""
        import pathlib, sys
        marker = pathlib.Path({str(marker)!r})
        if not marker.exists():
            marker.write_text("failed once")
            sys.exit("transient failure: try again")
        pathlib.Path("out.txt").write_text("ok")
        pathlib.Path("metrics.json").write_text('{{"score": 1.0}}')
    """))
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"flaky": {
        "cmd": "python flaky.py", "deps": ["flaky.py"], "outs": ["out.txt"],
        "metrics": [{"metrics.json": {"cache": False}}]}}}))
    run_tool(["git", "init", "-q"], project)
    run_tool(["dvc", "init", "-q"], project)
    run_tool(["git", "add", "-A"], project)
    run_tool(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "flaky stage"], project)
    return project, marker


def test_pipeline_flow_retries_a_failing_stage(prefect_harness, flaky_project, monkeypatch):
    import flows.pipeline as pipeline_module

    project, marker = flaky_project
    # the declared policy (2 retries) with no delay, so the test does not wait 30 s
    monkeypatch.setattr(pipeline_module, "dvc_repro", pipeline_module.dvc_repro.with_options(retry_delay_seconds=0))
    state = pipeline_module.pipeline(project_dir=str(project), target="flaky", return_state=True)
    assert state.is_completed(), state.message
    assert marker.read_text() == "failed once" and (project / "out.txt").read_text() == "ok"
    (repro,) = _task_runs(state)["dvc_repro"]
    assert repro.run_count == 2 and repro.state.is_completed()
    assert state.result() == {"target": "flaky", "metrics_changed": 1}
    assert "score" in _artifacts(state)["pipeline-metrics-diff"].data


def test_pipeline_flow_fails_after_its_retries(prefect_harness, flaky_project, monkeypatch):
    import flows.pipeline as pipeline_module

    project, _ = flaky_project
    (project / "flaky.py").write_text("raise SystemExit('always broken')\n")
    monkeypatch.setattr(pipeline_module, "dvc_repro", pipeline_module.dvc_repro.with_options(retry_delay_seconds=0))
    state = pipeline_module.pipeline(project_dir=str(project), return_state=True)
    assert state.is_failed()
    (repro,) = _task_runs(state)["dvc_repro"]
    assert repro.run_count == 3  # the first run and 2 retries


@pytest.mark.slow
def test_pipeline_flow_reproduces_what_changed_in_the_tiny_project(prefect_harness, tiny_project, tmp_path):
    from flows.pipeline import pipeline

    project = copy_project(tiny_project, tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["export"]["parity"]["seed"] = 1  # changes export_onnx only: DVC re-runs that stage alone
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    before = (project / "metrics" / "export.json").stat().st_mtime_ns
    state = pipeline(project_dir=str(project), target="export_onnx", return_state=True)
    assert state.is_completed(), state.message
    assert (project / "metrics" / "export.json").stat().st_mtime_ns != before
    assert json.loads((project / "metrics" / "export.json").read_text())["passed"]
    assert "| `export.parity.seed` | 0 | 1 |" in _artifacts(state)["pipeline-metrics-diff"].data
    assert "up to date" in run_tool(["dvc", "status"], project)


@pytest.mark.slow
def test_rl_training_flow_records_an_experiment_and_publishes_its_diff(prefect_harness, tiny_project, tmp_path):
    from flows.rl_training import rl_training

    project = copy_project(tiny_project, tmp_path / "project")
    params_before = (project / "params.yaml").read_text()
    state = rl_training(project_dir=str(project), name="harness-kappa", overrides={"rl.kappa": 5.0}, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["experiment"] == "harness-kappa" and result["metrics_published"] > 10
    # a DVC experiment with the override and evaluation metrics; the workspace untouched (--temp)
    assert "harness-kappa" in run_tool(["dvc", "exp", "list", "--name-only"], project).split()
    diff = json.loads(Path(result["diff"]).read_text())
    assert diff["params"]["params.yaml"]["rl.kappa"]["new"] == 5.0
    assert diff["params"]["params.yaml"]["rl.kappa"]["old"] != 5.0
    assert isinstance(diff["metrics"]["metrics/eval.json"]["all.rl.text.sdr"]["new"], float)
    assert (project / "params.yaml").read_text() == params_before
    artifacts = _artifacts(state)
    table = json.loads(artifacts["rl-training-metrics"].data)
    assert {"all.rl.text.sdr", "all.supervised.text.clap_t", "best_step"} <= {row["metric"] for row in table}
    assert "| `rl.kappa` |" in artifacts["rl-training-vs-baseline"].data

    # a failure that is not a busy DVC lock is not retried (it would fail the same way again)
    state = rl_training(project_dir=str(project), name="harness-bad", targets=["no_such_stage"], return_state=True)
    assert state.is_failed()
    (run,) = _task_runs(state)["run_experiment"]
    assert run.run_count == 1
    assert "harness-bad" not in run_tool(["dvc", "exp", "list", "--name-only"], project).split()


MANIFEST_HEADER = "id,mixture,query_text,query_audio,query_image\n"


def test_batch_separation_files_manifests_into_done_and_failed(prefect_harness, tiny_bundle, tmp_path):
    from flows.batch_separation import batch_separation

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    save_audio(inbox / "mix.wav", synth_clip("tone", 1, 1.0) + synth_clip("noise", 2, 1.0), 16000)
    (inbox / "good.csv").write_text(MANIFEST_HEADER + "t1,mix.wav,a tone sound,,\nt2,mix.wav,,mix.wav,\n")
    (inbox / "partial.csv").write_text(MANIFEST_HEADER + "p1,mix.wav,a tone,,\np2,gone.wav,a tone,,\n")
    (inbox / "bad.csv").write_text("mixture,text\nmix.wav,a tone\n")
    (inbox / ".incoming.csv").write_text(MANIFEST_HEADER)  # still being written
    (inbox / "processing").mkdir()
    (inbox / "processing" / "resumed.csv").write_text(MANIFEST_HEADER + "r1,mix.wav,a noise,,\n")
    run = dict(inbox=str(inbox), out=str(tmp_path / "separated"), project_dir=str(tmp_path), model=str(tiny_bundle),
               device="cpu", return_state=True)

    state = batch_separation(**run)
    assert state.is_failed() and "2 of 4 manifests failed" in state.message
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["good.csv", "good.results.csv", "resumed.csv",
                                                                   "resumed.results.csv"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["bad.csv", "bad.reason.txt", "partial.csv",
                                                                     "partial.reason.txt", "partial.results.csv"]
    assert "missing columns" in (inbox / "failed" / "bad.reason.txt").read_text()
    reason = (inbox / "failed" / "partial.reason.txt").read_text()
    assert "1 separated" in reason and "failed p2: missing_file" in reason
    assert sorted(p.name for p in (tmp_path / "separated" / "good").glob("*.wav")) == ["t1.wav", "t2.wav"]
    assert (tmp_path / "separated" / "resumed" / "r1.wav").is_file()
    assert list((inbox / "processing").iterdir()) == [] and (inbox / ".incoming.csv").exists()
    rows = json.loads(_artifacts(state)["batch-separation-manifests"].data)
    assert {row["job"]: row["status"] for row in rows} == {"resumed": "done", "bad": "failed", "good": "done",
                                                           "partial": "failed"}

    # the next scheduled run finds nothing new: nothing is processed twice
    stamp = (tmp_path / "separated" / "good" / "t1.wav").stat().st_mtime_ns
    state = batch_separation(**run)
    assert state.is_completed() and state.message == "inbox empty"
    assert (tmp_path / "separated" / "good" / "t1.wav").stat().st_mtime_ns == stamp

    # a run that finds the inbox locked by another leaves without touching it
    from marssep_core.orchestration.inbox import Inbox

    shutil.copyfile(inbox / "done" / "good.csv", inbox / "again.csv")
    with Inbox(inbox).locked():
        state = batch_separation(**run)
    assert state.is_completed() and "another batch-separation run" in state.message
    assert (inbox / "again.csv").exists()

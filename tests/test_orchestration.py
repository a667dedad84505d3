"""What the flows stand on, without Prefect: logged commands, DVC experiment diffs, the batch
inbox and the local stack's process handling."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marssep_core.cli import main
from marssep_core.orchestration import local
from marssep_core.orchestration.commands import CommandError, run_logged
from marssep_core.orchestration.experiments import (
    changed_params,
    check_experiment_name,
    diff_markdown,
    exp_run_args,
    select_metrics,
)
from marssep_core.orchestration.inbox import Inbox, InboxBusy, describe_outcome
from tests.conftest import run_tool

LOG = logging.getLogger("test-orchestration")


def test_exp_run_args_format_overrides_and_reject_bad_names():
    args = exp_run_args("kappa-5", {"rl.kappa": 5, "rl.fusion": "text", "rl.loop.steps": [1, 2]}, ["evaluate"])
    assert args == ["dvc", "exp", "run", "--name", "kappa-5", "--temp", "--set-param", "rl.kappa=5",
                    "--set-param", 'rl.fusion="text"', "--set-param", "rl.loop.steps=[1, 2]", "evaluate"]
    assert "--temp" not in exp_run_args("a", {}, [], temp=False)
    for bad in ("a/b", "../x", "", "-x", "a b"):
        with pytest.raises(ValueError, match="experiment name"):
            check_experiment_name(bad)
    with pytest.raises(ValueError, match="dotted params.yaml key"):
        exp_run_args("a", {"rl.kappa=1 -S x": 1}, [])


DIFF = {
    "metrics": {
        "metrics/eval.json": {"all.rl.text.sdr": {"old": 1.0, "new": 1.5, "diff": 0.5},
                              "all.supervised.text.sdr": {"old": 2.0, "new": 2.0, "diff": 0.0},
                              "inst.rl.text.sdr": {"old": 0.1, "new": 0.2, "diff": 0.1}},
        "metrics/rl.json": {"best_step": {"old": 400, "new": 200, "diff": -200}},
    },
    "params": {"params.yaml": {"rl.kappa": {"old": 10, "new": 5, "diff": -5}, "rl.seed": {"old": 0, "new": 0, "diff": 0}}},
}


def test_select_metrics_follows_pattern_order_without_duplicates():
    rows = select_metrics(DIFF, ["metrics/rl.json:best_step", "metrics/eval.json:all.*.sdr", "metrics/eval.json:*"])
    assert [(r.file, r.key) for r in rows] == [
        ("metrics/rl.json", "best_step"), ("metrics/eval.json", "all.rl.text.sdr"),
        ("metrics/eval.json", "all.supervised.text.sdr"), ("metrics/eval.json", "inst.rl.text.sdr")]
    assert rows[1].as_row == {"file": "metrics/eval.json", "metric": "all.rl.text.sdr", "baseline": 1.0,
                              "experiment": 1.5, "change": 0.5}
    assert changed_params(DIFF) == [("rl.kappa", 10, 5)]


def test_diff_markdown_lists_changed_params_and_caps_rows():
    text = diff_markdown("Experiment `k5` vs `HEAD`", DIFF, ["metrics/eval.json:*"], max_rows=2)
    assert "| `rl.kappa` | 10 | 5 |" in text and "rl.seed" not in text
    assert "| metrics/eval.json | `all.rl.text.sdr` | 1 | 1.5 | 0.5 |" in text
    assert "1 more metrics" in text
    assert "none (same parameters" in diff_markdown("t", {"metrics": {}, "params": {}})


def test_run_logged_streams_lines_and_reports_failures(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    result = run_logged([sys.executable, "-c", "print('one'); import sys; print('two', file=sys.stderr)"], tmp_path, LOG)
    assert result.returncode == 0 and result.output.splitlines() == ["one", "two"]
    assert {"one", "two"} <= {r.getMessage() for r in caplog.records}
    with pytest.raises(CommandError) as failure:
        run_logged([sys.executable, "-c", "print('boom'); raise SystemExit(3)"], tmp_path, LOG)
    assert failure.value.returncode == 3 and "boom" in failure.value.tail and "status 3" in str(failure.value)
    killed = run_logged(["sh", "-c", "kill -9 $$"], tmp_path, LOG, check=False)
    assert killed.returncode == -9


def test_dvc_lock_held_by_another_process_is_recognised(tmp_path):
    """The retry condition of the DVC tasks keys on DVC's own message: checked against real DVC."""
    import zc.lockfile

    run_tool(["git", "init", "-q"], tmp_path)
    run_tool(["dvc", "init", "-q"], tmp_path)
    lock = zc.lockfile.LockFile(str(tmp_path / ".dvc" / "tmp" / "lock"))
    try:
        with pytest.raises(CommandError) as failure:
            run_logged(["dvc", "status"], tmp_path, LOG)
    finally:
        lock.close()
    assert failure.value.dvc_lock_busy
    run_logged(["dvc", "status"], tmp_path, LOG)


def _manifest(path: Path, text: str = "id,mixture,query_text,query_audio,query_image\n") -> Path:
    path.write_text(text)
    return path


def test_inbox_claims_each_manifest_once_and_files_it(tmp_path):
    box = Inbox(tmp_path / "inbox")
    with box.locked():
        assert box.claim_all() == []
    first, second = _manifest(box.root / "b.csv"), _manifest(box.root / "a.csv")
    _manifest(box.root / ".partial.csv")  # being written: hidden until renamed in
    (box.root / "notes.txt").write_text("not a manifest")
    leftover = _manifest(box.processing / "crashed.csv")  # a run died while it held this one
    with box.locked():
        claims = box.claim_all()
        assert [c.job for c in claims] == ["crashed", "a", "b"]
        assert not first.exists() and not second.exists() and claims[0].manifest == leftover
        assert set(box.claim_all()) == set(claims)  # claimed files are never taken from the inbox again
        results = tmp_path / "results.csv"
        results.write_text("id,status\nx,ok\n")
        assert box.finish(claims[1], True, results) == box.done / "a.csv"
        assert (box.done / "a.results.csv").read_text() == "id,status\nx,ok\n"
        box.finish(claims[2], False, None, "missing columns")
        assert (box.failed / "b.reason.txt").read_text() == "missing columns\n"
        assert not (box.failed / "b.results.csv").exists()
    assert (box.root / ".partial.csv").exists() and (box.root / "notes.txt").exists()
    # the same name dropped again is a new job; the first results stay
    _manifest(box.root / "a.csv")
    with box.locked():
        again = [c for c in box.claim_all() if c.manifest.parent == box.processing and c.job.startswith("a")]
    assert len(again) == 1 and again[0].job.startswith("a.") and (box.done / "a.csv").exists()


def test_inbox_lock_excludes_a_second_run(tmp_path):
    box = Inbox(tmp_path / "inbox")
    with box.locked():
        with pytest.raises(InboxBusy, match="another batch-separation run"):
            with box.locked():
                pass
    with box.locked():  # released
        pass


def test_describe_outcome_reads_the_cli_summary():
    assert describe_outcome(0, "2 separated, 0 already done, 0 failed -> out/results.csv") == (True, "")
    ok, reason = describe_outcome(1, "backend onnx\nfailed a2: missing_file: x.wav: file not found\n"
                                     "1 separated, 0 already done, 1 failed -> out/results.csv")
    assert not ok and reason.splitlines() == ["1 separated, 0 already done, 1 failed -> out/results.csv",
                                              "failed a2: missing_file: x.wav: file not found"]
    assert describe_outcome(2, "error: jobs.csv: missing columns ['id']") == (False, "error: jobs.csv: missing columns ['id']")
    assert describe_outcome(137, "Killed")[1].startswith("exit status 137")


def test_stack_env_is_local_and_analytics_off(tmp_path):
    cfg = local.StackConfig(tmp_path, port=4321)
    env = cfg.env()
    assert env["PREFECT_HOME"] == str(tmp_path / ".prefect") and env["PREFECT_API_URL"] == "http://127.0.0.1:4321/api"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["PREFECT_SERVER_API_HOST"] == "127.0.0.1"


def test_stop_ends_the_whole_process_group_and_never_a_reused_pid(tmp_path):
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True)
    time.sleep(0.2)
    record = local.ProcessRecord(proc.pid, local.start_time(proc.pid), "log")
    assert local.alive(record)
    assert not local.alive(local.ProcessRecord(proc.pid, "12345", "log"))  # same pid, another start time
    assert local.stop_process(local.ProcessRecord(proc.pid, "12345", "log"), 1.0) == "not running"
    assert local.alive(record)
    assert local.stop_process(record, 5.0) == "stopped"
    proc.wait(timeout=5)
    with pytest.raises(ProcessLookupError):  # the background sleep went with its group
        for _ in range(50):
            os.killpg(proc.pid, 0)
            time.sleep(0.1)


def test_orchestrate_refuses_a_busy_port_and_a_missing_prefect_yaml(tmp_path, capsys):
    assert main(["orchestrate", "status", "--project", str(tmp_path)]) == 2
    assert "no prefect.yaml" in capsys.readouterr().err
    (tmp_path / "prefect.yaml").write_text("deployments: []\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["orchestrate", "up", "--project", str(tmp_path), "--port", str(port)]) == 2
    assert f"127.0.0.1:{port} is in use" in capsys.readouterr().err
    assert main(["orchestrate", "env", "--project", str(tmp_path), "--port", "4999"]) == 0
    assert "export PREFECT_API_URL=http://127.0.0.1:4999/api" in capsys.readouterr().out
    assert main(["orchestrate", "down", "--project", str(tmp_path)]) == 0


def test_up_refuses_a_second_stack_on_another_port(tmp_path, capsys):
    (tmp_path / "prefect.yaml").write_text("deployments: []\n")
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    cfg = local.StackConfig(tmp_path, port=4555)
    record = local.ProcessRecord(proc.pid, local.start_time(proc.pid), "log")
    local.write_state(cfg, local.StackState(4555, "127.0.0.1", {"server": record}))
    assert main(["orchestrate", "up", "--project", str(tmp_path), "--port", "4556"]) == 2
    assert "running on port 4555" in capsys.readouterr().err
    assert main(["orchestrate", "env", "--project", str(tmp_path)]) == 0  # the running stack's port
    assert "127.0.0.1:4555/api" in capsys.readouterr().out
    assert main(["orchestrate", "down", "--project", str(tmp_path)]) == 0
    assert "server: stopped" in capsys.readouterr().out
    proc.wait(timeout=10)

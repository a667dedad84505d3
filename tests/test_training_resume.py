"""The one training loop under the encoder alignment stages and the judge: SIGKILL mid-run, then a
restart, ends bit-identical to an uninterrupted run; two gloo DDP processes end with identical
weights. (The separator's own versions of these tests are in test_separation_train.py.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from marssep_core.encoders.store import load_encoder
from marssep_core.evaluation.judge import load_judge
from tests.conftest import TINY_JUDGE_PARAMS

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _encoder_run(a, out: Path, params: Path, stage: str = "stage2") -> list[str]:
    """``pipeline/encoder.py <stage>`` on the tiny assets, starting from their (untrained) encoder."""
    models = out / "models"
    if not models.exists():
        models.mkdir(parents=True)
        shutil.copy(a.encoder, models / "stage1.pt")  # stage 2 starts from stage 1's file
        a.pairs.to_csv(out / "pairs.csv", index=False)
    return [sys.executable, str(ROOT / "pipeline" / "encoder.py"), stage, "--raw", str(a.raw), "--bank", str(a.bank),
            "--pairs", str(out / "pairs.csv"), "--models", str(models), "--metrics", str(out / "metrics"),
            "--runs", str(out / "runs"), "--params", str(params), "--threads", "1"]


def _judge_run(a, out: Path, params: Path) -> list[str]:
    return [sys.executable, str(ROOT / "pipeline" / "train_judge.py"), "--raw", str(a.raw), "--bank", str(a.bank),
            "--out", str(out / "judge.pt"), "--metrics", str(out / "judge.json"), "--run-dir", str(out / "runs"),
            "--params", str(params)]


def _encoder_params(path: Path, **loop) -> Path:
    settings = {"steps": 40, "batch_size": 8, "warmup": 2, "eval_every": 20, "checkpoint_every": 4, "device": "cpu", **loop}
    path.write_text(yaml.safe_dump({"encoder": {"stage2": {"loop": settings}}}))
    return path


def _judge_params(path: Path, **loop) -> Path:
    train = {**TINY_JUDGE_PARAMS["train"], "loop": {**TINY_JUDGE_PARAMS["train"]["loop"], "checkpoint_every": 5, **loop}}
    path.write_text(yaml.safe_dump({"judge": {"model": TINY_JUDGE_PARAMS["model"], "train": train}}))
    return path


def _kill_after(command: list[str], checkpoint: Path, min_step: int) -> int:
    """Start ``command``, SIGKILL it once ``checkpoint`` holds ``min_step`` steps; the step it held."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if checkpoint.exists() and torch.load(checkpoint, weights_only=True)["step"] >= min_step:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed; make the run longer"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return int(torch.load(checkpoint, weights_only=True)["step"])  # whatever the moment, the file is whole


def _run(command: list[str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _assert_same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    for key, value in first.items():
        torch.testing.assert_close(value, second[key], rtol=0, atol=0)


@pytest.mark.slow
def test_an_alignment_stage_killed_mid_run_resumes_bit_identical(separator_assets, tmp_path):
    a = separator_assets
    params = _encoder_params(tmp_path / "params.yaml")
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    checkpoint = killed / "runs" / "stage2" / "last.pt"
    step = _kill_after(_encoder_run(a, killed, params), checkpoint, min_step=8)
    assert 8 <= step < 40 and not (killed / "models" / "stage2.pt").exists()
    resumed = _run(_encoder_run(a, killed, params))
    assert f"resumed from {checkpoint} at step {step}" in resumed.stderr
    _run(_encoder_run(a, clean, params))
    pd.testing.assert_frame_equal(pd.read_csv(killed / "metrics" / "stage2_history.csv"),
                                  pd.read_csv(clean / "metrics" / "stage2_history.csv"))
    assert json.loads((killed / "metrics" / "stage2.json").read_text()) == json.loads((clean / "metrics" / "stage2.json").read_text())
    first, first_temperature, _ = load_encoder(killed / "models" / "stage2.pt")
    second, second_temperature, _ = load_encoder(clean / "models" / "stage2.pt")
    _assert_same_weights(first.state_dict(), second.state_dict())
    assert first_temperature == second_temperature
    assert not checkpoint.exists()


@pytest.mark.slow
def test_the_judge_killed_mid_run_resumes_bit_identical(separator_assets, tmp_path):
    a = separator_assets
    params = _judge_params(tmp_path / "params.yaml", steps=150, eval_every=50)
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    checkpoint = killed / "runs" / "last.pt"
    step = _kill_after(_judge_run(a, killed, params), checkpoint, min_step=10)
    assert 10 <= step < 150 and not (killed / "judge.pt").exists()
    resumed = _run(_judge_run(a, killed, params))
    assert f"resumed from {checkpoint} at step {step}" in resumed.stderr
    _run(_judge_run(a, clean, params))
    assert json.loads((killed / "judge.json").read_text()) == json.loads((clean / "judge.json").read_text())
    first, _ = load_judge(killed / "judge.pt")
    second, _ = load_judge(clean / "judge.pt")
    _assert_same_weights(first.net.state_dict(), second.net.state_dict())  # BatchNorm statistics included


@pytest.mark.slow
def test_an_alignment_stage_with_two_gloo_processes_ends_with_identical_weights(separator_assets, tmp_path):
    params = _encoder_params(tmp_path / "params.yaml", steps=4, eval_every=4)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               *_encoder_run(separator_assets, tmp_path, params)[1:]]
    _run(command)
    report = json.loads((tmp_path / "metrics" / "stage2.json").read_text())
    assert report["processes"] == 2 and report["replicas_identical"] is True



class _ScoredTask:
    """A linear fit whose validation score is NaN for the first ``nan_evaluations``, then the
    evaluation's number."""

    def __init__(self, nan_evaluations: int):
        self.evaluations, self.nan_evaluations = 0, nan_evaluations

    def loss(self, model, rng, batch_size, device):
        x = torch.from_numpy(rng.standard_normal((batch_size, 2)).astype("float32"))
        return ((model(x) - x.sum(dim=1, keepdim=True)) ** 2).mean(), {}

    def evaluate(self, model):
        self.evaluations += 1
        return {"score": float("nan") if self.evaluations <= self.nan_evaluations else float(self.evaluations)}


@pytest.mark.parametrize(("nan_evaluations", "best_step"), [(1, 6), (3, 6)])
def test_a_nan_validation_score_never_blocks_a_real_one_nor_keeps_the_initial_weights(tmp_path, nan_evaluations, best_step):
    from marssep_core.training.loop import LoopConfig, train_loop

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = LoopConfig(steps=6, batch_size=4, warmup=1, eval_every=2, checkpoint_every=6, device="cpu")
    result = train_loop(model=model, task=_ScoredTask(nan_evaluations), cfg=cfg, run_dir=tmp_path, fingerprint="nan",
                        selection_metric="score")
    assert result.best_step == best_step
    assert not torch.equal(result.best_state["weight"], initial["weight"])  # never the untrained weights


class _DecliningTask(_ScoredTask):
    """``_ScoredTask``'s linear fit whose validation score only falls: the first validation is the best."""

    def evaluate(self, model):
        self.evaluations += 1
        return {"score": -float(self.evaluations)}


@pytest.mark.parametrize(("fraction", "best_step"), [(0.0, 2), (0.5, 4), (0.6, 6), (1.0, 8)])
def test_validations_before_select_from_fraction_are_logged_but_never_kept(tmp_path, fraction, best_step):
    from marssep_core.training.loop import LoopConfig, train_loop

    torch.manual_seed(0)
    cfg = LoopConfig(steps=8, batch_size=4, warmup=1, eval_every=2, checkpoint_every=8, device="cpu",
                     select_from_fraction=fraction)
    result = train_loop(model=torch.nn.Linear(2, 1), task=_DecliningTask(nan_evaluations=0), cfg=cfg, run_dir=tmp_path,
                        fingerprint="select", selection_metric="score")
    assert result.best_step == best_step
    assert [row["val_score"] for row in result.history if "val_score" in row] == [-1.0, -2.0, -3.0, -4.0]


@pytest.mark.parametrize(("fraction", "steps", "first"),
                         [(0.07, 100, 7), (0.14, 50, 7), (0.5, 3000, 1500), (0.6, 8, 5), (1.0, 7, 7), (0.0, 5, 0)])
def test_the_first_selectable_step_is_the_fraction_of_the_steps_rounded_up(fraction, steps, first):
    from marssep_core.training.loop import LoopConfig

    assert LoopConfig(steps=steps, select_from_fraction=fraction).first_selectable_step == first


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_a_select_from_fraction_outside_0_1_is_refused(fraction):
    from marssep_core.training.loop import LoopConfig

    with pytest.raises(ValueError, match="select_from_fraction must lie in"):
        LoopConfig(select_from_fraction=fraction)


class _RecordingTask(_ScoredTask):
    """``_ScoredTask``'s linear fit, scored by how close the weights are to the fit's solution, that
    records the weights each step starts from and the weights each validation sees, and can fail at
    one step (a crash)."""

    def __init__(self, fail_at_step: int | None = None):
        super().__init__(nan_evaluations=0)
        self.step_weights, self.evaluated, self.fail_at_step = [], [], fail_at_step

    def loss(self, model, rng, batch_size, device):
        if self.fail_at_step is not None and len(self.step_weights) == self.fail_at_step:
            raise RuntimeError("crash")
        self.step_weights.append(model.weight.detach().clone())
        return super().loss(model, rng, batch_size, device)

    def evaluate(self, model):
        self.evaluated.append(model.weight.detach().clone())
        return {"score": -float(((model.weight - 1) ** 2).sum())}


def _fit(run_dir: Path, task, ema_decay: float = 0.9):
    from marssep_core.training.loop import LoopConfig, train_loop

    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    cfg = LoopConfig(steps=20, batch_size=4, warmup=1, eval_every=5, checkpoint_every=5, device="cpu", ema_decay=ema_decay)
    result = train_loop(model=model, task=task, cfg=cfg, run_dir=run_dir, fingerprint="ema", selection_metric="score")
    return model, result


def test_the_weight_average_is_what_validation_sees_and_what_is_kept(tmp_path):
    task = _RecordingTask()
    model, result = _fit(tmp_path, task)
    trajectory = [*task.step_weights, model.weight.detach()]  # the weights before each step, then the last
    average = trajectory[0].clone()
    for updates, weights in enumerate(trajectory[1:], start=1):
        decay = min(0.9, (1 + updates) / (10 + updates))
        average = decay * average + (1 - decay) * weights
    torch.testing.assert_close(result.best_state["weight"], average)
    torch.testing.assert_close(task.evaluated[-1], average)
    assert result.best_step == 20 and not torch.equal(average, model.weight.detach())  # the model keeps its own weights


def test_a_run_with_a_weight_average_resumes_bit_identical(tmp_path):
    _, uninterrupted = _fit(tmp_path / "straight", _RecordingTask())
    with pytest.raises(RuntimeError, match="crash"):
        _fit(tmp_path / "crashed", _RecordingTask(fail_at_step=13))  # the checkpoint holds step 10
    model, resumed = _fit(tmp_path / "crashed", _RecordingTask())
    _assert_same_weights(uninterrupted.best_state, resumed.best_state)
    assert [row["loss"] for row in uninterrupted.history] == [row["loss"] for row in resumed.history]
